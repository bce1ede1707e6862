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
//   BENCH_LOOKUP_TRACES=N ...                                # keys of each kind trace runs (default 5,000)
//   BENCH_LOOKUP_REUSE=DIR BENCH_LOOKUP_MESSAGES=N ...        # time the reads again on a kept store
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, type Report } from '../../src/cli/report/build.js';
import { Worker } from 'node:worker_threads';
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import { migrate, migrations } from '../../src/store/migrations.js';
import { writeTransaction } from '../../src/store/db.js';
import type { PodBatchItem } from '../../src/store/pod-store.js';
import { KEY_KINDS, trace } from '../../src/cli/trace/collect.js';
import { Store } from '../../src/store/store.js';
import { workerSource } from '../../src/gateway/worker-source.js';
import { describeCosts, evictFromPageCache, installStatementCounters, machineTail, measureLookups, percentile, preparedCount, residentShare } from './trace-timing.js';
import { assertSameRow, BATCH, BULK_BATCH, bulkItem, DAY, END, EVENTS_PER_MESSAGE, generate, MESSAGES, prng, SAMPLE, START, traceKeys, type BulkRows } from './generate.js';

/** Threads generating the bulk's rows (BENCH_LOOKUP_WORKERS). */
const WORKERS = Number(process.env.BENCH_LOOKUP_WORKERS ?? 3);
const random = prng(11);

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

function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

function median(list: number[]): number {
  const s = [...list].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A directory a run with BENCH_LOOKUP_KEEP left: its store is timed again, not seeded. */
const REUSE = process.env.BENCH_LOOKUP_REUSE || undefined;
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
//    does for an existing store. Migration 15's trigger fills pod_message_rules as rows go in
//    (migration 18, which drops it because the store writes those rows itself, comes after, as
//    does migration 26, which replaces triggers of 16).
const bulk = { rows: 0, insertMs: 0, indexMs: 0, migrateMs: 0, buildMs: 0, waitMs: 0 };
{
  const raw = new Database(path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = OFF');
  raw.pragma('cache_size = -1000000');
  migrate(raw, migrations.filter((m) => m.version !== 16 && m.version !== 18 && m.version !== 26));
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
  // Worker threads generate the rows (the JSON events are most of the work), the main thread
  // inserts them in order, one transaction per BULK_BATCH messages.
  const bulkWorker = workerSource(import.meta.url, 'bulk-worker');
  const workers = Array.from({ length: WORKERS }, () => new Worker(bulkWorker.source, { eval: bulkWorker.eval }));
  const ranges: { from: number; to: number }[] = [];
  for (let from = SAMPLE; from < MESSAGES; from += BULK_BATCH) ranges.push({ from, to: Math.min(MESSAGES, from + BULK_BATCH) });
  const ask = (k: number): Promise<BulkRows> =>
    new Promise((resolve, reject) => {
      const w = workers[k % WORKERS]!;
      const onMessage = (rows: BulkRows) => {
        w.off('error', reject);
        resolve(rows);
      };
      w.once('message', onMessage);
      w.once('error', reject);
      w.postMessage(ranges[k]);
    });
  // One range in flight per worker: the next is asked for as soon as its rows are taken.
  // A taken range's slot is emptied: a settled promise keeps its rows alive, and at the issue's
  // scale every range's rows together do not fit in the heap.
  const inflight: (Promise<BulkRows> | undefined)[] = [];
  for (let k = 0; k < Math.min(ranges.length, WORKERS); k++) inflight.push(ask(k));
  const bulkStart = clock();
  let waitMs = 0;
  for (let k = 0; k < ranges.length; k++) {
    let s = clock();
    const rows = await inflight[k]!;
    inflight[k] = undefined;
    waitMs += clock() - s;
    if (k + WORKERS < ranges.length) inflight.push(ask(k + WORKERS));
    s = clock();
    raw.transaction(() => {
      for (const r of rows.messages) ins.message.run(...r);
      for (const r of rows.recipients) ins.recipient.run(...r);
      for (const r of rows.attempts) ins.attempt.run(...r);
      for (const r of rows.keys) ins.keys.run(...r);
      for (const r of rows.links) ins.link.run(...r, NOW);
      for (const r of rows.podMessages) ins.podMessage.run(r);
      for (const r of rows.podMaillog) ins.podMaillog.run(r);
    })();
    bulk.insertMs += clock() - s;
    const { from, to } = ranges[k]!;
    bulk.rows += (to - from) * (1 + EVENTS_PER_MESSAGE);
    if (Math.floor(from / 100_000) !== Math.floor(to / 100_000)) {
      process.stdout.write(`  bulk: ${to} messages, ${((clock() - seedStart) / 1000).toFixed(0)} s\n`);
    }
  }
  bulk.buildMs = clock() - bulkStart;
  bulk.waitMs = waitMs;
  await Promise.all(workers.map((w) => w.terminate()));
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
process.stdout.write(`  rows generated by ${WORKERS} threads and inserted, overall                  ${rate(bulk.rows, bulk.buildMs)} (${(bulk.waitMs / 1000).toFixed(0)} s waiting for rows)\n`);
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
const medianMs: number[] = [];
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
  medianMs.push(median(times));
  process.stdout.write(`${lookup.name.padEnd(30)} first ${first.toFixed(1).padStart(8)} ms   median of 7 ${median(times).toFixed(1).padStart(8)} ms\n`);
}
// trace: TRACES keys of each kind, of messages spread over the store, one call each; first cold
// (the store's pages dropped from the OS page cache, a new connection: each key's pages come
// from the disk), then warm (the same keys again, every page in memory). Beside wall-clock
// time, each lookup's CPU time, its wait for a core and the statements it ran.
// 5,000 keys per kind: a p99 of 500 lookups is their 5th slowest, and one burst of the
// machine's (machineTail) covers more than that.
const TRACES = Number(process.env.BENCH_LOOKUP_TRACES ?? 5000);
const warmP99: Record<string, number> = {};
{
  const tail = machineTail();
  process.stdout.write(
    `machine's own tail, one fixed unit of JavaScript work timed 4,000 times: p50 ${tail.p50Ms.toFixed(2)} ms, p99 ${tail.p99Ms.toFixed(2)} ms ` +
      `(${(tail.p99Ms / tail.p50Ms).toFixed(1)}x p50), max ${tail.maxMs.toFixed(2)} ms\n`,
  );
}
process.stdout.write(`WAL before the traces: ${walSize(path)} bytes (the reader runs alone, nothing to checkpoint)\n`);
for (const kind of KEY_KINDS) {
  const keys = Array.from({ length: TRACES }, () => traceKeys(Math.floor(random() * MESSAGES))[kind]);
  const evicted = evictFromPageCache(path);
  const before = residentShare(path);
  const fresh = Store.openExisting(path);
  const cold = await measureLookups(keys, (key) => trace(fresh, key, kind) !== undefined);
  const warm = await measureLookups(keys, (key) => trace(fresh, key, kind) !== undefined);
  fresh.close();
  const state = evicted ? `cold: ${before === undefined ? 'store evicted from the page cache' : `${(before * 100).toFixed(0)}% of the store in the page cache`}` : 'cold: could not evict';
  process.stdout.write(describeCosts(`trace ${kind}, ${evicted ? 'cold' : 'first'}`, cold.costs, cold.found));
  process.stdout.write(describeCosts(`trace ${kind}, warm`, warm.costs, warm.found));
  warmP99[kind] = percentile(warm.costs.map((c) => c.wallMs).sort((a, b) => a - b), 99);
  process.stdout.write(`${''.padEnd(24)} (${state})\n`);
}
// What the command adds to the lookup: `mailbag trace` is one process per key, so each run
// opens the store (preparing every accessor's statements) and makes its first trace on a new
// connection (first run of the code, a few statements prepared on first use).
{
  installStatementCounters();
  const opens: number[] = [];
  const firsts: number[] = [];
  let preparedAtOpen = 0;
  for (let k = 0; k < 20; k++) {
    const kind = KEY_KINDS[k % KEY_KINDS.length]!;
    const key = traceKeys(Math.floor(random() * MESSAGES))[kind];
    const p0 = preparedCount();
    let s = clock();
    const cli = Store.openExisting(path);
    opens.push(clock() - s);
    preparedAtOpen = preparedCount() - p0;
    s = clock();
    trace(cli, key, kind);
    firsts.push(clock() - s);
    cli.close();
  }
  const spread = (list: number[]) => `median ${median(list).toFixed(1).padStart(6)} ms, max ${Math.max(...list).toFixed(1).padStart(6)} ms`;
  process.stdout.write(`per command (20 runs): open the store ${spread(opens)} (${preparedAtOpen} statements prepared); its first trace ${spread(firsts)}\n`);
}
{
  const worst = Math.max(...Object.values(warmP99));
  const list = Object.entries(warmP99).map(([kind, p99]) => `${kind} ${p99.toFixed(2)}`).join(', ');
  process.stdout.write(`target (issue #11): trace p99 under 2 ms, warm wall clock (${list} ms) -> ${worst < 2 ? 'met' : 'NOT met'}\n`);
  const monthMs = medianMs[1]!;
  process.stdout.write(`target (issue #11): 30-day report under 2 s (median ${(monthMs / 1000).toFixed(2)} s) -> ${monthMs < 2000 ? 'met' : 'NOT met'}\n`);
}
const month = LOOKUPS[1]!.run(reader) as Report;
process.stdout.write(`(30-day report: ${month.messages.received} received, ${month.pod.message + month.pod.maillog} PoD events, coverage ${((month.correlation.coverage ?? 0) * 100).toFixed(1)}%)\n`);
reader.close();

if (process.env.BENCH_LOOKUP_KEEP || REUSE) process.stdout.write(`store kept in ${dir}\n`);
else rmSync(dir, { recursive: true, force: true });
