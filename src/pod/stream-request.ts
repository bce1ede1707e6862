// The /v1/stream query as the PoD Log API defines it: cid, type, and for archive mode
// sinceTime/toTime, rounded to whole hours (since down, to up) within the 30-day limit.
import { parsePodTime } from './time.js';
import type { PodEventKind } from './ingest.js';

const HOUR_MS = 3_600_000;
export const ARCHIVE_LIMIT_MS = 30 * 24 * HOUR_MS;

export type StreamMode = { kind: 'live' } | { kind: 'archive'; fromMs: number; toMs: number };

export interface StreamRequest {
  cid: string;
  type: PodEventKind;
  mode: StreamMode;
}

/** Why the query is a 400 Bad Request. */
export class BadStreamRequest extends Error {
  readonly code = 'ERR_POD_BAD_REQUEST';
  constructor(message: string) {
    super(message);
    this.name = 'BadStreamRequest';
  }
}

function timeParam(name: string, value: string): number {
  if (value === '') throw new BadStreamRequest(`invalid ${name}: empty`);
  // A '+' offset written into the URL unencoded is decoded as a space: that space is the '+'.
  const text = value.replace(/ (\d{2}:?\d{2})$/, '+$1');
  try {
    return Math.floor(parsePodTime(text).epochUs / 1000);
  } catch {
    throw new BadStreamRequest(`invalid ${name}: ${JSON.stringify(value)}`);
  }
}

/**
 * Parses the query. A sinceTime within the last hour is not used (the document: "used
 * only if the specified timestamp is older than at least one hour from now"): the
 * connection is live. toTime defaults to now and must be after sinceTime; the window
 * reaches back 30 days at most (the archive's limit).
 */
export function parseStreamRequest(query: URLSearchParams, nowMs: number): StreamRequest {
  // Taking the first (or last) of two values would serve a stream the client may not have
  // meant: `type=message&type=maillog` is a mistake to report, not to guess at.
  for (const name of ['cid', 'type', 'sinceTime', 'toTime']) {
    const values = query.getAll(name);
    if (values.length > 1) throw new BadStreamRequest(`${name} given ${values.length} times (${values.map((v) => JSON.stringify(v)).join(', ')}); give it once`);
  }
  const cid = query.get('cid') ?? '';
  if (!cid) throw new BadStreamRequest('missing or empty cid');
  const type = query.get('type') ?? '';
  if (!type) throw new BadStreamRequest('missing or empty type');
  if (type !== 'message' && type !== 'maillog') throw new BadStreamRequest(`type must be message or maillog, not ${JSON.stringify(type)}`);
  const since = query.get('sinceTime');
  const to = query.get('toTime');
  if (since === null && to === null) return { cid, type, mode: { kind: 'live' } };
  if (since === null) throw new BadStreamRequest('invalid toTime: toTime needs sinceTime');
  const sinceMs = timeParam('sinceTime', since);
  const toMs = to === null ? nowMs : timeParam('toTime', to);
  if (to !== null && toMs <= sinceMs) throw new BadStreamRequest('invalid toTime: must be after sinceTime');
  if (sinceMs > nowMs - HOUR_MS) return { cid, type, mode: { kind: 'live' } };
  // Nothing older than 30 days is kept: an older sinceTime (the document's own curl
  // example has one) starts at the limit, rounded up to stay inside it.
  const fromMs = Math.max(floorHour(sinceMs), ceilHour(nowMs - ARCHIVE_LIMIT_MS));
  return { cid, type, mode: { kind: 'archive', fromMs, toMs: Math.max(fromMs, ceilHour(toMs)) } };
}

export function floorHour(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

export function ceilHour(ms: number): number {
  return Math.ceil(ms / HOUR_MS) * HOUR_MS;
}
