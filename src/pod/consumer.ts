// The pure parts of the PoD Log API consumer: request URLs, the archive's hour windows
// and 30-day limit, gap detection, reconnect delays and what each refusal means. No I/O,
// no clock: callers pass `now`.
import type { PodEventKind } from './ingest.js';

export const HOUR_MS = 3_600_000;
/** The API keeps 30 days of events for archive requests. */
export const ARCHIVE_LIMIT_MS = 30 * 24 * HOUR_MS;
/**
 * A live session reconnected within an hour of a drop resumes from the drop; after a
 * longer drop it starts an hour back, so anything older must come from the archive.
 */
export const LIVE_RESUME_MS = HOUR_MS;

export interface StreamQuery {
  cid: string;
  type: PodEventKind;
  sinceTime?: string;
  toTime?: string;
}

/**
 * The request URL: `/v1/stream?cid=&type=[&sinceTime=&toTime=]` on the configured endpoint.
 * An endpoint that already names `/v1/stream` is used as it is.
 */
export function streamUrl(endpoint: string, q: StreamQuery): string {
  const url = new URL(endpoint);
  if (!/\/v1\/stream\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/stream`;
  const params = new URLSearchParams({ cid: q.cid, type: q.type });
  if (q.sinceTime !== undefined) params.set('sinceTime', q.sinceTime);
  if (q.toTime !== undefined) params.set('toTime', q.toTime);
  url.search = params.toString();
  return url.toString();
}

export function floorHour(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

export function ceilHour(ms: number): number {
  return Math.ceil(ms / HOUR_MS) * HOUR_MS;
}

/** The document's parameter form, `YYYY-MM-DDTHH:MM:SS-0000`, in UTC (`+0000`). */
export function formatArchiveTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}+0000`;
}

/** An archive request: whole hours, inside the 30-day limit. */
export interface ArchiveWindow {
  sinceMs: number;
  untilMs: number;
  sinceTime: string;
  toTime: string;
  /** Set when the wanted start was older than the archive keeps: events before `sinceMs` cannot be fetched. */
  clippedFromMs?: number;
}

/**
 * The archive request covering [sinceMs, untilMs]: since rounded down and until rounded
 * up to the hour (the service does the same, so the request says what it will get), the
 * start moved up to the oldest whole hour within 30 days of `nowMs`. Undefined when
 * nothing of the range is within reach (it ends before the limit, or is empty).
 */
export function archiveWindow(sinceMs: number, untilMs: number, nowMs: number): ArchiveWindow | undefined {
  const oldest = ceilHour(nowMs - ARCHIVE_LIMIT_MS);
  let since = floorHour(sinceMs);
  let clippedFromMs: number | undefined;
  if (since < oldest) {
    clippedFromMs = since;
    since = oldest;
  }
  const until = ceilHour(untilMs);
  if (until <= since) return undefined;
  const w: ArchiveWindow = { sinceMs: since, untilMs: until, sinceTime: formatArchiveTime(since), toTime: formatArchiveTime(until) };
  if (clippedFromMs !== undefined) w.clippedFromMs = clippedFromMs;
  return w;
}

/**
 * What a live session about to open will not deliver: everything after `coveredUntilMs`
 * (the newest stored event, or the moment a live session dropped) and before an hour
 * back from `nowMs`. Undefined when the drop was an hour or less ago (the live session
 * resumes from it) or nothing was ever received (nothing to resume).
 */
export function gapBeforeLive(coveredUntilMs: number | undefined, nowMs: number): { sinceMs: number; untilMs: number } | undefined {
  if (coveredUntilMs === undefined) return undefined;
  const liveFrom = nowMs - LIVE_RESUME_MS;
  if (coveredUntilMs >= liveFrom) return undefined;
  return { sinceMs: coveredUntilMs, untilMs: liveFrom };
}

/**
 * Reconnect delay after `failures` failed attempts in a row (0 for the first): doubling
 * from `initialMs`, capped at `maxMs`, with "equal jitter" (between half and all of it)
 * so that many consumers dropped together do not come back together. `random` in [0, 1).
 */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: number): number {
  const full = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 40));
  return Math.round(full / 2 + (full / 2) * random);
}

/** The wait after a 409: `baseMs` plus up to a quarter more. */
export function conflictDelay(baseMs: number, random: number): number {
  return Math.round(baseMs + (baseMs / 4) * random);
}

export type RefusalAction = 'stop' | 'conflict' | 'retry';

const STOPPING: Record<number, string> = {
  400: 'the request is malformed (cid, type, sinceTime or toTime): fix the stream config',
  401: 'the token is missing, invalid or expired, or the cid or its remote syslog license is not valid: fix the token or cid',
  404: 'the URL is not the Log API endpoint: fix the stream url',
  405: 'the service refused the request method',
};

/**
 * What an HTTP refusal of the handshake means for the stream: the document's 400, 401,
 * 404 and 405 do not get better by retrying (the stream stops, saying why), 409 means
 * another session holds the token (wait long, try again), anything else is transient.
 */
export function refusalAction(status: number): { action: RefusalAction; why: string } {
  const stop = STOPPING[status];
  if (stop !== undefined) return { action: 'stop', why: `HTTP ${status}: ${stop}` };
  if (status === 409) return { action: 'conflict', why: 'HTTP 409: the token is in use by another session (the API allows one session per token)' };
  return { action: 'retry', why: `HTTP ${status} from the service` };
}
