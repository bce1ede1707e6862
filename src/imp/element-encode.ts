// Element encoder: one pass computes and validates sizes, one allocation, one
// pass writes. Nothing is split or truncated: a value that does not fit its
// count field is refused with ERR_IMP_LIMIT naming the element path and limit.
import { ImpError, ImpErrorCode } from './errors.js';
import {
  MAX_COUNT24,
  MAX_LIST_ITEMS,
  MAX_NAME_OCTETS,
  MAX_PROPLIST_PAIRS,
  MAX_VALUE_OCTETS,
} from './limits.js';
import { ElementCode, type Element } from './types.js';

/**
 * Already-encoded element bytes placed verbatim into a tree being encoded.
 * Internal to the codec (the bag encoder uses it to write each shared-or-not
 * portion once); never produced by the decoder.
 */
export interface EncodedElement {
  type: 'encoded';
  bytes: Uint8Array;
}
export type EncodableElement = Element | EncodedElement;

function limit(path: readonly (string | number)[], message: string): never {
  throw new ImpError(ImpErrorCode.LIMIT, message, { path: formatPath(path) });
}

export function formatPath(path: readonly (string | number)[]): string {
  let out = 'element';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : `.${seg}`;
  return out;
}

/** First octet >= 0x80, or -1. */
export function find8bit(data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) if (data[i]! & 0x80) return i;
  return -1;
}

/**
 * Size pass. Container sizes (octets after the count field) are pushed in
 * pre-order so the write pass can consume them in the same order.
 */
class Sizer {
  readonly sizes: number[] = [];
  readonly path: (string | number)[] = [];

  size(el: EncodableElement): number {
    switch (el.type) {
      case 'nop':
        return 1;
      case 'boolean':
        if (typeof el.value !== 'boolean') limit(this.path, 'BOOLEAN value must be true or false');
        return 2;
      case 'index':
        if (!Number.isInteger(el.value) || el.value < 0 || el.value > 0xffff)
          limit(this.path, `INDEX ${el.value} is outside 0..65535`);
        return 3;
      case 'integer':
        if (!Number.isInteger(el.value) || el.value < -0x80000000 || el.value > 0xffffffff)
          limit(this.path, `INTEGER ${el.value} is outside -2^31..2^32-1`);
        return 5;
      case 'pad':
      case 'encrypt':
        if (el.data.length > MAX_COUNT24)
          limit(this.path, `${el.type.toUpperCase()} of ${el.data.length} octets exceeds 2^24-1 octets`);
        return 4 + el.data.length;
      case 'text': {
        if (el.data.length > MAX_COUNT24) limit(this.path, `TEXT of ${el.data.length} octets exceeds 2^24-1 octets`);
        const bad = find8bit(el.data);
        if (bad >= 0)
          throw new ImpError(
            ImpErrorCode.TEXT_8BIT,
            `TEXT octet ${bad} is 0x${el.data[bad]!.toString(16)}; TEXT is 7-bit ASCII (binary goes in BITSTR)`,
            { path: formatPath(this.path) },
          );
        return 4 + el.data.length;
      }
      case 'bitstr': {
        if (!Number.isInteger(el.bits) || el.bits < 0 || el.bits > MAX_COUNT24)
          limit(this.path, `BITSTR of ${el.bits} bits exceeds 2^24-1 bits`);
        const octets = Math.ceil(el.bits / 8);
        if (el.data.length !== octets)
          throw new ImpError(ImpErrorCode.BAD_VALUE, `BITSTR of ${el.bits} bits needs ${octets} octets, has ${el.data.length}`, {
            path: formatPath(this.path),
          });
        const spare = octets * 8 - el.bits;
        if (spare && el.data[octets - 1]! & ((1 << spare) - 1))
          throw new ImpError(ImpErrorCode.BAD_VALUE, `BITSTR padding bits are not zero`, { path: formatPath(this.path) });
        return 4 + octets;
      }
      case 'list': {
        const items = el.items;
        if (items.length > MAX_LIST_ITEMS) limit(this.path, `LIST of ${items.length} items exceeds 65535 items`);
        const slot = this.sizes.length;
        this.sizes.push(0);
        let n = 2;
        this.path.push(0);
        for (let i = 0; i < items.length; i++) {
          this.path[this.path.length - 1] = i;
          n += this.size(items[i]!);
        }
        this.path.pop();
        if (n > MAX_COUNT24) limit(this.path, `LIST of ${n} octets after its count exceeds 2^24-1 octets`);
        this.sizes[slot] = n;
        return 4 + n;
      }
      case 'proplist': {
        const pairs = el.pairs;
        if (pairs.length > MAX_PROPLIST_PAIRS) limit(this.path, `PROPLIST of ${pairs.length} pairs exceeds 255 pairs`);
        const slot = this.sizes.length;
        this.sizes.push(0);
        let n = 1;
        for (let i = 0; i < pairs.length; i++) {
          const pair = pairs[i]!;
          const name = pair.name;
          if (typeof name !== 'string' || name.length > MAX_NAME_OCTETS)
            limit(this.path, `PROPLIST name ${i} is longer than 255 octets`);
          for (let c = 0; c < name.length; c++)
            if (name.charCodeAt(c) > 0x7f)
              throw new ImpError(ImpErrorCode.TEXT_8BIT, `PROPLIST name ${JSON.stringify(name)} is not ASCII`, {
                path: formatPath(this.path),
              });
          this.path.push('pairs', i, name);
          const v = this.size(pair.value);
          if (v > MAX_VALUE_OCTETS) limit(this.path, `PROPLIST value of ${v} octets exceeds 65535 octets`);
          this.path.length -= 3;
          n += 3 + name.length + v;
        }
        if (n > MAX_COUNT24) limit(this.path, `PROPLIST of ${n} octets after its count exceeds 2^24-1 octets`);
        this.sizes[slot] = n;
        return 4 + n;
      }
      case 'encoded':
        return el.bytes.length;
      default:
        return limit(this.path, `unknown element type ${JSON.stringify((el as { type: unknown }).type)}`);
    }
  }
}

class Writer {
  pos = 0;
  cursor = 0;
  constructor(
    readonly out: Buffer,
    readonly sizes: number[],
  ) {}

  count24(code: number, n: number): void {
    const out = this.out;
    let p = this.pos;
    out[p++] = code;
    out[p++] = n >>> 16;
    out[p++] = (n >>> 8) & 0xff;
    out[p++] = n & 0xff;
    this.pos = p;
  }

  bytes(data: Uint8Array): void {
    this.out.set(data, this.pos);
    this.pos += data.length;
  }

  write(el: EncodableElement): void {
    const out = this.out;
    switch (el.type) {
      case 'nop':
        out[this.pos++] = ElementCode.NOP;
        return;
      case 'boolean':
        out[this.pos++] = ElementCode.BOOLEAN;
        out[this.pos++] = el.value ? 1 : 0;
        return;
      case 'index':
        out[this.pos++] = ElementCode.INDEX;
        out[this.pos++] = el.value >>> 8;
        out[this.pos++] = el.value & 0xff;
        return;
      case 'integer': {
        const v = el.value;
        let p = this.pos;
        out[p++] = ElementCode.INTEGER;
        out[p++] = v >>> 24;
        out[p++] = (v >>> 16) & 0xff;
        out[p++] = (v >>> 8) & 0xff;
        out[p++] = v & 0xff;
        this.pos = p;
        return;
      }
      case 'pad':
        this.count24(ElementCode.PAD, el.data.length);
        this.bytes(el.data);
        return;
      case 'encrypt':
        this.count24(ElementCode.ENCRYPT, el.data.length);
        this.bytes(el.data);
        return;
      case 'text':
        this.count24(ElementCode.TEXT, el.data.length);
        this.bytes(el.data);
        return;
      case 'bitstr':
        this.count24(ElementCode.BITSTR, el.bits);
        this.bytes(el.data);
        return;
      case 'list': {
        const items = el.items;
        this.count24(ElementCode.LIST, this.sizes[this.cursor++]!);
        out[this.pos++] = items.length >>> 8;
        out[this.pos++] = items.length & 0xff;
        for (let i = 0; i < items.length; i++) this.write(items[i]!);
        return;
      }
      case 'proplist': {
        const pairs = el.pairs;
        this.count24(ElementCode.PROPLIST, this.sizes[this.cursor++]!);
        out[this.pos++] = pairs.length;
        for (let i = 0; i < pairs.length; i++) {
          const pair = pairs[i]!;
          const at = this.pos;
          out[at] = pair.name.length;
          this.pos = at + 3 + out.write(pair.name, at + 3, 'latin1');
          const valueStart = this.pos;
          this.write(pair.value);
          const v = this.pos - valueStart;
          out[at + 1] = v >>> 8;
          out[at + 2] = v & 0xff;
        }
        return;
      }
      case 'encoded':
        this.bytes(el.bytes);
        return;
    }
  }
}

/** Encoded size of an element in octets (validates it, as encoding would). */
export function encodedSize(el: EncodableElement): number {
  return new Sizer().size(el);
}

/** Encodes one element (and everything inside it) into a new Buffer. */
export function encodeElement(el: EncodableElement): Buffer {
  const sizer = new Sizer();
  const total = sizer.size(el);
  const out = Buffer.allocUnsafe(total);
  const w = new Writer(out, sizer.sizes);
  w.write(el);
  return out;
}
