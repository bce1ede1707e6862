import { createHash } from 'node:crypto';
import { normaliseMessageId } from '../store/correlation-keys.js';
import type { PodBatchItem, PodDeadLetterInput, PodEventRowBase, PodMaillogRow, PodMessageRow } from '../store/pod-store.js';
import { PodError, type PodErrorCode } from './errors.js';
import { canonicalJsonPair, isJsonObject, sha256Hex, type JsonObject } from './json.js';
import { normaliseMaillog, normaliseMessage } from './normalise.js';
import { parseSendmailLine, sendmailFields, type SendmailFields, type SendmailLine } from './sendmail-line.js';
import { parsePodTime, type PodInstant } from './time.js';
import { schemaProblem } from './validate.js';

export type PodEventKind = 'message' | 'maillog';

/**
 * Largest payload taken as an event. Events over 1 MiB are normal (large `msgParts`); this
 * bound only keeps one runaway payload from exhausting memory.
 */
export const DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024;
/** How much of an oversize payload a dead letter keeps. */
export const DEAD_LETTER_KEEP_BYTES = 64 * 1024;

/** What makes an event "the same event again": see `podEventIdentity`. */
export interface PodEventIdentity {
  /** `guid` (message) or `id` (maillog). */
  eventId: string;
  tsUs: number;
  /** sha256 of the canonical JSON of the normalised event without `ts`. */
  contentSha256: string;
}

interface PodEventBase extends PodEventIdentity {
  ts: PodInstant;
  /** The normalised event (quirks fixed, nothing dropped). */
  event: JsonObject;
  /** `event` as canonical JSON (keys sorted), as it is stored. */
  json: string;
  cid?: string;
  agent?: string;
}

export interface PodMessageEvent extends PodEventBase {
  kind: 'message';
  qid: string;
  /** First `msg.header.message-id` in correlation's normal form (`normaliseMessageId`). */
  messageId?: string;
  sid?: string;
  envelopeFrom?: string;
  disposition?: string;
}

export interface PodMaillogEvent extends PodEventBase {
  kind: 'maillog';
  line: SendmailLine;
  /** From the raw line; `qid` falls back to `sm.qid` when the line has none. */
  fields: SendmailFields & { qid: string };
}

export type PodEvent = PodMessageEvent | PodMaillogEvent;

export type IngestOutcome = { ok: true; event: PodEvent } | { ok: false; code: PodErrorCode; reason: string };

export interface IngestOptions {
  /** The stream's type; when absent the event's shape decides (`guid` message, `data` maillog). */
  kind?: PodEventKind;
  maxEventBytes?: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function member(obj: JsonObject, ...path: string[]): unknown {
  let cur: unknown = obj;
  for (const k of path) cur = isJsonObject(cur) ? cur[k] : undefined;
  return cur;
}

function kindOf(event: JsonObject): PodEventKind {
  if (typeof event['guid'] === 'string') return 'message';
  if (typeof event['data'] === 'string' || isJsonObject(event['sm'])) return 'maillog';
  throw new PodError('ERR_POD_KIND', 'neither a message event (no guid) nor a maillog event (no data/sm)');
}

/**
 * The stored form (canonical JSON) and the content identity: the sha256 of every member but
 * `ts`, whose instant is compared separately (so `-0700` and `-07:00` agree). One pass.
 */
function canonical(event: JsonObject): { json: string; contentSha256: string } {
  const { full, without } = canonicalJsonPair(event, 'ts');
  return { json: full, contentSha256: sha256Hex(without) };
}

function messageEvent(event: JsonObject, ts: PodInstant): PodMessageEvent {
  const guid = event['guid'] as string;
  const messageIds = member(event, 'msg', 'header', 'message-id');
  const first = Array.isArray(messageIds) ? str(messageIds[0]) : undefined;
  const out: PodMessageEvent = {
    kind: 'message',
    eventId: guid,
    tsUs: ts.epochUs,
    ...canonical(event),
    ts,
    event,
    qid: member(event, 'filter', 'qid') as string,
  };
  fill(out, 'messageId', normaliseMessageId(first));
  fill(out, 'sid', member(event, 'connection', 'sid'));
  fill(out, 'envelopeFrom', member(event, 'envelope', 'from'));
  fill(out, 'disposition', member(event, 'filter', 'disposition'));
  fill(out, 'cid', member(event, 'pps', 'cid'));
  fill(out, 'agent', member(event, 'pps', 'agent'));
  return out;
}

/** Sets an optional member when the event has a string there (a module-level function: no closure per event). */
function fill(out: PodMessageEvent, k: 'messageId' | 'sid' | 'envelopeFrom' | 'disposition' | 'cid' | 'agent', v: unknown): void {
  if (typeof v === 'string') out[k] = v;
}

function maillogEvent(event: JsonObject, ts: PodInstant): PodMaillogEvent {
  const line = parseSendmailLine(event['data'] as string);
  const parsed = sendmailFields(line);
  const out: PodMaillogEvent = {
    kind: 'maillog',
    eventId: event['id'] as string,
    tsUs: ts.epochUs,
    ...canonical(event),
    ts,
    event,
    line,
    // The raw line is the truth; sm.qid only when the line carries none.
    fields: { ...parsed, qid: parsed.qid ?? (member(event, 'sm', 'qid') as string) },
  };
  const cid = str(member(event, 'pps', 'cid'));
  const agent = str(member(event, 'pps', 'agent'));
  if (cid !== undefined) out.cid = cid;
  if (agent !== undefined) out.agent = agent;
  return out;
}

/**
 * Takes one raw payload (a WebSocket message, a line of a file) and returns the validated,
 * normalised event, or why it cannot be taken (the caller dead-letters the payload with that
 * reason). Pure: no I/O, no clock. It never throws: whatever an event holds, the caller gets
 * an outcome to store.
 */
export function ingestPayload(payload: string | Buffer, opts: IngestOptions = {}): IngestOutcome {
  try {
    const max = opts.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
    const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (bytes > max) throw new PodError('ERR_POD_TOO_LARGE', `event of ${bytes} bytes is over the ${max}-byte limit`);
    let text: string;
    try {
      text = typeof payload === 'string' ? payload : utf8.decode(payload);
    } catch {
      throw new PodError('ERR_POD_JSON', 'payload is not UTF-8');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new PodError('ERR_POD_JSON', `not JSON: ${(err as Error).message}`);
    }
    if (!isJsonObject(parsed)) throw new PodError('ERR_POD_JSON', `expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
    const kind = opts.kind ?? kindOf(parsed);
    const event = kind === 'message' ? normaliseMessage(parsed) : normaliseMaillog(parsed);
    const problem = schemaProblem(kind, event);
    if (problem !== undefined) throw new PodError('ERR_POD_SCHEMA', `${kind} event: ${problem}`);
    const ts = parsePodTime(event['ts'] as string);
    return { ok: true, event: kind === 'message' ? messageEvent(event, ts) : maillogEvent(event, ts) };
  } catch (err) {
    if (err instanceof PodError) return { ok: false, code: err.code, reason: err.message };
    // One odd event must not stop a stream: it is dead-lettered with what went wrong.
    if (err instanceof RangeError) return { ok: false, code: 'ERR_POD_JSON', reason: `nested too deeply to process (${err.message})` };
    return { ok: false, code: 'ERR_POD_INTERNAL', reason: `cannot process: ${(err as Error).message}` };
  }
}

/** The (module, rule) of each `filter.actions[]` entry that names a rule. */
function rulesOf(event: JsonObject): Array<{ module: string; rule: string }> {
  const actions = member(event, 'filter', 'actions');
  if (!Array.isArray(actions)) return [];
  const out: Array<{ module: string; rule: string }> = [];
  for (const a of actions) {
    if (isJsonObject(a) && typeof a['rule'] === 'string') out.push({ module: typeof a['module'] === 'string' ? a['module'] : '', rule: a['rule'] });
  }
  return out;
}

/** The store rows for an ingested event. */
export function eventRow(ev: PodEvent): PodBatchItem {
  const base = {
    ts: ev.ts.utc,
    tsUs: ev.tsUs,
    contentSha256: ev.contentSha256,
    cid: ev.cid ?? null,
    agent: ev.agent ?? null,
    event: ev.json,
  };
  if (ev.kind === 'message') {
    const row: PodMessageRow = {
      ...base,
      guid: ev.eventId,
      qid: ev.qid,
      messageId: ev.messageId ?? null,
      sid: ev.sid ?? null,
      envelopeFrom: ev.envelopeFrom ?? null,
      disposition: ev.disposition ?? null,
      rules: rulesOf(ev.event),
    };
    return { kind: 'message', row };
  }
  return { kind: 'maillog', row: maillogRow(base, ev.eventId, ev.fields.qid, ev.fields) };
}

/** A maillog event's store row from its sendmail fields (the bench's bulk seeding builds the same). */
export function maillogRow(base: PodEventRowBase, eventId: string, qid: string, f: SendmailFields): PodMaillogRow {
  return {
    ...base,
    eventId,
    qid,
    messageId: normaliseMessageId(f.msgid) ?? null,
    mailFrom: f.from ?? null,
    rcpts: f.to === undefined ? null : JSON.stringify(f.to),
    relay: f.relay ?? null,
    stat: f.stat ?? null,
    dsn: f.dsn ?? null,
    queuedAs: f.queuedAs ?? null,
    mailer: f.mailer ?? null,
    delay: f.delay ?? null,
    xdelay: f.xdelay ?? null,
    nrcpts: f.nrcpts ?? null,
    size: f.size ?? null,
    ctladdr: f.ctladdr ?? null,
  };
}

/**
 * A dead letter for a payload that could not be taken. An oversize payload keeps only its
 * first `DEAD_LETTER_KEEP_BYTES`; `whole` describes a payload the caller never held whole
 * (an oversize file line), `raw` then being its prefix.
 */
export function deadLetterRow(
  raw: string | Buffer,
  code: string,
  reason: string,
  source: string,
  whole?: { bytes: number; sha256: string },
): PodBatchItem {
  const buf = typeof raw === 'string' ? Buffer.from(raw) : raw;
  const kept = buf.length > DEAD_LETTER_KEEP_BYTES && code === 'ERR_POD_TOO_LARGE' ? buf.subarray(0, DEAD_LETTER_KEEP_BYTES) : buf;
  const rawBytes = whole?.bytes ?? buf.length;
  const rawSha256 = whole?.sha256 ?? createHash('sha256').update(buf).digest('hex');
  const row: PodDeadLetterInput = { source, code, reason, raw: Buffer.from(kept), rawBytes, rawSha256, rawTruncated: kept.length < rawBytes };
  return { kind: 'dead', row };
}

/** Ingests a payload straight to a batch item: the event's rows, or its dead letter. */
export function ingestToBatchItem(payload: string | Buffer, source: string, opts: IngestOptions = {}): PodBatchItem {
  const outcome = ingestPayload(payload, opts);
  return outcome.ok ? eventRow(outcome.event) : deadLetterRow(payload, outcome.code, outcome.reason, source);
}
