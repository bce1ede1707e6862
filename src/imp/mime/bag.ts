// Whole-bag entry points: a MIME message to bag (or shipping-unit) bytes, and bag
// bytes back to MIME messages. Size limits are checked here, before anything is sent.
import { decodeBag, type DecodeBagOptions, encodeBag } from '../bag.js';
import { decodeShippingUnit, encodeShippingUnit } from '../compression.js';
import { ImpError, ImpErrorCode } from '../errors.js';
import { MAX_BAG_OCTETS } from '../limits.js';
import type { Tid } from '../types.js';
import { impMessageToMime, type MimeFromImp } from './from-imp.js';
import { mimeToImpMessages, type MimeToImpOptions } from './to-imp.js';

export interface MimeToBagOptions extends MimeToImpOptions {
  /** Write a shipping unit with Appendix B basic compression instead of a bare bag. */
  compress?: boolean;
}

/**
 * One MIME message (all its recipients) as one bag. Throws ImpError ERR_IMP_TOO_LARGE
 * when the bag would exceed RFC 753's 2^24-1 octets.
 */
export function mimeToBag(raw: Buffer, opts: MimeToBagOptions): Buffer {
  let bag: Buffer;
  try {
    bag = encodeBag(mimeToImpMessages(raw, opts));
  } catch (err) {
    // A count field overflowing while encoding means the message does not fit a bag.
    if (err instanceof ImpError && err.code === ImpErrorCode.LIMIT) {
      throw new ImpError(ImpErrorCode.TOO_LARGE, `message of ${raw.length} octets does not fit an IMP message bag (${err.message})`);
    }
    throw err;
  }
  if (bag.length > MAX_BAG_OCTETS) {
    throw new ImpError(ImpErrorCode.TOO_LARGE, `message of ${raw.length} octets needs a ${bag.length}-octet IMP message bag; a bag holds at most ${MAX_BAG_OCTETS - 4} octets after its count`);
  }
  return opts.compress ? encodeShippingUnit(bag, { compress: true }) : bag;
}

export interface MimeFromBag extends MimeFromImp {
  tid: Tid;
}

/**
 * Every DELIVER message of a bare bag or a shipping unit (first octet 0 or 1) as MIME. Structure errors name the element path, e.g. `message[2].command.stamp`.
 */
export function bagToMime(input: Buffer, opts: DecodeBagOptions = {}): MimeFromBag[] {
  // A bare bag starts with its LIST code (7); a shipping unit with its compression type (0 or 1).
  const bag = input.length > 0 && (input[0] === 0 || input[0] === 1)
    ? decodeShippingUnit(input, opts.maxBagBytes === undefined ? {} : { maxBagBytes: opts.maxBagBytes }).bag
    : input;
  return decodeBag(bag, opts).map((msg, i) => ({ tid: msg.tid, ...impMessageToMime(msg, `message[${i}]`) }));
}
