// Shared vocabulary of the "mailbag MIME carriage, version 1": how exact MIME bytes
// ride in RFC 753 elements. docs/imp-mime.md describes the layout in full.
import { isAscii } from 'node:buffer';
import { ImpError, ImpErrorCode } from '../errors.js';
import { MAX_COUNT24, MAX_VALUE_OCTETS } from '../limits.js';
import type { BitstrElement, Element, TextElement } from '../types.js';

/** Pair that marks a document header as our carriage; everything after it is raw header. */
export const MARKER_NAME = 'MAILBAG-MIME';
export const MARKER_VERSION = '1';
/** Envelope sender (reverse-path without angle brackets), in the presentation section. */
export const ENVELOPE_FROM_NAME = 'ENVELOPE-FROM';

// Reserved pair names in raw header sections. They contain a colon, which no header
// field name can, so they never collide with a field carried under its own name.
/** A header line that is not `name: value` (or whose name cannot be a pair name), kept whole. */
export const RAW_LINE = ':raw';
/** The continuation of the previous pair's value (values longer than one pair holds). */
export const MORE = ':more';
/** Raw header bytes carried in bulk once the 255-pair budget of a PROPLIST runs out. */
export const LINES = ':lines';
/** The empty line that ends the header (`\r\n`, `\n`, or empty when the input had none). Always last. */
export const END_OF_HEADER = ':eoh';
/** Present only in a multipart frame PROPLIST; its BOOLEAN says whether a close delimiter follows the parts. */
export const FRAME = ':frame';

/** Octets of payload one PROPLIST value (TEXT or BITSTR, 4-octet element header) can hold. */
export const MAX_VALUE_PAYLOAD = MAX_VALUE_OCTETS - 4;
/** Whole octets one BITSTR can hold: its count is in bits, at most 2^24-1. */
export const MAX_BITSTR_WHOLE_OCTETS = Math.floor(MAX_COUNT24 / 8);

/** True when every octet is below 0x80 (node's SIMD isAscii: this runs over every body byte). */
export function is7bit(data: Uint8Array): boolean {
  return isAscii(data);
}

/** TEXT when the bytes are 7-bit, else BITSTR: the exact bytes either way. */
export function bytesElement(data: Buffer): TextElement | BitstrElement {
  return is7bit(data) ? { type: 'text', data } : { type: 'bitstr', bits: data.length * 8, data };
}

/**
 * Splits `data` into consecutive TEXT (when `text`, by default when all 7-bit) or BITSTR
 * elements of at most `max` octets; empty data gives no elements.
 */
export function chunkElements(data: Buffer, max: number, text = is7bit(data)): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < data.length; i += max) {
    const chunk = data.subarray(i, Math.min(i + max, data.length));
    out.push(text ? { type: 'text', data: chunk } : { type: 'bitstr', bits: chunk.length * 8, data: chunk });
  }
  return out;
}

export function asBuffer(d: Uint8Array): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** The octets of a TEXT or BITSTR element (a BITSTR must hold whole octets); else a structure error at `path`. */
export function elementBytes(el: Element | undefined, path: string): Buffer {
  if (el?.type === 'text') return asBuffer(el.data);
  if (el?.type === 'bitstr') {
    if (el.bits % 8 !== 0) structureError(path, `BITSTR of ${el.bits} bits does not hold whole octets`);
    return asBuffer(el.data).subarray(0, el.bits / 8);
  }
  return structureError(path, `expected TEXT or BITSTR, found ${el ? el.type.toUpperCase() : 'nothing'}`);
}

export function structureError(path: string, message: string): never {
  throw new ImpError(ImpErrorCode.MESSAGE, message, { path });
}
