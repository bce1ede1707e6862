// bench/lookup: a store seeded with generated messages and PoD events, then the time of the
// read paths operators use on it: `mailbag report` for one day and for 30 days, and `mailbag
// trace` p50/p99 for each kind of key. Also the seeding rate through the store's own write paths
// beside a bare batched better-sqlite3 insert of the same rows in the same run, and the
// store's size on disk.
//
//   npm run bench -- lookup                                  # 10,000 messages, 100,000 events
//   BENCH_SCALE=1 npm run bench -- lookup                    # the issue's 1M / 10M (BENCH_SCALE=0.1: 100k / 1M)
//   BENCH_LOOKUP_DIR=/big/disk ...                           # where the store goes (default: tmp)
//   BENCH_LOOKUP_KEEP=1 ...                                  # keep the store afterwards
//   BENCH_LOOKUP_REUSE=DIR BENCH_LOOKUP_MESSAGES=N ...        # time the reads again on a kept store
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, type Report } from '../../src/cli/report/build.js';
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import { sha256Hex } from '../../src/pod/json.js';
import { parseSendmailLine, sendmailFields, type SendmailFields } from '../../src/pod/sendmail-line.js';
import { formatUtc } from '../../src/pod/time.js';
import { migrate, migrations } from '../../src/store/migrations.js';
import { normaliseMessageId } from '../../src/store/correlation-keys.js';
import { writeTransaction } from '../../src/store/db.js';
import type { PodBatchItem, PodMaillogRow, PodMessageRow } from '../../src/store/pod-store.js';
import type { AttemptRecord, NewMessage } from '../../src/store/queue-store.js';
import type { MessageKeysInput } from '../../src/store/correlation-store.js';
import { KEY_KINDS, trace, type KeyKind } from '../../src/cli/trace/collect.js';
import { Store } from '../../src/store/store.js';
import { fromLine, maillogEvent, messageEvent, podTime, sentToMailbagLine } from '../../test/helpers/report-pod-events.js';

/** BENCH_SCALE: the share of the issue's 1,000,000 messages (default 0.01); BENCH_LOOKUP_MESSAGES: a count. */
const MESSAGES = Number(process.env.BENCH_LOOKUP_MESSAGES ?? Math.round(1_000_000 * Number(process.env.BENCH_SCALE ?? 0.01)));
/** Per mailbag message: its upstream message event and 4 maillog lines, and one upstream message that never reached mailbag, likewise: 10. */
const EVENTS_PER_MESSAGE = 10;
const BATCH = 500;
/** Messages seeded through the live write paths, batch by batch, beside the bare insert. */
const SAMPLE = Math.min(MESSAGES, 20_000);
/** Messages (and events) per batch after the sample. */
const BULK_BATCH = 5_000;
const DAY = 86_400_000;
/** A fixed end, so runs are comparable: messages spread evenly over the 30 days before it. */
const END = Date.UTC(2026, 10, 30);
const START = END - 30 * DAY;

/** mulberry32: a small deterministic PRNG, so every run seeds the same store. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(11);
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

const HOPS = ['smtp://mx1.example.test:25', 'smtp://mx2.example.test:25', 'lmtp://store.example.test:24', 'maildir:/var/mail'];
const DISPOSITIONS = ['continue', 'continue', 'continue', 'continue', 'quarantine', 'discard', 'reject'];
const RULES: [string, string][] = [['access', 'system'], ['spam', 'notspam'], ['spam', 'bulk'], ['spam', 'spam_definite'], ['urldefense', 'rewrite'], ['dmarc', 'pass'], ['virus', 'clean']];

function qidAt(t: number, i: number): string {
  return t.toString(36).toUpperCase().padStart(9, '0') + (i % 36 ** 4).toString(36).toUpperCase().padStart(4, '0');
}

interface Generated {
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

interface EventSpec {
  kind: 'message' | 'maillog';
  id: string;
  at: number;
  upstreamQid: string;
  /** message: its Message-ID and disposition. */
  messageId?: string;
  disposition?: string;
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
function traceKeys(i: number): Record<KeyKind, string> {
  return { qid: qidAt(receivedAtOf(i), i), upstream: upstreamQidOf(i), 'message-id': messageIdOf(i), guid: `g${i}` };
}

function generate(i: number): Generated {
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
    specs.push({ kind: 'message', id: guid, at: eventAt, upstreamQid, messageId: id, disposition });
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
function bulkItem(spec: EventSpec, payload: string, identity: string): PodBatchItem {
  const base = { ts: formatUtc(spec.at * 1000), tsUs: spec.at * 1000, contentSha256: identity, cid: 'pphosted_example_hosted', agent: 'm0000123.ppops.net', event: payload };
  if (spec.kind === 'message') {
    const row: PodMessageRow = { ...base, guid: spec.id, qid: spec.upstreamQid, messageId: normaliseMessageId(`<${spec.messageId!}>`) ?? null, sid: `${spec.upstreamQid.slice(0, 8)}sid`, envelopeFrom: 'sender@upstream.example', disposition: spec.disposition! };
    return { kind: 'message', row };
  }
  const f = templateFields(spec);
  const row: PodMaillogRow = {
    ...base,
    eventId: spec.id,
    qid: f.qid ?? spec.upstreamQid,
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
  return { kind: 'maillog', row };
}

function assertSameRow(built: PodBatchItem, ingested: PodBatchItem): void {
  const fields = (item: PodBatchItem) => JSON.stringify({ ...item, row: { ...item.row, event: undefined, contentSha256: undefined } });
  if (fields(built) !== fields(ingested)) {
    throw new Error(`bench: bulkItem differs from ingestPayload:\n${JSON.stringify(built)}\n${JSON.stringify(ingested)}`);
  }
}

function fileSize(path: string): number {
  let total = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(path + suffix).size;
    } catch {
      // no such file: nothing to add
    }
  }
  return total;
}

function median(list: number[]): number {
  const s = [...list].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A directory a run with BENCH_LOOKUP_KEEP left: its store is timed again, not seeded. */
const REUSE = process.env.BENCH_LOOKUP_REUSE;
const dir = REUSE ?? mkdtempSync(join(process.env.BENCH_LOOKUP_DIR ?? tmpdir(), 'mailbag-bench-lookup-'));
const path = join(dir, 'store.db');
const clock = () => performance.now();
const seedStart = clock();
const NOW = Date.now();
if (!REUSE) {
process.stdout.write(`seeding ${MESSAGES} messages and ${MESSAGES * EVENTS_PER_MESSAGE} PoD events into ${path}\n`);

// 1. The bulk: messages SAMPLE.. through prepared INSERTs into the store's tables at schema 15,
//    their secondary indexes dropped and built again after (an index built at once is sorted,
//    not grown row by row); then migration 16 fills the report counters from the rows, as it
//    does for an existing store. Migration 15's trigger fills pod_message_rules as rows go in.
const bulk = { rows: 0, insertMs: 0, indexMs: 0, migrateMs: 0, buildMs: 0 };
{
  const raw = new Database(path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = OFF');
  raw.pragma('cache_size = -1000000');
  migrate(raw, migrations.filter((m) => m.version !== 16));
  const tables = ['messages', 'recipients', 'attempts', 'message_keys', 'upstream_links', 'pod_message_events', 'pod_maillog_events', 'pod_message_rules'];
  const indexes = raw
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (${tables.map(() => '?').join(', ')})`)
    .all(...tables) as { name: string; sql: string }[];
  for (const ix of indexes) raw.exec(`DROP INDEX ${ix.name}`);
  const ins = {
    message: raw.prepare(`INSERT INTO messages (qid, received_at, envelope_from, size, spool_path, state, finished_at, spool_offset, sha256)
      VALUES (?, ?, ?, ?, ?, 'done', ?, 0, ?)`),
    recipient: raw.prepare('INSERT INTO recipients (qid, rcpt, state, next_attempt_at, attempts, last_reply, nexthop, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?)'),
    attempt: raw.prepare('INSERT INTO attempts (qid, nexthop, started_at, duration_ms, reply, outcome, recipients) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    keys: raw.prepare(`INSERT INTO message_keys (qid, received_at, message_id, upstream_qid, upstream_host, envelope_from, rcpts, client_address, size, recorded_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    link: raw.prepare('INSERT INTO upstream_links (upstream_qid, qid, via, linked_at) VALUES (?, ?, ?, ?)'),
    podMessage: raw.prepare(`INSERT INTO pod_message_events
      (guid, ts, ts_us, content_sha256, qid, message_id, sid, envelope_from, disposition, cid, agent, source, event, stored_at)
      VALUES (@guid, @ts, @tsUs, @contentSha256, @qid, @messageId, @sid, @envelopeFrom, @disposition, @cid, @agent, 'bench', @event, ${NOW})`),
    podMaillog: raw.prepare(`INSERT INTO pod_maillog_events
      (event_id, ts, ts_us, content_sha256, qid, message_id, mail_from, rcpts, relay, stat, dsn, queued_as, mailer,
       delay, xdelay, nrcpts, size, ctladdr, cid, agent, source, event, stored_at)
      VALUES (@eventId, @ts, @tsUs, @contentSha256, @qid, @messageId, @mailFrom, @rcpts, @relay, @stat, @dsn, @queuedAs,
       @mailer, @delay, @xdelay, @nrcpts, @size, @ctladdr, @cid, @agent, 'bench', @event, ${NOW})`),
  };
  for (let from = SAMPLE; from < MESSAGES; from += BULK_BATCH) {
    let s = clock();
    const batch = Array.from({ length: Math.min(BULK_BATCH, MESSAGES - from) }, (_, k) => generate(from + k));
    const items = batch.map((g, m) => {
      const identity = sha256Hex(String(from + m)).slice(0, 62);
      return g.specs.map((spec, n) => bulkItem(spec, g.events[n]!, identity + n.toString(16).padStart(2, '0')));
    });
    bulk.buildMs += clock() - s;
    s = clock();
    raw.transaction(() => {
      batch.forEach((g, n) => {
        const m = g.message;
        const a = g.round.attempts[0]!;
        const r = a.recipients[0]!;
        ins.message.run(m.qid, m.receivedAt, m.envelopeFrom, m.size, m.spoolPath, g.deliveredAt, m.sha256);
        ins.recipient.run(m.qid, r.rcpt, r.state, m.receivedAt, r.reply, a.nexthop, g.deliveredAt);
        ins.attempt.run(m.qid, a.nexthop, a.startedAt, a.durationMs, a.reply, a.outcome, JSON.stringify(a.recipients));
        const k = g.keys;
        ins.keys.run(k.qid, k.receivedAt, k.keys.messageId, k.keys.upstreamQid, k.keys.upstreamHost, k.envelopeFrom, JSON.stringify(k.rcpts), k.clientAddress, k.size, k.receivedAt);
        ins.link.run(k.keys.upstreamQid, k.qid, 'received', NOW);
        ins.link.run(k.keys.upstreamQid, k.qid, 'queued-as', NOW);
        for (const item of items[n]!) {
          if (item.kind === 'message') ins.podMessage.run(item.row);
          else if (item.kind === 'maillog') ins.podMaillog.run(item.row);
        }
      });
    })();
    bulk.insertMs += clock() - s;
    bulk.rows += batch.length * (1 + EVENTS_PER_MESSAGE);
    if (Math.floor(from / 100_000) !== Math.floor((from + batch.length) / 100_000)) {
      process.stdout.write(`  bulk: ${from + batch.length} messages, ${((clock() - seedStart) / 1000).toFixed(0)} s\n`);
    }
  }
  let s = clock();
  for (const ix of indexes) raw.exec(ix.sql);
  bulk.indexMs = clock() - s;
  s = clock();
  migrate(raw);
  bulk.migrateMs = clock() - s;
  raw.pragma('wal_checkpoint(TRUNCATE)');
  raw.close();
  process.stdout.write(`  bulk done, indexes built, migration 16 applied: ${((clock() - seedStart) / 1000).toFixed(0)} s\n`);
}

// 2. The sample: messages 0..SAMPLE through the write paths a live gateway uses (counters
//    and all), batch by batch, with a bare batched insert of the same rows beside it; every
//    event's bulk row is checked against the row ingestPayload gives.
const store = Store.open(path);
const bare = new Database(join(dir, 'bare.db'));
bare.pragma('journal_mode = WAL');
bare.pragma('synchronous = NORMAL');
// The same columns as the store's tables, without indexes, trigger or conflict handling.
bare.exec(`CREATE TABLE events (ts TEXT, ts_us INTEGER, sha TEXT, qid TEXT, message_id TEXT, queued_as TEXT, event TEXT);
  CREATE TABLE messages (qid TEXT, received_at INTEGER, envelope_from TEXT, size INTEGER, spool_path TEXT, rcpt TEXT)`);
const bareEvent = bare.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)');
const bareMessage = bare.prepare('INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)');
const t = { messages: 0, rounds: 0, ingest: 0, podStore: 0, bareEvents: 0, bareMessages: 0 };
let bareEventRows = 0;
let bareMessageRows = 0;
let sampleEvents = 0;
for (let from = 0; from < SAMPLE; from += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, SAMPLE - from) }, (_, k) => generate(from + k));
  let s = clock();
  store.queue.insertMessages(batch.map((g) => g.message));
  t.messages += clock() - s;
  s = clock();
  // One round per message at its own delivery time, the batch in one transaction (the queue
  // also records rounds in batches).
  writeTransaction(store.db, () => {
    for (const g of batch) {
      store.correlation.recordMessageKeys(g.keys, g.receivedAt);
      store.queue.recordRounds([g.round], g.deliveredAt);
    }
  });
  t.rounds += clock() - s;
  s = clock();
  bare.transaction(() => {
    for (const g of batch) bareMessage.run(g.message.qid, g.message.receivedAt, g.message.envelopeFrom, g.message.size, g.message.spoolPath, g.message.recipients[0]);
  })();
  t.bareMessages += clock() - s;
  bareMessageRows += batch.length;
  const payloads = batch.flatMap((g) => g.events);
  const specs = batch.flatMap((g) => g.specs);
  for (let k = 0; k < payloads.length; k += BATCH) {
    s = clock();
    const items: PodBatchItem[] = payloads.slice(k, k + BATCH).map((p) => ingestToBatchItem(p, 'bench'));
    t.ingest += clock() - s;
    items.forEach((item, n) => assertSameRow(bulkItem(specs[k + n]!, payloads[k + n]!, ''), item));
    s = clock();
    store.pod.storeBatch(items, { source: 'bench' });
    t.podStore += clock() - s;
    sampleEvents += items.length;
    s = clock();
    bare.transaction(() => {
      for (const item of items) {
        if (item.kind === 'dead') continue;
        const r = item.row;
        bareEvent.run(r.ts, r.tsUs, r.contentSha256, r.qid, r.messageId, item.kind === 'maillog' ? item.row.queuedAs : null, r.event);
      }
    })();
    t.bareEvents += clock() - s;
    bareEventRows += items.length;
  }
}
bare.close();
const checkpointStart = clock();
store.db.pragma('wal_checkpoint(TRUNCATE)');
const checkpointMs = clock() - checkpointStart;
store.close();

const rate = (n: number, ms: number) => (n ? `${Math.round(n / (ms / 1000)).toLocaleString('en-US').padStart(9)} /s` : '        - /s');
const rows = MESSAGES * (1 + EVENTS_PER_MESSAGE);
process.stdout.write(`\nseeded in ${((clock() - seedStart) / 1000).toFixed(1)} s (final WAL checkpoint ${(checkpointMs / 1000).toFixed(1)} s); store ${(fileSize(path) / 2 ** 20).toFixed(1)} MiB on disk (${(fileSize(path) / rows).toFixed(0)} bytes per message or event)\n`);
process.stdout.write(`bulk: messages ${SAMPLE}..${MESSAGES} with their events, ${bulk.rows} rows, batches of ${BULK_BATCH} messages:\n`);
process.stdout.write(`  generating the rows (JSON events and their store rows)                  ${rate(bulk.rows, bulk.buildMs)}\n`);
process.stdout.write(`  prepared INSERTs, secondary indexes dropped (synchronous=OFF)           ${rate(bulk.rows, bulk.insertMs)}\n`);
process.stdout.write(`  building the secondary indexes again                              ${(bulk.indexMs / 1000).toFixed(1).padStart(9)} s\n`);
process.stdout.write(`  migration 16: counters filled from the rows                       ${(bulk.migrateMs / 1000).toFixed(1).padStart(9)} s\n`);
process.stdout.write(`sample: messages 0..${SAMPLE} and their ${sampleEvents} events through the write paths, batches of ${BATCH}:\n`);
process.stdout.write(`  messages, store.queue.insertMessages (synchronous=FULL)                 ${rate(SAMPLE, t.messages)}\n`);
process.stdout.write(`  keys and delivery rounds (recordMessageKeys, recordRounds)              ${rate(SAMPLE, t.rounds)}\n`);
process.stdout.write(`  messages, bare batched INSERT (no index, synchronous=NORMAL)            ${rate(bareMessageRows, t.bareMessages)}\n`);
process.stdout.write(`  PoD events, ingestPayload (parse, normalise, validate)                  ${rate(sampleEvents, t.ingest)}\n`);
process.stdout.write(`  PoD events, store.pod.storeBatch (indexes, links, triggers, counters)   ${rate(sampleEvents, t.podStore)}\n`);
process.stdout.write(`  PoD events, bare batched INSERT of the same rows (no index)             ${rate(bareEventRows, t.bareEvents)}\n`);

}

/** The report runs timed on the seeded store (trace is timed per key below). */
const LOOKUPS: { name: string; run: (s: Store) => unknown }[] = [
  { name: 'report, one day (by hour)', run: (s) => buildReport(s, { since: END - DAY, until: END, by: 'hour' }) },
  { name: 'report, 30 days (by day)', run: (s) => buildReport(s, { since: START, until: END, by: 'day' }) },
];

// The CLI's way in: an existing store, read-only use, not migrated.
const reader = Store.openExisting(path);
process.stdout.write('\n');
for (const lookup of LOOKUPS) {
  const times: number[] = [];
  let first = 0;
  for (let i = 0; i < 7; i++) {
    const s = clock();
    lookup.run(reader);
    const ms = clock() - s;
    if (i === 0) first = ms;
    times.push(ms);
  }
  process.stdout.write(`${lookup.name.padEnd(30)} first ${first.toFixed(1).padStart(8)} ms   median of 7 ${median(times).toFixed(1).padStart(8)} ms\n`);
}
// trace: 500 keys of each kind, of messages spread over the store, one call each.
const TRACES = 500;
for (const kind of KEY_KINDS) {
  const times: number[] = [];
  let found = 0;
  for (let k = 0; k < TRACES; k++) {
    const key = traceKeys(Math.floor(random() * MESSAGES))[kind];
    const s = clock();
    const result = trace(reader, key, kind);
    times.push(clock() - s);
    if (result) found++;
  }
  times.sort((a, b) => a - b);
  const p = (q: number) => times[Math.min(times.length - 1, Math.ceil((q / 100) * times.length) - 1)]!;
  process.stdout.write(`${`trace --by ${kind}`.padEnd(30)} p50 ${p(50).toFixed(2).padStart(8)} ms   p99 ${p(99).toFixed(2).padStart(8)} ms   (${found} of ${TRACES} found)\n`);
}
const month = LOOKUPS[1]!.run(reader) as Report;
process.stdout.write(`(30-day report: ${month.messages.received} received, ${month.pod.message + month.pod.maillog} PoD events, coverage ${((month.correlation.coverage ?? 0) * 100).toFixed(1)}%)\n`);
reader.close();

if (process.env.BENCH_LOOKUP_KEEP || REUSE) process.stdout.write(`store kept in ${dir}\n`);
else rmSync(dir, { recursive: true, force: true });
