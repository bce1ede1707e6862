// Element decoder: one pass over a Buffer with an offset. Every count is
// checked against the end of the element that contains it before it is used,
// so a lying count can neither run past the input nor cause an allocation.
// TEXT, BITSTR, PAD and ENCRYPT payloads are views of the input (zero-copy).
import { ImpError, ImpErrorCode } from './errors.js';
import { DEFAULT_MAX_DEPTH, MAX_BAG_OCTETS, type DecodeLimits } from './limits.js';
import { ElementCode, type Element, type PropPair } from './types.js';

const NAMES = ['NOP', 'PAD', 'BOOLEAN', 'INDEX', 'INTEGER', 'BITSTR', 'TEXT', 'LIST', 'PROPLIST', 'ENCRYPT'];

// PROPLIST names and operations repeat (IA, HOST, USER, DATE, DELIVER, ...):
// short ones are interned in a small bounded cache keyed by a hash of their
// octets, so decoding them allocates nothing after the first time.
const INTERN_MAX_LENGTH = 16;
const INTERN_MAX_ENTRIES = 4096;
const interned = new Map<number, string>();

/** Short ASCII strings (PROPLIST names, operations) without a round trip through Buffer#toString. */
export function asciiString(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n > INTERN_MAX_LENGTH) return Buffer.from(b.buffer, b.byteOffset + start, n).toString('latin1');
  let h = n;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + b[i]!) | 0;
  const hit = interned.get(h);
  if (hit !== undefined && hit.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) if (hit.charCodeAt(i) !== b[start + i]) same = false;
    if (same) return hit;
  }
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  if (hit === undefined && interned.size < INTERN_MAX_ENTRIES) interned.set(h, s);
  return s;
}

export function toBuffer(input: Uint8Array): Buffer {
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

export class ElementDecoder {
  pos = 0;
  /** Depth of the element being decoded (1 = outermost). */
  depth = 1;
  constructor(
    readonly buf: Buffer,
    readonly maxDepth: number,
  ) {}

  /**
   * A header or payload needs `need` octets at `at` but its container ends at
   * `end`. At the outermost level that end is the end of the input (truncated);
   * inside a container whose own count was already checked it is an overrun.
   */
  overrun(at: number, need: number, end: number, what: string, outermost = this.depth === 1): never {
    if (outermost)
      throw new ImpError(ImpErrorCode.TRUNCATED, `${what} needs ${need} octets, input ends after ${end - at}`, { offset: at });
    throw new ImpError(
      ImpErrorCode.COUNT_OVERRUN,
      `${what} needs ${need} octets but its container ends ${end - at} octets later, at offset ${end}`,
      { offset: at },
    );
  }

  /**
   * A Uint8Array view of the input. (A plain view costs a fraction of
   * Buffer#subarray, which dominates decoding small elements.)
   */
  view(start: number, n: number): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset + start, n);
  }

  count24(at: number, end: number, what: string): number {
    if (at + 4 > end) this.overrun(at, 4, end, `${what} header`);
    const b = this.buf;
    return (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
  }

  /** Decodes the element at this.pos, which must end at or before `end`. */
  element(end: number, depth: number): Element {
    this.depth = depth;
    const b = this.buf;
    const at = this.pos;
    if (at >= end) this.overrun(at, 1, end, 'element code');
    const code = b[at]!;
    switch (code) {
      case ElementCode.NOP:
        this.pos = at + 1;
        return { type: 'nop' };
      case ElementCode.BOOLEAN: {
        if (at + 2 > end) this.overrun(at, 2, end, 'BOOLEAN');
        const v = b[at + 1]!;
        if (v > 1) throw new ImpError(ImpErrorCode.BAD_VALUE, `BOOLEAN octet is ${v}, must be 0 or 1`, { offset: at + 1 });
        this.pos = at + 2;
        return { type: 'boolean', value: v === 1 };
      }
      case ElementCode.INDEX:
        if (at + 3 > end) this.overrun(at, 3, end, 'INDEX');
        this.pos = at + 3;
        return { type: 'index', value: (b[at + 1]! << 8) | b[at + 2]! };
      case ElementCode.INTEGER:
        if (at + 5 > end) this.overrun(at, 5, end, 'INTEGER');
        this.pos = at + 5;
        return { type: 'integer', value: (b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]! };
      case ElementCode.PAD:
      case ElementCode.TEXT:
      case ElementCode.ENCRYPT: {
        const n = this.count24(at, end, NAMES[code]!);
        const start = at + 4;
        if (start + n > end) this.overrun(at, 4 + n, end, NAMES[code]!);
        const data = this.view(start, n);
        this.pos = start + n;
        if (code === ElementCode.TEXT) {
          for (let i = 0; i < n; i++)
            if (data[i]! & 0x80)
              throw new ImpError(ImpErrorCode.TEXT_8BIT, `TEXT octet 0x${data[i]!.toString(16)} is not 7-bit ASCII`, {
                offset: start + i,
              });
          return { type: 'text', data };
        }
        return code === ElementCode.PAD ? { type: 'pad', data } : { type: 'encrypt', data };
      }
      case ElementCode.BITSTR: {
        const bits = this.count24(at, end, 'BITSTR');
        const n = (bits + 7) >>> 3;
        const start = at + 4;
        if (start + n > end) this.overrun(at, 4 + n, end, 'BITSTR');
        const spare = n * 8 - bits;
        if (spare && b[start + n - 1]! & ((1 << spare) - 1))
          throw new ImpError(ImpErrorCode.BAD_VALUE, `BITSTR padding bits are not zero`, { offset: start + n - 1 });
        this.pos = start + n;
        return { type: 'bitstr', bits, data: this.view(start, n) };
      }
      case ElementCode.LIST: {
        const n = this.count24(at, end, 'LIST');
        const listEnd = at + 4 + n;
        if (listEnd > end) this.overrun(at, 4 + n, end, 'LIST');
        if (depth > this.maxDepth)
          throw new ImpError(ImpErrorCode.TOO_DEEP, `nesting deeper than ${this.maxDepth}`, { offset: at });
        if (n < 2)
          throw new ImpError(ImpErrorCode.ITEM_COUNT, `LIST octet count ${n} cannot hold its 2-octet item count`, { offset: at });
        const count = (b[at + 4]! << 8) | b[at + 5]!;
        // every item takes at least one octet: refuse an impossible count before allocating for it
        if (count > n - 2)
          throw new ImpError(ImpErrorCode.ITEM_COUNT, `LIST item count ${count} cannot fit in ${n - 2} octets`, { offset: at });
        this.pos = at + 6;
        const items: Element[] = new Array(count);
        for (let i = 0; i < count; i++) {
          if (this.pos >= listEnd)
            throw new ImpError(
              ImpErrorCode.ITEM_COUNT,
              `LIST item count says ${count} but its ${n} octets hold only ${i}`,
              { offset: at },
            );
          items[i] = this.element(listEnd, depth + 1);
        }
        if (this.pos !== listEnd)
          throw new ImpError(
            ImpErrorCode.ITEM_COUNT,
            `LIST's ${count} items end at offset ${this.pos} but its octet count ends it at ${listEnd}`,
            { offset: at },
          );
        return { type: 'list', items };
      }
      case ElementCode.PROPLIST: {
        const n = this.count24(at, end, 'PROPLIST');
        const plEnd = at + 4 + n;
        if (plEnd > end) this.overrun(at, 4 + n, end, 'PROPLIST');
        if (depth > this.maxDepth)
          throw new ImpError(ImpErrorCode.TOO_DEEP, `nesting deeper than ${this.maxDepth}`, { offset: at });
        if (n < 1)
          throw new ImpError(ImpErrorCode.ITEM_COUNT, `PROPLIST octet count 0 cannot hold its pair count`, { offset: at });
        const count = b[at + 4]!;
        if (count * 4 > n - 1)
          throw new ImpError(ImpErrorCode.ITEM_COUNT, `PROPLIST pair count ${count} cannot fit in ${n - 1} octets`, { offset: at });
        let p = at + 5;
        const pairs: PropPair[] = new Array(count);
        for (let i = 0; i < count; i++) {
          // a pair is at least 4 octets: name count, value count, a 1-octet value
          if (p + 4 > plEnd)
            throw new ImpError(
              ImpErrorCode.ITEM_COUNT,
              `PROPLIST pair count says ${count} but its ${n} octets hold only ${i}`,
              { offset: at },
            );
          const nameLen = b[p]!;
          const valueLen = (b[p + 1]! << 8) | b[p + 2]!;
          const nameStart = p + 3;
          const valueStart = nameStart + nameLen;
          const valueEnd = valueStart + valueLen;
          if (valueEnd > plEnd) this.overrun(p, 3 + nameLen + valueLen, plEnd, 'PROPLIST pair', false);
          for (let k = nameStart; k < valueStart; k++)
            if (b[k]! & 0x80)
              throw new ImpError(ImpErrorCode.TEXT_8BIT, `PROPLIST name octet 0x${b[k]!.toString(16)} is not ASCII`, {
                offset: k,
              });
          const name = asciiString(b, nameStart, valueStart);
          this.pos = valueStart;
          const value = this.element(valueEnd, depth + 1);
          if (this.pos !== valueEnd)
            throw new ImpError(
              ImpErrorCode.ITEM_COUNT,
              `PROPLIST value count says ${valueLen} octets but the value element is ${this.pos - valueStart}`,
              { offset: p },
            );
          pairs[i] = { name, value };
          p = valueEnd;
        }
        if (p !== plEnd)
          throw new ImpError(
            ImpErrorCode.ITEM_COUNT,
            `PROPLIST's ${count} pairs end at offset ${p} but its octet count ends it at ${plEnd}`,
            { offset: at },
          );
        this.pos = plEnd;
        return { type: 'proplist', pairs };
      }
      default:
        throw new ImpError(ImpErrorCode.UNKNOWN_CODE, `unknown element code ${code}`, { offset: at });
    }
  }
}

function checkSize(buf: Uint8Array, opts: DecodeLimits): void {
  const max = opts.maxBagBytes ?? MAX_BAG_OCTETS;
  if (buf.length > max)
    throw new ImpError(ImpErrorCode.TOO_LARGE, `input of ${buf.length} octets exceeds the limit of ${max}`, { offset: 0 });
}

/**
 * Decodes the element at `offset` and returns it with the offset just after it.
 * Offsets in errors are relative to the start of `input`.
 */
export function decodeElementAt(
  input: Uint8Array,
  offset: number,
  opts: DecodeLimits = {},
): { element: Element; end: number } {
  const d = new ElementDecoder(toBuffer(input), opts.maxDepth ?? DEFAULT_MAX_DEPTH);
  d.pos = offset;
  const element = d.element(d.buf.length, 1);
  return { element, end: d.pos };
}

/** Decodes exactly one element spanning all of `input`. */
export function decodeElement(input: Uint8Array, opts: DecodeLimits = {}): Element {
  checkSize(input, opts);
  const { element, end } = decodeElementAt(input, 0, opts);
  if (end !== input.length)
    throw new ImpError(ImpErrorCode.TRAILING_DATA, `${input.length - end} octets follow the element`, { offset: end });
  return element;
}
