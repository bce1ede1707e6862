// Transaction numbers for the tids this MPM originates (RFC 753 section 3.7,
// "Implementation Recommendations"): sequential with wrap-around from 65535 to 0, and
// never one that is still awaiting its reply, so an ACKNOWLEDGE always names exactly one
// message in flight. Pure: persistence is a pair of callbacks.
import type { Tid } from '../types.js';

export const TN_COUNT = 0x10000;

/**
 * Where the high-water mark lives between runs and between processes (the store). The
 * allocator reserves tns in blocks: `reserve(from, block)` atomically records the end of
 * a block and returns its first tn, which is `from` unless another process (another
 * gateway run, `mailbag imp send`) has reserved past it, in which case the block starts
 * at that process's mark. After a crash or restart the allocator resumes past every tn
 * it may have used; one write is made per block, not per message.
 */
export interface TnHighWater {
  load(): number | undefined;
  reserve(from: number, block: number): number;
}

export interface TnAllocatorOptions {
  /** This MPM's internet host number (signed 32-bit, or 0..2^32-1 mapped to it). */
  ihn: number;
  /** The first tn (default: the saved high-water mark, else 0). */
  start?: number;
  highWater?: TnHighWater;
  /** Tns reserved per high-water write (default 256). */
  block?: number;
}

export class TnAllocator {
  readonly ihn: number;
  #next: number;
  readonly #awaiting = new Set<number>();
  readonly #highWater: TnHighWater | undefined;
  readonly #block: number;
  /** The first tn of the block reserved in the high-water store (undefined: none yet). */
  #reservedFrom: number | undefined;

  constructor(opts: TnAllocatorOptions) {
    const start = opts.start ?? opts.highWater?.load() ?? 0;
    if (!Number.isInteger(start) || start < 0 || start >= TN_COUNT) throw new RangeError(`tn start must be an integer 0..65535, got ${start}`);
    const block = opts.block ?? 256;
    if (!Number.isInteger(block) || block < 1 || block >= TN_COUNT) throw new RangeError(`tn block must be 1..65535, got ${block}`);
    this.ihn = opts.ihn | 0;
    this.#next = start;
    this.#highWater = opts.highWater;
    this.#block = block;
  }

  /** The tn the next allocation considers first. */
  get next(): number {
    return this.#next;
  }

  /** How many tns are awaiting their reply. */
  get awaiting(): number {
    return this.#awaiting.size;
  }

  isAwaiting(tn: number): boolean {
    return this.#awaiting.has(tn);
  }

  /**
   * The next tn in sequence that is not awaiting a reply, marked as awaiting; undefined
   * when all 65,536 are (the caller waits for replies, it never reuses one).
   */
  allocate(): Tid | undefined {
    if (this.#awaiting.size >= TN_COUNT) return undefined;
    let tn = this.#next;
    for (;;) {
      if (this.#highWater && !this.#covered(tn)) {
        tn = this.#highWater.reserve(tn, this.#block);
        this.#reservedFrom = tn;
      }
      if (!this.#awaiting.has(tn)) break;
      tn = (tn + 1) % TN_COUNT;
    }
    this.#awaiting.add(tn);
    this.#next = (tn + 1) % TN_COUNT;
    return { tn, ihn: this.ihn };
  }

  /** The reply for `tn` arrived, or will never come (connection lost, given up): it may be used again after a wrap. */
  release(tn: number): void {
    this.#awaiting.delete(tn);
  }

  #covered(tn: number): boolean {
    return this.#reservedFrom !== undefined && (tn - this.#reservedFrom + TN_COUNT) % TN_COUNT < this.#block;
  }
}
