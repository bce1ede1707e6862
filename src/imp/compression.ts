// RFC 753 Appendix B: shipping-unit := compression-type message-bag, where
// compression type 1 ("basic", the ARPANET FTP scheme) codes the bag's octets
// as a series of units, independent of element boundaries:
//   0nnnnnnn + n octets   sequence     (n 0..127)
//   10nnnnnn + octet      replication  (octet repeated n 0..63 times)
//   11nnnnnn              filler       (zero octet n 0..63 times)
// A shipping unit ends when its bag is complete: the bag's LIST header tells
// its length, so bags can be framed on a stream without any other marker.
import { ImpError, ImpErrorCode } from './errors.js';
import { MAX_BAG_OCTETS } from './limits.js';
import { toBuffer } from './element-decode.js';

export const CompressionType = { NONE: 0, BASIC: 1 } as const;
export type CompressionType = (typeof CompressionType)[keyof typeof CompressionType];

/**
 * Basic compression. Greedy and locally optimal: zero runs of 2+ (or 1 with
 * no sequence open) become filler units, other runs of 3+ (2 with no sequence
 * open) replication units, everything else joins the open sequence unit.
 * `prefix` octets are reserved at the front of the result (for a compression-type octet).
 */
export function compressBasic(data: Uint8Array, prefix = 0): Buffer {
  const n = data.length;
  const out = Buffer.allocUnsafe(prefix + n + Math.ceil(n / 127) + 1);
  let o = prefix;
  let seq = -1; // offset of the open sequence unit's flag octet
  let seqLen = 0;
  let i = 0;
  while (i < n) {
    const b = data[i]!;
    let r = 1;
    while (r < 63 && i + r < n && data[i + r] === b) r++;
    if (b === 0 ? r >= 2 || seq < 0 : r >= 3 || (r === 2 && seq < 0)) {
      if (b === 0) out[o++] = 0xc0 | r;
      else {
        out[o++] = 0x80 | r;
        out[o++] = b;
      }
      seq = -1;
      i += r;
      continue;
    }
    for (let k = 0; k < r; k++) {
      if (seq < 0 || seqLen === 127) {
        seq = o++;
        seqLen = 0;
      }
      out[o++] = b;
      out[seq] = ++seqLen;
    }
    i += r;
  }
  return out.subarray(0, o);
}

export interface DecompressOptions {
  /** Refuse output larger than this many octets. Default: the largest bag, 2^24+3. */
  maxBytes?: number;
}

/** Decompresses a complete basic-compressed octet string (two passes: size, then write). */
export function decompressBasic(input: Uint8Array, opts: DecompressOptions = {}): Buffer {
  const max = opts.maxBytes ?? MAX_BAG_OCTETS;
  const n = input.length;
  let size = 0;
  for (let i = 0; i < n; ) {
    const f = input[i]!;
    const unitAt = i;
    if (f < 0x80) {
      size += f;
      i += 1 + f;
    } else if (f < 0xc0) {
      size += f & 0x3f;
      i += 2;
    } else {
      size += f & 0x3f;
      i += 1;
    }
    if (i > n) throw new ImpError(ImpErrorCode.TRUNCATED, `compression unit needs ${i - unitAt} octets, input ends after ${n - unitAt}`, { offset: unitAt });
    if (size > max) throw new ImpError(ImpErrorCode.TOO_LARGE, `decompressed size exceeds the limit of ${max} octets`, { offset: unitAt });
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (let i = 0; i < n; ) {
    const f = input[i++]!;
    if (f < 0x80) {
      out.set(input.subarray(i, i + f), o);
      o += f;
      i += f;
    } else if (f < 0xc0) {
      const c = f & 0x3f;
      out.fill(input[i++]!, o, o + c);
      o += c;
    } else {
      const c = f & 0x3f;
      out.fill(0, o, o + c);
      o += c;
    }
  }
  return out;
}

/** compression-type octet + bag, basic-compressed when `compress` is true. */
export function encodeShippingUnit(bag: Uint8Array, opts: { compress?: boolean } = {}): Buffer {
  if (opts.compress) {
    const out = compressBasic(bag, 1);
    out[0] = CompressionType.BASIC;
    return out;
  }
  const out = Buffer.allocUnsafe(bag.length + 1);
  out[0] = CompressionType.NONE;
  out.set(bag, 1);
  return out;
}

export interface ShippingUnit {
  compression: CompressionType;
  /** The bag's octets (a view of the input when it arrived uncompressed in one chunk). */
  bag: Buffer;
  /** Stream offset of the unit's compression-type octet. */
  offset: number;
  /** Stream offset just after the unit's last octet. */
  end: number;
}

export interface ShippingUnitDecoderOptions {
  /** Largest bag accepted (after decompression). Default 2^24+3, the format's own maximum. */
  maxBagBytes?: number;
}

const enum State {
  Type,
  Raw,
  UnitFlag,
  Sequence,
  ReplicationOctet,
}

/**
 * Incremental shipping-unit decoder: push chunks as they arrive (any split),
 * get back each bag as soon as its last octet is in. Memory is bounded by the
 * bag being assembled, which is allocated once its 4-octet LIST header is known
 * and checked against maxBagBytes.
 */
export class ShippingUnitDecoder {
  private readonly maxBagBytes: number;
  private state = State.Type;
  /** Octets consumed so far (stream offset). */
  private offset = 0;
  private unitOffset = 0;
  private compression: CompressionType = CompressionType.NONE;
  private readonly header = Buffer.alloc(4);
  private headerFill = 0;
  private bag: Buffer | null = null;
  private fill = 0;
  private seqLeft = 0;
  private repCount = 0;
  private out: ShippingUnit[] = [];
  /** Stop consuming at the end of the first unit (decodeShippingUnit reports what follows as trailing data). */
  private readonly single: boolean;

  constructor(opts: ShippingUnitDecoderOptions & { single?: boolean } = {}) {
    this.maxBagBytes = opts.maxBagBytes ?? MAX_BAG_OCTETS;
    this.single = opts.single ?? false;
  }

  /** True between units (nothing partial buffered). */
  get idle(): boolean {
    return this.state === State.Type && !this.fault;
  }

  /**
   * The stream fault found in a chunk that also completed units: those units were
   * returned by that push (they arrived whole before the fault, so they are the
   * peer's to have answered); every later push and end() throw this.
   */
  get failed(): ImpError | undefined {
    return this.fault;
  }

  private fault: ImpError | undefined;

  /**
   * Feeds octets; returns the shipping units completed by them (possibly none).
   * Throws the stream's fault, unless units were completed before it in the same
   * chunk: then those are returned and the fault is kept in `failed`.
   */
  push(input: Uint8Array): ShippingUnit[] {
    if (this.fault) throw this.fault;
    try {
      return this.consume(input);
    } catch (err) {
      const done = this.out;
      this.out = [];
      if (!(err instanceof ImpError) || done.length === 0) throw err;
      this.fault = err;
      return done;
    }
  }

  private consume(input: Uint8Array): ShippingUnit[] {
    const chunk = toBuffer(input);
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.single && this.out.length) break;
      switch (this.state) {
        case State.Type: {
          const t = chunk[i]!;
          if (t > 1) throw new ImpError(ImpErrorCode.UNKNOWN_CODE, `unknown compression type ${t}`, { offset: this.offset + i });
          this.compression = t as CompressionType;
          this.unitOffset = this.offset + i;
          this.headerFill = 0;
          this.bag = null;
          this.fill = 0;
          i++;
          this.state = t === 0 ? State.Raw : State.UnitFlag;
          // Zero-copy: a whole uncompressed bag inside this chunk is returned as a view.
          if (t === 0 && n - i >= 4) {
            const total = this.bagLength(chunk, i, this.offset + i);
            if (n - i >= total) {
              this.out.push({ compression: 0, bag: chunk.subarray(i, i + total), offset: this.unitOffset, end: this.offset + i + total });
              i += total;
              this.state = State.Type;
            }
          }
          break;
        }
        case State.Raw:
          i = this.put(chunk, i, n);
          break;
        case State.UnitFlag: {
          const f = chunk[i]!;
          const at = this.offset + i;
          i++;
          if (f < 0x80) {
            this.seqLeft = f;
            this.unitOffset2 = at;
            if (f) this.state = State.Sequence;
          } else if (f < 0xc0) {
            this.repCount = f & 0x3f;
            this.unitOffset2 = at;
            this.state = State.ReplicationOctet;
          } else {
            this.repeat(0, f & 0x3f, at, this.offset + i);
          }
          break;
        }
        case State.Sequence: {
          const take = Math.min(this.seqLeft, n - i);
          const end = this.put(chunk, i, i + take);
          this.seqLeft -= end - i;
          i = end;
          const finished = (this.state as State) === State.Type;
          if (this.seqLeft === 0 && !finished) this.state = State.UnitFlag;
          else if (this.seqLeft !== 0 && finished) {
            // the bag's last octets came in a unit that overruns it: that bag is not whole
            this.out.pop();
            throw new ImpError(ImpErrorCode.COUNT_OVERRUN, `sequence unit runs ${this.seqLeft} octets past the end of the bag`, {
              offset: this.unitOffset2,
            });
          }
          break;
        }
        case State.ReplicationOctet: {
          const b = chunk[i]!;
          i++;
          this.state = State.UnitFlag;
          this.repeat(b, this.repCount, this.unitOffset2, this.offset + i);
          break;
        }
      }
    }
    this.offset += n;
    const done = this.out;
    this.out = [];
    return done;
  }

  /** Declares the end of input; throws ERR_IMP_TRUNCATED if a unit is incomplete. */
  end(): void {
    if (this.fault) throw this.fault;
    if (this.state !== State.Type)
      throw new ImpError(
        ImpErrorCode.TRUNCATED,
        `input ends inside the shipping unit that starts at offset ${this.unitOffset}` +
          (this.bag ? ` (${this.fill} of ${this.bag.length} bag octets)` : ''),
        { offset: this.offset },
      );
  }

  private unitOffset2 = 0;

  /** Bag length from its LIST header at `at`, checked against the limit. */
  private bagLength(src: Buffer, at: number, streamOffset: number): number {
    if (src[at] !== 7)
      throw new ImpError(ImpErrorCode.MESSAGE, `a message-bag is a LIST (code 7); found code ${src[at]}`, {
        offset: streamOffset,
        path: 'bag',
      });
    const total = 4 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
    if (total > this.maxBagBytes)
      throw new ImpError(ImpErrorCode.TOO_LARGE, `bag of ${total} octets exceeds the limit of ${this.maxBagBytes}`, {
        offset: streamOffset,
      });
    return total;
  }

  /** Copies bag octets from src[i..end); returns where it stopped (the bag may complete first). */
  private put(src: Buffer, i: number, end: number): number {
    while (i < end) {
      if (!this.bag) {
        this.header[this.headerFill++] = src[i++]!;
        if (this.headerFill === 4) {
          this.startBag(this.offset + i - 4, this.offset + i);
          // a bag that is only its 4-octet header is complete already
          if (this.state === State.Type) return i;
        }
        continue;
      }
      const take = Math.min(end - i, this.bag.length - this.fill);
      src.copy(this.bag, this.fill, i, i + take);
      this.fill += take;
      i += take;
      if (this.fill === this.bag.length) {
        this.finish(this.offset + i);
        return i;
      }
    }
    return i;
  }

  private repeat(octet: number, count: number, at: number, unitEnd: number): void {
    while (count > 0 && !this.bag) {
      this.header[this.headerFill++] = octet;
      count--;
      if (this.headerFill === 4) this.startBag(at, unitEnd);
    }
    if (count > 0 && this.state === State.Type) {
      this.out.pop();
      throw new ImpError(ImpErrorCode.COUNT_OVERRUN, `compression unit expands ${count} octets past the end of the bag`, { offset: at });
    }
    if (count === 0) return;
    const bag = this.bag!;
    if (this.fill + count > bag.length)
      throw new ImpError(
        ImpErrorCode.COUNT_OVERRUN,
        `compression unit expands ${this.fill + count - bag.length} octets past the end of the bag`,
        { offset: at },
      );
    bag.fill(octet, this.fill, this.fill + count);
    this.fill += count;
    if (this.fill === bag.length) this.finish(unitEnd);
  }

  private startBag(at: number, end: number): void {
    const total = this.bagLength(this.header, 0, at);
    this.bag = Buffer.allocUnsafe(total);
    this.header.copy(this.bag, 0);
    this.fill = 4;
    if (this.fill === total) this.finish(end);
  }

  private finish(end: number): void {
    this.out.push({ compression: this.compression, bag: this.bag!, offset: this.unitOffset, end });
    this.state = State.Type;
  }
}

/** Decodes exactly one shipping unit spanning all of `input`. */
export function decodeShippingUnit(input: Uint8Array, opts: ShippingUnitDecoderOptions = {}): ShippingUnit {
  const d = new ShippingUnitDecoder({ ...opts, single: true });
  const buf = toBuffer(input);
  if (buf.length === 0) throw new ImpError(ImpErrorCode.TRUNCATED, 'empty input: a shipping unit needs a compression-type octet', { offset: 0 });
  const units = d.push(buf);
  const first = units[0];
  if (first && first.end !== buf.length)
    throw new ImpError(ImpErrorCode.TRAILING_DATA, `${buf.length - first.end} octets follow the shipping unit`, { offset: first.end });
  d.end();
  return first!;
}
