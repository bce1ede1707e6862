// Queue ids in the sendmail/postfix spirit: short, uppercase [0-9A-Z], unique per
// gateway and sortable by acceptance time. 9 base-36 digits of milliseconds since
// the epoch (good until the year 5188) followed by a 4-digit per-millisecond counter.

const TIME_DIGITS = 9;
const COUNTER_DIGITS = 4;
const COUNTER_LIMIT = 36 ** COUNTER_DIGITS;

export const QID_PATTERN = /^[0-9A-Z]{13}$/;

export function isQid(value: string): boolean {
  return QID_PATTERN.test(value);
}

/**
 * Monotonic: every id is greater than the previous one, and greater than `after` (the
 * largest qid in the store), so a restart within the same millisecond, or with the
 * clock stepped back, can never reuse an id.
 */
export class QidGenerator {
  private time = 0;
  private counter = -1;

  constructor(after?: string) {
    if (after && isQid(after)) {
      this.time = parseInt(after.slice(0, TIME_DIGITS), 36);
      this.counter = parseInt(after.slice(TIME_DIGITS), 36);
    }
  }

  next(now = Date.now()): string {
    if (now > this.time) {
      this.time = now;
      this.counter = 0;
    } else if (++this.counter >= COUNTER_LIMIT) {
      this.time++;
      this.counter = 0;
    }
    return (
      this.time.toString(36).padStart(TIME_DIGITS, '0') + this.counter.toString(36).padStart(COUNTER_DIGITS, '0')
    ).toUpperCase();
  }
}
