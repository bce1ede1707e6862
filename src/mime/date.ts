// RFC 5322 section 3.3 date-time, the one formatter every generated header uses
// (Received:, bounces' Date: and report fields, IMP documents converted to MIME).

/** A wall-clock time with its offset from UTC, as a date-time field states it. */
export interface DateTimeParts {
  year: number;
  /** 1..12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Offset from UTC in minutes, east positive. */
  offset: number;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** The day of the week of a calendar date (0 = Sunday); years below 100 are not moved to 19xx. */
function weekday(year: number, month: number, day: number): number {
  const d = new Date(Date.UTC(2000, month - 1, day));
  d.setUTCFullYear(year, month - 1, day);
  return d.getUTCDay();
}

/** `Thu, 29 Mar 1979 11:46:00 -0800` from wall-clock parts and their offset. */
export function formatDateTime(p: DateTimeParts): string {
  const sign = p.offset < 0 ? '-' : '+';
  const off = Math.abs(p.offset);
  return (
    `${DAYS[weekday(p.year, p.month, p.day)]}, ${p.day} ${MONTHS[p.month - 1]} ${pad(p.year, 4)} ` +
    `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)} ${sign}${pad(Math.floor(off / 60))}${pad(off % 60)}`
  );
}

/** An instant as an RFC 5322 date-time in UTC, e.g. `Wed, 25 Nov 2026 09:37:37 +0000`. */
export function rfc5322Date(d: Date): string {
  return formatDateTime({
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    offset: 0,
  });
}
