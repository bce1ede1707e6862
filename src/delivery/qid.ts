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

export interface QidLane {
  /** This generator's lane, 0 <= lane < lanes. */
  lane: number;
  /** How many generators share the id space (threads of one gateway). */
  lanes: number;
}

/**
 * Monotonic: every id is greater than the previous one, and greater than `after` (the
 * largest qid in the store), so a restart within the same millisecond, or with the
 * clock stepped back, can never reuse an id. Generators in different lanes (the SMTP
 * thread and the delivery thread, which queues bounces) use counters of different
 * residues, so they never produce the same id.
 */
export class QidGenerator {
  private time = 0;
  private counter = -1;
  private readonly lane: number;
  private readonly lanes: number;

  constructor(after?: string, lane: QidLane = { lane: 0, lanes: 1 }) {
    this.lane = lane.lane;
    this.lanes = lane.lanes;
    if (after && isQid(after)) {
      this.time = parseInt(after.slice(0, TIME_DIGITS), 36);
      this.counter = parseInt(after.slice(TIME_DIGITS), 36);
    }
  }

  next(now = Date.now()): string {
    if (now > this.time) {
      this.time = now;
      this.counter = this.lane;
    } else {
      // the next counter above the current one that is in this lane
      const c = this.counter + 1;
      this.counter = c + ((((this.lane - c) % this.lanes) + this.lanes) % this.lanes);
      if (this.counter >= COUNTER_LIMIT) {
        this.time++;
        this.counter = this.lane;
      }
    }
    return (
      this.time.toString(36).padStart(TIME_DIGITS, '0') + this.counter.toString(36).padStart(COUNTER_DIGITS, '0')
    ).toUpperCase();
  }
}

/** The later of two qids (either may be missing): where a generator must start. */
export function laterQid(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
