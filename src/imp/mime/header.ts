// Raw header sections: header fields carried as PROPLIST pairs, in order, each
// under its own field name with the exact bytes after the colon (folding and line
// ending included) as its value, so the header rebuilds byte for byte.
import { ImpError, ImpErrorCode } from '../errors.js';
import { MAX_NAME_OCTETS, MAX_PROPLIST_PAIRS } from '../limits.js';
import type { PropPair, ProplistElement } from '../types.js';
import type { MimeHeaderField } from '../../mime/tree.js';
import {
  END_OF_HEADER, LINES, MAX_VALUE_PAYLOAD, MORE, RAW_LINE, bytesElement, chunkElements, elementBytes, structureError,
} from './carriage.js';

function fieldPairs(field: MimeHeaderField): PropPair[] {
  // Carried under its name only when `name:` is the exact start of the raw bytes.
  const useName = field.name !== null && field.name.length <= MAX_NAME_OCTETS && field.raw[field.name.length] === 0x3a;
  const name = useName ? field.name! : RAW_LINE;
  const value = useName ? field.raw.subarray(field.name!.length + 1) : field.raw;
  const chunks = value.length === 0 ? [bytesElement(value)] : chunkElements(value, MAX_VALUE_PAYLOAD);
  return chunks.map((el, i) => ({ name: i === 0 ? name : MORE, value: el }));
}

/**
 * Pairs for a raw header section: the fields in order, then `:eoh`. A field written with
 * whitespace before its colon (obsolete syntax) goes whole into a `:raw` pair. `reserved` pairs
 * (presentation, marker) come first and count against the PROPLIST's 255 pairs; when
 * the fields need more pairs than are left, the tail is carried in bulk as `:lines`.
 */
export function rawHeaderPairs(header: MimeHeaderField[], headerEnd: Buffer, reserved: PropPair[] = []): ProplistElement {
  const budget = MAX_PROPLIST_PAIRS - reserved.length - 1;
  const bulkPairs = (bytes: number) => Math.ceil(bytes / MAX_VALUE_PAYLOAD);
  // Every field needs at least one pair, so at most `budget` of them can be pairs of their own.
  const perField = header.slice(0, budget).map(fieldPairs);
  let tailBytes = 0;
  for (let i = perField.length; i < header.length; i++) tailBytes += header[i]!.raw.length;
  let keep = perField.length;
  let total = perField.reduce((n, p) => n + p.length, 0);
  // Move fields from the end into the bulk tail until everything fits.
  while (total + bulkPairs(tailBytes) > budget) {
    if (keep === 0) {
      throw new ImpError(ImpErrorCode.TOO_LARGE, `header section of ${tailBytes} octets is too large for one IMP PROPLIST`);
    }
    keep--;
    total -= perField[keep]!.length;
    tailBytes += header[keep]!.raw.length;
  }
  const pairs: PropPair[] = [...reserved, ...perField.slice(0, keep).flat()];
  if (keep < header.length) {
    const tail = Buffer.concat(header.slice(keep).map((f) => f.raw));
    for (const el of chunkElements(tail, MAX_VALUE_PAYLOAD)) pairs.push({ name: LINES, value: el });
  }
  pairs.push({ name: END_OF_HEADER, value: bytesElement(headerEnd) });
  return { type: 'proplist', pairs };
}

/**
 * The exact header bytes (fields and the ending empty line) from a raw header section,
 * starting at pair `from`. Pushes Buffers onto `out`.
 */
export function rawHeaderBytes(header: ProplistElement, from: number, path: string, out: Buffer[]): void {
  let sawEnd = false;
  for (let i = from; i < header.pairs.length; i++) {
    const pair = header.pairs[i]!;
    const where = `${path}.pairs[${i}]`;
    if (sawEnd) structureError(where, `pair ${JSON.stringify(pair.name)} after ${END_OF_HEADER}`);
    const bytes = elementBytes(pair.value, `${where}.value`);
    switch (pair.name) {
      case END_OF_HEADER:
        sawEnd = true;
        out.push(bytes);
        break;
      case MORE:
        if (i === from) structureError(where, `${MORE} with no pair before it`);
        out.push(bytes);
        break;
      case RAW_LINE:
      case LINES:
        out.push(bytes);
        break;
      default:
        if (pair.name.startsWith(':')) structureError(where, `unknown reserved pair name ${JSON.stringify(pair.name)}`);
        out.push(Buffer.from(pair.name + ':', 'latin1'), bytes);
    }
  }
  if (!sawEnd) structureError(path, `raw header section has no ${END_OF_HEADER} pair`);
}

