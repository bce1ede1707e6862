// The hard limits RFC 753's count widths impose (see docs/imp.md, "Limits").

/** Largest value of a 3-octet count: octets after the count of TEXT, LIST, PROPLIST, PAD, ENCRYPT; bits of a BITSTR. */
export const MAX_COUNT24 = 0xffffff;
/** Most items in a LIST (2-octet item count). */
export const MAX_LIST_ITEMS = 0xffff;
/** Most pairs in a PROPLIST (1-octet pair count). */
export const MAX_PROPLIST_PAIRS = 0xff;
/** Longest PROPLIST name in octets (1-octet name count). */
export const MAX_NAME_OCTETS = 0xff;
/** Longest encoded PROPLIST value in octets (2-octet value count). */
export const MAX_VALUE_OCTETS = 0xffff;
/** Largest BITSTR payload in octets: ceil((2^24-1)/8). */
export const MAX_BITSTR_OCTETS = Math.ceil(MAX_COUNT24 / 8);
/** A whole bag: code + 3-octet count + at most 2^24-1 octets. */
export const MAX_BAG_OCTETS = 4 + MAX_COUNT24;

export const DEFAULT_MAX_DEPTH = 64;

/**
 * Most ihns in a stamp this MPM takes a message with (a hop limit, as SMTP's count of
 * Received fields). A reply's trail is the stamp plus one ihn, so a stamp near the LIST
 * limit would leave no room for it, and every reply would carry the whole stamp back.
 */
export const MAX_STAMP_HOPS = 255;

/**
 * Longest operation name this MPM reads (section 3.4's are at most 11 octets). A reply
 * to an operation it does not implement echoes the name, once per message, and messages
 * may share one command: a longer name is a syntax error, never echoed.
 */
export const MAX_OPERATION_OCTETS = 64;

export interface DecodeLimits {
  /** Deepest LIST/PROPLIST nesting accepted; the outermost element is depth 1. Default 64. */
  maxDepth?: number;
  /** Largest bag (or element) accepted, in octets. Default MAX_BAG_OCTETS. */
  maxBagBytes?: number;
}
