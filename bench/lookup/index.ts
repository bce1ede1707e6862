// bench/lookup: a store seeded with generated messages and PoD events, then the time of the
// read paths operators use on it: `mailbag report` for one day and for 30 days, and `mailbag
// trace` p50/p99 for each kind of key. Also the seeding rate through the store's own write paths
// beside a bare batched better-sqlite3 insert of the same rows in the same run, and the
// store's size on disk.
//
//   npm run bench -- lookup                                  # 10,000 messages, 100,000 events
//   BENCH_LOOKUP_MESSAGES=1000000 npm run bench -- lookup    # the issue's 1M / 10M
//   BENCH_LOOKUP_DIR=/big/disk ...                           # where the store goes (default: tmp)
//   BENCH_LOOKUP_KEEP=1 ...                                  # keep the store afterwards
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, type Report } from '../../src/cli/report/build.js';
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import { writeTransaction } from '../../src/store/db.js';
import type { PodBatchItem } from '../../src/store/pod-store.js';
import type { AttemptRecord, NewMessage } from '../../src/store/queue-store.js';
import type { MessageKeysInput } from '../../src/store/correlation-store.js';
import { KEY_KINDS, trace, type KeyKind } from '../../src/cli/trace/collect.js';
import { Store } from '../../src/store/store.js';
import { fromLine, maillogEvent, messageEvent, sentToMailbagLine } from '../../test/helpers/report-pod-events.js';

const MESSAGES = Number(process.env.BENCH_LOOKUP_MESSAGES ?? 10_000);
/** Per mailbag message: its upstream message event and 4 maillog lines, and one upstream message that never reached mailbag, likewise: 10. */
const EVENTS_PER_MESSAGE = 10;
const BATCH = 500;
/** Rows the bare baseline inserts (enough for a steady rate, without doubling a large store). */
const BARE_ROWS = Math.min(MESSAGES * EVENTS_PER_MESSAGE, 200_000);
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
}

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
  const events = [
    messageEvent({ guid: `g${i}`, at, upstreamQid: up, messageId, disposition: 'continue', rules, rcpts: [rcpt] }),
    maillogEvent({ id: `m${i}a`, at, upstreamQid: up, fields: fromLine('sender@sender.example', messageId) }),
    maillogEvent({ id: `m${i}b`, at: at + 100, upstreamQid: up, fields: 'Milter: data, reject=continue' }),
    maillogEvent({ id: `m${i}c`, at: receivedAt, upstreamQid: up, fields: sentToMailbagLine(rcpt, qid) }),
    maillogEvent({ id: `m${i}d`, at: receivedAt + 10, upstreamQid: up, fields: 'done' }),
  ];
  // An upstream message that never reached mailbag (quarantined, discarded, delivered elsewhere).
  const other = `4X${i.toString(36).toUpperCase().padStart(8, '0')}`;
  const otherId = `${i}.other@sender.example`;
  events.push(
    messageEvent({ guid: `h${i}`, at: at + 500, upstreamQid: other, messageId: otherId, disposition: pick(DISPOSITIONS), rules: [pick(RULES)] }),
    maillogEvent({ id: `n${i}a`, at: at + 500, upstreamQid: other, fields: fromLine('other@sender.example', otherId) }),
    maillogEvent({ id: `n${i}b`, at: at + 600, upstreamQid: other, fields: 'Milter: data, reject=continue' }),
    maillogEvent({ id: `n${i}c`, at: at + 700, upstreamQid: other, fields: `to=<x${i}@elsewhere.example>, delay=00:00:01, mailer=esmtp, pri=1, relay=elsewhere.example. [203.0.113.5], dsn=2.0.0, stat=Sent (queued as 9Z${i})` }),
    maillogEvent({ id: `n${i}d`, at: at + 800, upstreamQid: other, fields: 'done' }),
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
  };
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

const dir = mkdtempSync(join(process.env.BENCH_LOOKUP_DIR ?? tmpdir(), 'mailbag-bench-lookup-'));
const path = join(dir, 'store.db');
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
let events = 0;
const clock = () => performance.now();
const seedStart = clock();
process.stdout.write(`seeding ${MESSAGES} messages and ${MESSAGES * EVENTS_PER_MESSAGE} PoD events into ${path}\n`);
for (let from = 0; from < MESSAGES; from += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, MESSAGES - from) }, (_, k) => generate(from + k));
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
  if (bareMessageRows < BARE_ROWS) {
    s = clock();
    bare.transaction(() => {
      for (const g of batch) bareMessage.run(g.message.qid, g.message.receivedAt, g.message.envelopeFrom, g.message.size, g.message.spoolPath, g.message.recipients[0]);
    })();
    t.bareMessages += clock() - s;
    bareMessageRows += batch.length;
  }
  const payloads = batch.flatMap((g) => g.events);
  for (let k = 0; k < payloads.length; k += BATCH) {
    s = clock();
    const items: PodBatchItem[] = payloads.slice(k, k + BATCH).map((p) => ingestToBatchItem(p, 'bench'));
    t.ingest += clock() - s;
    s = clock();
    store.pod.storeBatch(items, { source: 'bench' });
    t.podStore += clock() - s;
    events += items.length;
    if (bareEventRows < BARE_ROWS) {
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
  if ((from / BATCH) % 200 === 199) process.stdout.write(`  ${from + BATCH} messages, ${events} events, ${((clock() - seedStart) / 1000).toFixed(0)} s\n`);
}
bare.close();
store.db.pragma('wal_checkpoint(TRUNCATE)');
store.close();

const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString('en-US').padStart(9)} /s`;
process.stdout.write(`\nseeded in ${((clock() - seedStart) / 1000).toFixed(1)} s; store ${(fileSize(path) / 2 ** 20).toFixed(1)} MiB on disk (${(fileSize(path) / (MESSAGES + events)).toFixed(0)} bytes per message or event)\n`);
process.stdout.write(`messages, store.queue.insertMessages (batches of ${BATCH}, synchronous=FULL)  ${rate(MESSAGES, t.messages)}\n`);
process.stdout.write(`keys and delivery rounds (recordMessageKeys, recordRounds; batches of ${BATCH}) ${rate(MESSAGES, t.rounds)}\n`);
process.stdout.write(`messages, bare batched INSERT (no index, synchronous=NORMAL)             ${rate(bareMessageRows, t.bareMessages)}\n`);
process.stdout.write(`PoD events, ingestPayload (parse, normalise, validate)                    ${rate(events, t.ingest)}\n`);
process.stdout.write(`PoD events, store.pod.storeBatch (batches of ${BATCH}, indexes, rule trigger) ${rate(events, t.podStore)}\n`);
process.stdout.write(`PoD events, bare batched INSERT of the same rows (no index)               ${rate(bareEventRows, t.bareEvents)}\n`);

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

if (process.env.BENCH_LOOKUP_KEEP) process.stdout.write(`store kept in ${dir}\n`);
else rmSync(dir, { recursive: true, force: true });
