// TEXT is 7-bit ASCII on the wire; these helpers move between JS strings and TEXT elements.
import { ImpError, ImpErrorCode } from './errors.js';
import { asciiString } from './element-decode.js';
import type { Element, TextElement } from './types.js';

/** A TEXT element holding `str`; refuses characters above 0x7f (binary belongs in BITSTR). */
export function textElement(str: string): TextElement {
  for (let i = 0; i < str.length; i++) {
    if (str.charCodeAt(i) > 0x7f)
      throw new ImpError(
        ImpErrorCode.TEXT_8BIT,
        `character ${i} (U+${str.charCodeAt(i).toString(16).padStart(4, '0')}) is not 7-bit ASCII; TEXT cannot carry it`,
      );
  }
  return { type: 'text', data: Buffer.from(str, 'latin1') };
}

/** The string in a TEXT element. Throws ERR_IMP_MESSAGE for any other element. */
export function textValue(el: Element, path = 'element'): string {
  if (el.type !== 'text') throw new ImpError(ImpErrorCode.MESSAGE, `expected TEXT, found ${el.type.toUpperCase()}`, { path });
  return asciiString(el.data, 0, el.data.length);
}
