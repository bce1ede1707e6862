import { PodError } from './errors.js';

/**
 * A PoD timestamp resolved to one instant. PoD agents write their local offset (`-0700` or
 * `-07:00`) and microseconds; `utc` is the canonical form (always six fraction digits, `Z`),
 * so two spellings of one instant compare equal as strings and sort in time order.
 */
export interface PodInstant {
  /** Microseconds since the Unix epoch (exact: PoD's range fits a double's 53 bits). */
  epochUs: number;
  /** `YYYY-MM-DDTHH:MM:SS.ffffffZ` */
  utc: string;
  /** The offset the agent wrote, in minutes east of UTC (-420 for `-07:00`). */
  offsetMinutes: number;
}

// Seconds and fraction optional because the API's own sinceTime examples omit them; more than
// six fraction digits are accepted and cut to microseconds (the finest unit PoD writes).
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):?(\d{2}))$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** Parses an ISO 8601 timestamp with an explicit offset; throws `ERR_POD_TIME` otherwise. */
export function parsePodTime(text: string): PodInstant {
  const m = TIMESTAMP.exec(text);
  if (!m) throw new PodError('ERR_POD_TIME', `'${text.slice(0, 64)}' is not an ISO 8601 time with an offset`);
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const micros = m[7] === undefined ? 0 : Number(m[7].slice(0, 6).padEnd(6, '0'));
  const offHours = m[10] === undefined ? 0 : Number(m[10]);
  const offMins = m[11] === undefined ? 0 : Number(m[11]);
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (monthDays === undefined || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59 || offHours > 23 || offMins > 59) {
    throw new PodError('ERR_POD_TIME', `'${text.slice(0, 64)}' is not a valid date and time`);
  }
  const offsetMinutes = m[8] === 'Z' ? 0 : (m[9] === '-' ? -1 : 1) * (offHours * 60 + offMins);
  // Date.UTC reads years 0-99 as 1900-1999: those take the longer way.
  let epochMs = Date.UTC(year, month - 1, day, hour, minute, second);
  if (year < 100) {
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(hour, minute, second, 0);
    epochMs = date.getTime();
  }
  const epochUs = epochMs * 1000 + micros - offsetMinutes * 60_000_000;
  return { epochUs, utc: formatUtc(epochUs), offsetMinutes };
}

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` for an epoch in microseconds. */
export function formatUtc(epochUs: number): string {
  const ms = Math.floor(epochUs / 1000);
  const micros = epochUs - ms * 1000;
  const iso = new Date(ms).toISOString(); // ...SS.mmmZ
  return `${iso.slice(0, -1)}${String(micros).padStart(3, '0')}Z`;
}

/**
 * The instant in PoD's own spelling: local time at `offsetMinutes`, microseconds and a
 * `-0700` style offset (what newer agents write; the publisher uses it).
 */
export function formatPodTime(epochUs: number, offsetMinutes: number): string {
  const local = formatUtc(epochUs + offsetMinutes * 60_000_000).slice(0, -1);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
}
