// Date conversion between RFC 5322 (`Thu, 29 Mar 1979 11:46:00 -0800`) and the
// RFC 753 document DATE form (`1979-03-29-11:46:00,000-08:00`, ISO 2014/3307/4031).
// Both keep the sender's local time and offset: nothing is moved to UTC.
import { formatDateTime } from '../../mime/date.js';

export interface LocalDate {
  year: number;
  month: number; // 1..12
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  /** Offset from Greenwich in minutes (east positive). */
  offset: number;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// RFC 5322 section 4.3 obsolete zones; military letters other than Z are
// "unknown" per RFC 5322 and read as -0000 (i.e. 0).
const ZONES: Record<string, number> = {
  ut: 0, gmt: 0, z: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420,
};

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function valid(d: LocalDate): boolean {
  if (d.month < 1 || d.month > 12 || d.day < 1 || d.hour > 23 || d.minute > 59 || d.second > 60) return false;
  const dim = new Date(Date.UTC(d.year, d.month, 0)).getUTCDate();
  return d.day <= dim && Math.abs(d.offset) < 24 * 60;
}

/** Parses an RFC 5322 (or obsolete RFC 822) date-time; undefined when it is not one. */
export function parseRfc5322Date(value: string): LocalDate | undefined {
  const s = value.replace(/\([^()]*\)/g, ' ').replace(/\s+/g, ' ').trim();
  const m = /^(?:[A-Za-z]{3},? ?)?(\d{1,2}) ([A-Za-z]{3})[a-z]* (\d{2,4}) (\d{1,2}):(\d{2})(?::(\d{2}))? ?([+-]\d{4}|[A-Za-z]{1,5})?$/.exec(s);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2]!.toLowerCase()) + 1;
  if (month === 0) return undefined;
  let year = Number(m[3]);
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  let offset = 0;
  const zone = m[7];
  if (zone && /^[+-]\d{4}$/.test(zone)) {
    const sign = zone[0] === '-' ? -1 : 1;
    offset = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  } else if (zone) offset = ZONES[zone.toLowerCase()] ?? 0;
  const d: LocalDate = {
    year, month, day: Number(m[1]), hour: Number(m[4]), minute: Number(m[5]), second: Number(m[6] ?? 0), millisecond: 0, offset,
  };
  return valid(d) ? d : undefined;
}

/** `yyyy-mm-dd-hh:mm:ss,fff+hh:mm` */
export function formatImpDate(d: LocalDate): string {
  const sign = d.offset < 0 ? '-' : '+';
  const off = Math.abs(d.offset);
  return (
    `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)}-${pad(d.hour)}:${pad(d.minute)}:${pad(d.second)},` +
    `${pad(d.millisecond, 3)}${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`
  );
}

/**
 * Parses an RFC 753 DATE. Seconds and the fraction may be absent (RFC 753's own
 * Example 1 writes `1979-03-29-11:46-08:00`); `Z` stands for +00:00.
 */
export function parseImpDate(value: string): LocalDate | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})-(\d{2}):(\d{2})(?::(\d{2})(?:[,.](\d{1,9}))?)?(?:([+-])(\d{2}):?(\d{2})|Z)?$/.exec(value.trim());
  if (!m) return undefined;
  const frac = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const offset = m[8] ? (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10])) : 0;
  const d: LocalDate = {
    year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), hour: Number(m[4]), minute: Number(m[5]),
    second: Number(m[6] ?? 0), millisecond: frac, offset,
  };
  return valid(d) ? d : undefined;
}

/** `Thu, 29 Mar 1979 11:46:00 -0800` (the fraction of a second is dropped: RFC 5322 has none). */
export function formatRfc5322Date(d: LocalDate): string {
  return formatDateTime(d);
}

/** RFC 5322 date text -> RFC 753 DATE text, or undefined when the input is not a date. */
export function rfc5322ToImpDate(value: string): string | undefined {
  const d = parseRfc5322Date(value);
  return d && formatImpDate(d);
}

/** RFC 753 DATE text -> RFC 5322 date text, or undefined when the input is not a DATE. */
export function impToRfc5322Date(value: string): string | undefined {
  const d = parseImpDate(value);
  return d && formatRfc5322Date(d);
}
