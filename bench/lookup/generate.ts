// bench/lookup's generated data: message i of MESSAGES (spread evenly over the 30 days before
// END) with its correlation keys, one delivery round, and its 10 PoD events, as JSON payloads
// and as the rows the store keeps. Deterministic per message, so the bulk's worker threads and
// the sample generate the same data for the same i.
import { maillogRow } from '../../src/pod/ingest.js';
import { sha256Hex } from '../../src/pod/json.js';
import { parseSendmailLine, sendmailFields, type SendmailFields } from '../../src/pod/sendmail-line.js';
import { formatUtc } from '../../src/pod/time.js';
import { normaliseMessageId } from '../../src/store/correlation-keys.js';
import type { PodBatchItem, PodMaillogRow, PodMessageRow } from '../../src/store/pod-store.js';
import type { AttemptRecord, NewMessage } from '../../src/store/queue-store.js';
import type { MessageKeysInput } from '../../src/store/correlation-store.js';
import type { KeyKind } from '../../src/cli/trace/collect.js';
import { fromLine, maillogEvent, messageEvent, podTime, sentToMailbagLine } from '../../test/helpers/report-pod-events.js';

/** BENCH_SCALE: the share of the 1,000,000 messages (default 0.01); BENCH_LOOKUP_MESSAGES: a count. */
export const MESSAGES = Number(process.env.BENCH_LOOKUP_MESSAGES ?? Math.round(1_000_000 * Number(process.env.BENCH_SCALE ?? 0.01)));
/** Per mailbag message: its upstream message event and 4 maillog lines, and one upstream message that never reached mailbag, likewise: 10. */
export const EVENTS_PER_MESSAGE = 10;
export const BATCH = 500;
/** Messages seeded through the live write paths, batch by batch, beside the bare insert. */
export const SAMPLE = Math.min(MESSAGES, 20_000);
/** Messages (and events) per batch after the sample. */
export const BULK_BATCH = 5_000;
export const DAY = 86_400_000;
/** A fixed end, so runs are comparable: messages spread evenly over the 30 days before it. */
export const END = Date.UTC(2026, 10, 30);
export const START = END - 30 * DAY;

import { prng } from '../lib/prng.js';

export { prng };

const HOPS = ['smtp://mx1.example.test:25', 'smtp://mx2.example.test:25', 'lmtp://store.example.test:24', 'maildir:/var/mail'];
const DISPOSITIONS = ['continue', 'continue', 'continue', 'continue', 'quarantine', 'discard', 'reject'];
const RULES: [string, string][] = [['access', 'system'], ['spam', 'notspam'], ['spam', 'bulk'], ['spam', 'spam_definite'], ['urldefense', 'rewrite'], ['dmarc', 'pass'], ['virus', 'clean']];

function qidAt(t: number, i: number): string {
  return t.toString(36).toUpperCase().padStart(9, '0') + (i % 36 ** 4).toString(36).toUpperCase().padStart(4, '0');
}

export interface Generated {
  message: NewMessage;
  /** What the queue records at the first claim: the Message-ID and the upstream's Received id. */
  keys: MessageKeysInput;
  round: { qid: string; attempts: AttemptRecord[]; leased: string[] };
  receivedAt: number;
  deliveredAt: number;
  events: string[];
  /** What each event was built from, in `events` order: enough for the bulk rows. */
  specs: EventSpec[];
}

export interface EventSpec {
  kind: 'message' | 'maillog';
  id: string;
  at: number;
  upstreamQid: string;
  /** message: its Message-ID, disposition and the (module, rule) of each filter action. */
  messageId?: string;
  disposition?: string;
  rules?: readonly (readonly [string, string])[];
  /** maillog: the sendmail fields after `QID: `, as a template and the values of its tokens. */
  template?: string;
  vars?: Record<string, string>;
}

/** Placeholders in maillog field templates (alphanumeric, so they parse as the values would). */
const TOKENS = /MIDTOKEN|RCPTTOKEN|QIDTOKEN|NTOKEN|UPQIDTOKEN/g;

const receivedAtOf = (i: number) => START + Math.floor((i / MESSAGES) * 30 * DAY);
const upstreamQidOf = (i: number) => `4U${i.toString(36).toUpperCase().padStart(8, '0')}`;
const messageIdOf = (i: number) => `${i}.bench@sender.example`;

/** The four kinds of key `mailbag trace` takes, for generated message i. */
export function traceKeys(i: number): Record<KeyKind, string> {
  return { qid: qidAt(receivedAtOf(i), i), upstream: upstreamQidOf(i), 'message-id': messageIdOf(i), guid: `g${i}` };
}

export function generate(i: number): Generated {
  // One PRNG per message, so any thread generates message i alike.
  const random = prng(0x9e3779b1 ^ i);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const receivedAt = receivedAtOf(i);
  const qid = qidAt(receivedAt, i);
  const rcpt = `user${i % 5000}@example.test`;
  const nexthop = pick(HOPS);
  const latency = Math.floor(200 + random() * random() * 60_000);
  const bounced = random() < 0.01;
  const deliveredAt = receivedAt + latency;
  const up = upstreamQidOf(i);
  const messageId = messageIdOf(i);
  const at = receivedAt - 2_000;
  const rules = [pick(RULES), pick(RULES)] as const;
  const specs: EventSpec[] = [];
  const message = (guid: string, eventAt: number, upstreamQid: string, id: string, disposition: string, ruleList: readonly (readonly [string, string])[], rcpts?: string[]) => {
    specs.push({ kind: 'message', id: guid, at: eventAt, upstreamQid, messageId: id, disposition, rules: ruleList });
    return messageEvent({ guid, at: eventAt, upstreamQid, messageId: id, disposition, rules: ruleList, ...(rcpts ? { rcpts } : {}) });
  };
  /** `template` with `vars` substituted is the line's fields (the bulk path parses each template once). */
  const line = (id: string, eventAt: number, upstreamQid: string, template: string, vars: Record<string, string> = {}) => {
    const fields = template.replace(TOKENS, (token) => vars[token]!);
    specs.push({ kind: 'maillog', id, at: eventAt, upstreamQid, template, vars });
    return maillogEvent({ id, at: eventAt, upstreamQid, fields });
  };
  const events = [
    message(`g${i}`, at, up, messageId, 'continue', rules, [rcpt]),
    line(`m${i}a`, at, up, fromLine('sender@sender.example', 'MIDTOKEN'), { MIDTOKEN: messageId }),
    line(`m${i}b`, at + 100, up, 'Milter: data, reject=continue'),
    line(`m${i}c`, receivedAt, up, sentToMailbagLine('RCPTTOKEN', 'QIDTOKEN'), { RCPTTOKEN: rcpt, QIDTOKEN: qid }),
    line(`m${i}d`, receivedAt + 10, up, 'done'),
  ];
  // An upstream message that never reached mailbag (quarantined, discarded, delivered elsewhere).
  const other = `4X${i.toString(36).toUpperCase().padStart(8, '0')}`;
  const otherId = `${i}.other@sender.example`;
  events.push(
    message(`h${i}`, at + 500, other, otherId, pick(DISPOSITIONS), [pick(RULES)]),
    line(`n${i}a`, at + 500, other, fromLine('other@sender.example', 'MIDTOKEN'), { MIDTOKEN: otherId }),
    line(`n${i}b`, at + 600, other, 'Milter: data, reject=continue'),
    line(`n${i}c`, at + 700, other, 'to=<xNTOKEN@elsewhere.example>, delay=00:00:01, mailer=esmtp, pri=1, relay=elsewhere.example. [203.0.113.5], dsn=2.0.0, stat=Sent (queued as 9ZNTOKEN)', { NTOKEN: String(i) }),
    line(`n${i}d`, at + 800, other, 'done'),
  );
  const state = bounced ? 'failed' : 'delivered';
  const reply = bounced ? '550 5.1.1 no such user' : '250 2.0.0 ok';
  return {
    keys: {
      qid,
      receivedAt,
      keys: { messageId, upstreamQid: up, upstreamHost: 'mx.upstream.example', proofpointGuid: undefined, proofpointOrigGuid: undefined },
      envelopeFrom: 'sender@sender.example',
      rcpts: [rcpt],
      clientAddress: '192.0.2.10',
      size: 4096,
    },
    message: { qid, receivedAt, envelopeFrom: 'sender@sender.example', size: 4096, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: [rcpt] },
    round: { qid, attempts: [{ qid, nexthop, startedAt: deliveredAt - 50, durationMs: 50, reply, outcome: state, recipients: [{ rcpt, state, reply }] }], leased: [rcpt] },
    receivedAt,
    deliveredAt,
    events,
    specs,
  };
}

const parsedTemplates = new Map<string, string>();

/** The sendmail fields of a line from its template: parsed once per template, tokens substituted in the result. */
function templateFields(spec: EventSpec): SendmailFields {
  const template = spec.template!;
  let json = parsedTemplates.get(template);
  if (json === undefined) {
    json = JSON.stringify(sendmailFields(parseSendmailLine(`${podTime(START)} m0000123 sendmail[17965]: UPQIDTOKEN: ${template}`)));
    parsedTemplates.set(template, json);
  }
  const vars = { ...spec.vars, UPQIDTOKEN: spec.upstreamQid };
  return JSON.parse(json.replace(TOKENS, (token) => vars[token as keyof typeof vars]!)) as SendmailFields;
}

/**
 * The store row of a generated event, from what the generator built it from, without parsing
 * it back: the fields `ingestPayload` extracts (the sample checks each against its row), the
 * payload as the stored `event` text, and as `contentSha256` 64 hex digits unique to the
 * event (the ingest path stores the normalised event, about 100 bytes longer, and the sha256
 * of its canonical form: hashing 10 million events would double the bulk's time here).
 */
export function bulkItem(spec: EventSpec, payload: string, identity: string): PodBatchItem {
  const base = { ts: formatUtc(spec.at * 1000), tsUs: spec.at * 1000, contentSha256: identity, cid: 'pphosted_example_hosted', agent: 'm0000123.ppops.net', event: payload };
  if (spec.kind === 'message') {
    const row: PodMessageRow = { ...base, guid: spec.id, qid: spec.upstreamQid, messageId: normaliseMessageId(`<${spec.messageId!}>`) ?? null, sid: `${spec.upstreamQid.slice(0, 8)}sid`, envelopeFrom: 'sender@upstream.example', disposition: spec.disposition!, rules: (spec.rules ?? []).map(([module, rule]) => ({ module, rule })) };
    return { kind: 'message', row };
  }
  const f = templateFields(spec);
  return { kind: 'maillog', row: maillogRow(base, spec.id, f.qid ?? spec.upstreamQid, f) };
}

export function assertSameRow(built: PodBatchItem, ingested: PodBatchItem): void {
  const fields = (item: PodBatchItem) => JSON.stringify({ ...item, row: { ...item.row, event: undefined, contentSha256: undefined } });
  if (fields(built) !== fields(ingested)) {
    throw new Error(`bench: bulkItem differs from ingestPayload:\n${JSON.stringify(built)}\n${JSON.stringify(ingested)}`);
  }
}


/** The rows of messages [from, to) for the bulk's prepared INSERTs, as plain values (sent between threads). */
export interface BulkRows {
  messages: [qid: string, receivedAt: number, envelopeFrom: string, size: number, spoolPath: string, finishedAt: number, sha256: string][];
  recipients: [qid: string, rcpt: string, state: string, nextAttemptAt: number, reply: string, nexthop: string, updatedAt: number][];
  attempts: [qid: string, nexthop: string, startedAt: number, durationMs: number, reply: string, outcome: string, recipients: string][];
  keys: [qid: string, receivedAt: number, messageId: string, upstreamQid: string, upstreamHost: string, envelopeFrom: string, rcpts: string, clientAddress: string, size: number, recordedAt: number][];
  /** The links correlation makes for each: the Received id and the `queued as` line. */
  links: [upstreamQid: string, qid: string, via: string][];
  podMessages: PodMessageRow[];
  podMaillog: PodMaillogRow[];
}

export function bulkRows(from: number, to: number): BulkRows {
  const out: BulkRows = { messages: [], recipients: [], attempts: [], keys: [], links: [], podMessages: [], podMaillog: [] };
  for (let i = from; i < to; i++) {
    const g = generate(i);
    const m = g.message;
    const a = g.round.attempts[0]!;
    const r = a.recipients[0]!;
    out.messages.push([m.qid, m.receivedAt, m.envelopeFrom, m.size, m.spoolPath, g.deliveredAt, m.sha256!]);
    out.recipients.push([m.qid, r.rcpt, r.state, m.receivedAt, r.reply, a.nexthop, g.deliveredAt]);
    out.attempts.push([m.qid, a.nexthop, a.startedAt, a.durationMs, a.reply, a.outcome, JSON.stringify(a.recipients)]);
    const k = g.keys;
    out.keys.push([k.qid, k.receivedAt, k.keys.messageId!, k.keys.upstreamQid!, k.keys.upstreamHost!, k.envelopeFrom, JSON.stringify(k.rcpts), k.clientAddress!, k.size, k.receivedAt]);
    out.links.push([k.keys.upstreamQid!, k.qid, 'received'], [k.keys.upstreamQid!, k.qid, 'queued-as']);
    const identity = sha256Hex(String(i)).slice(0, 62);
    g.specs.forEach((spec, n) => {
      const item = bulkItem(spec, g.events[n]!, identity + n.toString(16).padStart(2, '0'));
      if (item.kind === 'message') out.podMessages.push(item.row);
      else if (item.kind === 'maillog') out.podMaillog.push(item.row);
    });
  }
  return out;
}
