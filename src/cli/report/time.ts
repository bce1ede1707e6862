import { UsageError } from '../command.js';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * ISO 8601 with a date and, optionally, a time: `2026-11-30`, `2026-11-30T08:00`,
 * `2026-11-30T08:00:00.5Z`, `2026-11-30 08:00+01:00`. A date alone or a time without an
 * offset is UTC (a report is read on servers whose zone says nothing about the mail).
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * A point in time for `--since`/`--until`: ISO 8601, `now`, or relative to `now` as a
 * count and a unit (`30m`, `24h`, `7d`, `2w`; optionally with `-` before it, same meaning:
 * that long ago). Returns ms since the epoch; anything else is a usage error naming the flag.
 */
export function parseReportTime(flag: string, text: string, now: number): number {
  const value = text.trim();
  if (value === 'now') return now;
  const rel = /^-?(\d{1,6})([mhdw])$/.exec(value);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]!]!;
  const iso = ISO.exec(value);
  if (iso) {
    const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone] = iso;
    const ms = Number((frac + '000').slice(0, 3));
    const fields = [Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s)] as const;
    let t = Date.UTC(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5], ms);
    // Date.UTC rolls 2026-02-30 over into March: compare the fields back to refuse it.
    const back = new Date(t);
    const valid =
      back.getUTCFullYear() === fields[0] &&
      back.getUTCMonth() === fields[1] - 1 &&
      back.getUTCDate() === fields[2] &&
      back.getUTCHours() === fields[3] &&
      back.getUTCMinutes() === fields[4] &&
      back.getUTCSeconds() === fields[5];
    // An offset is hours 00-23 and minutes 00-59 (RFC 3339): `+99:00` is a typo, not a time four days off.
    const z = zone && zone.toUpperCase() !== 'Z' ? /^([+-])(\d{2}):?(\d{2})$/.exec(zone)! : undefined;
    if (valid && (!z || (Number(z[2]) <= 23 && Number(z[3]) <= 59))) {
      if (z) {
        const offset = (Number(z[2]) * 60 + Number(z[3])) * 60_000;
        t -= z[1] === '+' ? offset : -offset;
      }
      return t;
    }
  }
  throw new UsageError(`${flag} '${text}' is not a time: use ISO 8601 (2026-11-30, 2026-11-30T08:00Z) or a span before now (30m, 24h, 7d, 2w)`);
}

export type BucketName = 'hour' | 'day';
export const BUCKET_MS: Record<BucketName, number> = { hour: 3_600_000, day: 86_400_000 };

export interface ReportWindowSpec {
  since: number;
  until: number;
  by: BucketName;
}

/**
 * The window of a report from its flags: the last 24 hours by default, hours up to two
 * days and days beyond unless `--by` says. `--since` must be before `--until`.
 */
export function reportWindow(opts: { since?: string | undefined; until?: string | undefined; by?: string | undefined }, now: number): ReportWindowSpec {
  const until = opts.until === undefined ? now : parseReportTime('--until', opts.until, now);
  const since = opts.since === undefined ? until - 86_400_000 : parseReportTime('--since', opts.since, now);
  if (since >= until) {
    throw new UsageError(`--since (${new Date(since).toISOString()}) must be before --until (${new Date(until).toISOString()})`);
  }
  if (opts.by !== undefined && opts.by !== 'hour' && opts.by !== 'day') throw new UsageError(`--by must be hour or day, not '${opts.by}'`);
  const by: BucketName = (opts.by as BucketName | undefined) ?? (until - since <= 2 * 86_400_000 ? 'hour' : 'day');
  return { since, until, by };
}
