// Transaction numbers for the tids this gateway originates (RFC 753 section 3.3):
// sequential per MPM, 16 bits (INDEX), wrapping from 65535 to 0. The start value is
// injectable so the gateway can persist `next` across restarts.
import type { Tid } from '../types.js';

export interface TidAllocatorOptions {
  /** This MPM's internet host number (signed 32-bit, or 0..2^32-1 mapped to it). */
  ihn: number;
  /** The first tn to hand out (default 0). */
  start?: number;
}

export class TidAllocator {
  readonly ihn: number;
  #next: number;

  constructor(opts: TidAllocatorOptions) {
    const start = opts.start ?? 0;
    if (!Number.isInteger(start) || start < 0 || start > 0xffff) {
      throw new RangeError(`tid start must be an integer 0..65535, got ${start}`);
    }
    this.ihn = opts.ihn | 0; // signed 32-bit on the wire; 0..2^32-1 accepted
    this.#next = start;
  }

  /** The tn the next call to allocate() returns (persist this). */
  get next(): number {
    return this.#next;
  }

  allocate(): Tid {
    const tn = this.#next;
    this.#next = (tn + 1) & 0xffff;
    return { tn, ihn: this.ihn };
  }
}
