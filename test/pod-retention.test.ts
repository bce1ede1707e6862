// PoD retention: events older than store.podRetention (by their own time) and dead letters
// received before it go, in short batched transactions of the retention pass, with their rule
// rows, their report counters and the correlation links only they supported; stream
// checkpoints stay; a pruned event imported again is stored again.
import t from 'tap';
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { RetentionPruner } from '../src/delivery/retention.js';
import { validateConfig } from '../src/config/load.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { trace } from '../src/cli/trace/collect.js';
import { DROP_UNSUPPORTED_LINKS_SQL } from '../src/store/correlation-store.js';
import { POD_DEAD_LETTER_PRUNE_SQL, POD_MAILLOG_PRUNE_SQL, POD_MESSAGE_PRUNE_SQL } from '../src/store/pod-retention-store.js';
import type { ReportWindow } from '../src/store/report-store.js';
import { Store } from '../src/store/store.js';
import { startGateway } from '../src/gateway/gateway.js';
import { fromLine, maillogEvent, messageEvent, sentToMailbagLine } from './helpers/report-pod-events.js';
import { tempDir, testConfig, waitFor } from './helpers/gateway.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);
const RETENTION = 30 * DAY;
const silent = pino({ level: 'silent' });

function addMessage(store: Store, qid: string, receivedAt: number, keys: { upstreamQid?: string; messageId?: string }): void {
  store.queue.insertMessage({ qid, receivedAt, envelopeFrom: 's@up.example', size: 1, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['r@m.example'] });
  store.correlation.recordMessageKeys(
    { qid, receivedAt, keys: { messageId: keys.messageId, upstreamQid: keys.upstreamQid, upstreamHost: 'mx.up.example', proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 's@up.example', rcpts: ['r@m.example'], clientAddress: '192.0.2.1', size: 1 },
    receivedAt,
  );
}

function store(store: Store, payloads: string[], opts: { checkpointStream?: string; now?: number } = {}) {
  return store.pod.storeBatch(payloads.map((p) => ingestToBatchItem(p, 'test')), { source: 'test', ...opts });
}

const count = (s: Store, table: string) => (s.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
const links = (s: Store) =>
  (s.db.prepare('SELECT upstream_qid, qid, via FROM upstream_links ORDER BY upstream_qid, qid, via').all() as { upstream_qid: string; qid: string; via: string }[]).map(
    (l) => `${l.upstream_qid} ${l.qid} ${l.via}`,
  );
/** Links whose upstream qid has no stored event: what `trace` would follow to nothing. */
const dangling = (s: Store) =>
  count(s, `upstream_links AS l WHERE NOT EXISTS (SELECT 1 FROM pod_message_events WHERE qid = l.upstream_qid)
    AND NOT EXISTS (SELECT 1 FROM pod_maillog_events WHERE qid = l.upstream_qid)`);

const WINDOW: ReportWindow = { since: NOW - 60 * DAY, until: NOW + DAY, bucketMs: DAY };
/** The PoD and link figures of a report, through the counters or counted from the rows. */
function podFigures(s: Store, viaCounters: boolean) {
  const r = viaCounters ? s.report : s.report.raw;
  return {
    podMessages: r.podMessages(WINDOW),
    podMaillog: r.podMaillog(WINDOW),
    podDeadLetters: r.podDeadLetters(WINDOW),
    dispositions: r.dispositions(WINDOW),
    topRules: r.topRules(WINDOW, -1),
    linkCoverage: r.linkCoverage(WINDOW),
    linksByVia: r.linksByVia(WINDOW),
    upstreamCoverage: r.upstreamCoverage(WINDOW),
  };
}
const total = (list: { n: number }[]) => list.reduce((a, b) => a + b.n, 0);

/**
 * Three upstream messages and their mailbag copies: one wholly older than the retention, one
 * whose hand-over line is older but whose verdict is newer, one recent; a Message-ID fallback
 * link to old events; dead letters old and new; a checkpoint older than the cutoff.
 */
function seed(s: Store) {
  addMessage(s, 'QOLD000000001', NOW - 40 * DAY, { upstreamQid: '4UOLD01', messageId: 'old@up.example' });
  addMessage(s, 'QMIX000000001', NOW - 31 * DAY, { upstreamQid: '4UMIX01', messageId: 'mix@up.example' });
  addMessage(s, 'QNEW000000001', NOW - DAY, { upstreamQid: '4UNEW01', messageId: 'new@up.example' });
  addMessage(s, 'QMID000000001', NOW - 35 * DAY, { messageId: 'mid@up.example' });
  const rules = [['spam', 'bulk'], ['dmarc', 'pass']] as const;
  const old = [
    messageEvent({ guid: 'gOld', at: NOW - 40 * DAY, upstreamQid: '4UOLD01', messageId: 'old@up.example', disposition: 'continue', rules }),
    maillogEvent({ id: 'lOld1', at: NOW - 40 * DAY, upstreamQid: '4UOLD01', fields: fromLine('s@up.example', 'old@up.example') }),
    maillogEvent({ id: 'lOld2', at: NOW - 40 * DAY + 1000, upstreamQid: '4UOLD01', fields: sentToMailbagLine('r@m.example', 'QOLD000000001') }),
    maillogEvent({ id: 'lMix1', at: NOW - 31 * DAY, upstreamQid: '4UMIX01', fields: sentToMailbagLine('r@m.example', 'QMIX000000001') }),
    messageEvent({ guid: 'gMid', at: NOW - 35 * DAY, upstreamQid: '4UMID01', messageId: 'mid@up.example', disposition: 'quarantine', rules: [['spam', 'phish']] }),
  ];
  const recent = [
    messageEvent({ guid: 'gMix', at: NOW - 29 * DAY, upstreamQid: '4UMIX01', messageId: 'mix@up.example', disposition: 'continue', rules }),
    messageEvent({ guid: 'gNew', at: NOW - DAY, upstreamQid: '4UNEW01', messageId: 'new@up.example', disposition: 'continue', rules }),
    maillogEvent({ id: 'lNew1', at: NOW - DAY + 1000, upstreamQid: '4UNEW01', fields: sentToMailbagLine('r@m.example', 'QNEW000000001') }),
  ];
  assert.equal(store(s, old, { checkpointStream: 'pod-old', now: NOW - 31 * DAY }).stored, old.length);
  assert.equal(store(s, recent, { now: NOW - DAY }).stored, recent.length);
  assert.equal(store(s, ['{"old": dead'], { now: NOW - 31 * DAY }).deadLettered, 1);
  assert.equal(store(s, ['{"new": dead'], { now: NOW - DAY }).deadLettered, 1);
  return { old, recent };
}

t.test('events and dead letters older than the PoD retention go, with their rules, counters and links; newer ones and checkpoints stay', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention');
  t.teardown(cleanup);
  const s = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => s.close());
  seed(s);
  t.same(links(s), [
    '4UMID01 QMID000000001 message-id',
    '4UMIX01 QMIX000000001 queued-as',
    '4UMIX01 QMIX000000001 received',
    '4UNEW01 QNEW000000001 queued-as',
    '4UNEW01 QNEW000000001 received',
    '4UOLD01 QOLD000000001 queued-as',
    '4UOLD01 QOLD000000001 received',
  ]);
  t.equal(count(s, 'pod_message_rules'), 7);
  t.same(podFigures(s, true), podFigures(s, false), 'counters equal a recount before pruning');

  const pruner = new RetentionPruner({ store: s, retentionMs: 365 * DAY, podRetentionMs: RETENTION, logger: silent, now: () => NOW });
  const r = await pruner.prunePod();
  t.same(r, { messageEvents: 2, maillogEvents: 3, deadLetters: 1, links: 4, rows: 6 });

  t.same(
    (s.db.prepare('SELECT guid FROM pod_message_events ORDER BY guid').all() as { guid: string }[]).map((e) => e.guid),
    ['gMix', 'gNew'],
    'message events: the 29-day-old and the recent one kept',
  );
  t.same((s.db.prepare('SELECT event_id FROM pod_maillog_events').all() as { event_id: string }[]).map((e) => e.event_id), ['lNew1']);
  t.equal(count(s, 'pod_message_rules'), 4, 'the pruned events’ rule rows went with them');
  t.equal(count(s, 'pod_message_rules AS r WHERE NOT EXISTS (SELECT 1 FROM pod_message_events WHERE id = r.event_id)'), 0);
  t.equal(count(s, 'pod_dead_letters'), 1, 'the old dead letter went, the new one stayed');
  t.same(links(s), ['4UMIX01 QMIX000000001 received', '4UNEW01 QNEW000000001 received', '4UNEW01 QNEW000000001 queued-as'].sort(), 'a link goes with the events that made it; the verdict still stored keeps `received`');
  t.equal(dangling(s), 0, 'no link to an upstream qid without events');
  t.equal(s.pod.checkpoint('pod-old')?.newestTs, '2026-10-30T12:00:00.000000Z', 'the stream checkpoint stays, however old');
  t.equal(count(s, 'messages'), 4, 'mailbag’s own messages are not touched by the PoD pass');

  const counted = podFigures(s, true);
  t.same(counted, podFigures(s, false), 'counters equal a recount after pruning');
  t.equal(total(counted.podMessages), 2);
  t.equal(total(counted.podMaillog), 1);
  t.same(counted.linkCoverage, { messages: 4, linked: 2 });
  t.same(counted.upstreamCoverage, { messages: 1, linked: 1 });

  const old = trace(s, 'QOLD000000001', 'qid');
  t.ok(old, 'trace still finds the mailbag message');
  t.same(old!.matches[0]!.links, [], 'its links to pruned events are gone');
  t.notOk(old!.matches[0]!.timeline.some((e) => e.hop === 'upstream'), 'no upstream entry left for it');
  const mix = trace(s, 'QMIX000000001', 'qid')!;
  t.same(
    mix.matches[0]!.timeline.filter((e) => e.hop === 'upstream').map((e) => e.kind),
    ['verdict'],
    'the kept verdict still shows, the pruned hand-over line does not',
  );

  t.same(await pruner.prunePod(), { messageEvents: 0, maillogEvents: 0, deadLetters: 0, links: 0, rows: 0 }, 'a second pass finds nothing');
});

t.test('a pruned event imported again is stored again, links again and counts again', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention-reimport');
  t.teardown(cleanup);
  const s = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => s.close());
  const { old } = seed(s);
  const before = links(s);
  const pruner = new RetentionPruner({ store: s, retentionMs: RETENTION, logger: silent, now: () => NOW });
  t.equal((await pruner.prunePod()).messageEvents + count(s, 'pod_message_events'), 4, 'the PoD retention defaults to the messages’');

  t.same(store(s, old, { now: NOW }), { stored: old.length, duplicates: 0, deadLettered: 0 }, 'not a duplicate: the store no longer has it');
  t.same(store(s, old, { now: NOW }), { stored: 0, duplicates: old.length, deadLettered: 0 }, 'the second time it is');
  t.same(links(s), before, 'the links are made again');
  t.equal(count(s, 'pod_message_rules'), 7);
  t.same(podFigures(s, true), podFigures(s, false), 'counters equal a recount after the re-import');
  t.equal(total(podFigures(s, true).podMessages), 4);
});

t.test('the pass runs in short transactions of at most podBatchSize rows, releasing the lock between them', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention-batches');
  t.teardown(cleanup);
  const path = join(dir, 'mailbag.db');
  const s = Store.open(path);
  t.teardown(() => s.close());
  const events = Array.from({ length: 7 }, (_, i) =>
    maillogEvent({ id: `b${i}`, at: NOW - 40 * DAY + i, upstreamQid: `4UB${i}`, fields: fromLine('s@up.example', `b${i}@up.example`) }),
  );
  store(s, events);
  store(s, [maillogEvent({ id: 'keep', at: NOW, upstreamQid: '4UKEEP', fields: fromLine('s@up.example', 'k@up.example') })]);
  const other = new Database(path);
  t.teardown(() => other.close());
  other.pragma('busy_timeout = 0');
  const batches: number[] = [];
  const prune = s.prunePodBefore.bind(s);
  s.prunePodBefore = (cutoff, limit) => {
    t.notOk(s.db.inTransaction, 'each batch starts outside a transaction');
    const n = prune(cutoff, limit);
    batches.push(n.rows);
    // another writer gets the lock at once between batches: no transaction spans them
    other.exec("BEGIN IMMEDIATE; INSERT INTO pod_checkpoints (stream, newest_ts, newest_ts_us, updated_at) VALUES ('probe', '', 0, 0) ON CONFLICT DO UPDATE SET updated_at = updated_at + 1; COMMIT");
    return n;
  };
  const pruner = new RetentionPruner({ store: s, retentionMs: RETENTION, logger: silent, podBatchSize: 3, now: () => NOW });
  t.equal((await pruner.prunePod()).maillogEvents, 7);
  t.same(batches, [3, 3, 1], 'three transactions for seven rows');
  t.equal(count(s, 'pod_maillog_events'), 1);
});

t.test('the retention pass logs what it pruned', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention-log');
  t.teardown(cleanup);
  const s = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => s.close());
  seed(s);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  await new RetentionPruner({ store: s, retentionMs: RETENTION, logger, now: () => NOW }).runOnce();
  const line = lines.find((l) => l.msg === 'store: pruned PoD events past retention');
  t.match(line, { messageEvents: 2, maillogEvents: 3, deadLetters: 1, links: 4, before: new Date(NOW - RETENTION).toISOString() });
});

t.test('pruning walks indexes: no table scan, no sort', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention-plan');
  t.teardown(cleanup);
  const s = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => s.close());
  const plan = (sql: string, params: Record<string, unknown>) => (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((r) => r.detail).join('; ');
  for (const [sql, index] of [
    [POD_MESSAGE_PRUNE_SQL, /USING (COVERING )?INDEX pod_message_events_ts_disposition /],
    [POD_MAILLOG_PRUNE_SQL, /USING (COVERING )?INDEX pod_maillog_events_ts /],
  ] as const) {
    const p = plan(sql, { cutoffUs: NOW * 1000, limit: 500 });
    t.match(p, index, p);
    t.notMatch(p, /TEMP B-TREE|SCAN/, 'in time order, from the oldest');
  }
  const dl = plan(POD_DEAD_LETTER_PRUNE_SQL, { cutoffMs: NOW, limit: 500 });
  t.match(dl, /USING (COVERING )?INDEX pod_dead_letters_received/, dl);
  t.notMatch(dl, /TEMP B-TREE|SCAN/);
  for (const [name, sql] of Object.entries(DROP_UNSUPPORTED_LINKS_SQL)) {
    const p = plan(sql, sql.includes('@window') ? { u: '4U', window: DAY } : { u: '4U' });
    t.notMatch(p, /\bSCAN\b/, `${name}: ${p}`);
  }
});

t.test('store.podRetention: default 30 days like store.retention, at least a minute', async (t) => {
  t.equal(validateConfig({}).store.podRetention, 30 * DAY);
  t.equal(validateConfig({}).store.podRetention, validateConfig({}).store.retention);
  t.equal(validateConfig({ store: { podRetention: '90d' } }).store.podRetention, 90 * DAY);
  t.throws(() => validateConfig({ store: { podRetention: '10s' } }), /podRetention/);
});

t.test('the gateway prunes PoD events at start with store.podRetention', async (t) => {
  const { dir, cleanup } = tempDir('pod-retention-gateway');
  t.teardown(cleanup);
  const config = testConfig(dir, { store: { podRetention: '7d' } });
  const seedStore = Store.open(config.store.path);
  const now = Date.now();
  store(seedStore, [
    messageEvent({ guid: 'gw-old', at: now - 8 * DAY, upstreamQid: '4UGW01', messageId: 'gw-old@up.example', disposition: 'continue', rules: [] }),
    messageEvent({ guid: 'gw-new', at: now - 6 * DAY, upstreamQid: '4UGW02', messageId: 'gw-new@up.example', disposition: 'continue', rules: [] }),
  ]);
  seedStore.close();
  const gw = await startGateway(config, { queueThread: true });
  t.teardown(() => gw.stop());
  await waitFor(() => count(gw.store, "pod_message_events WHERE guid = 'gw-old'") === 0, 10_000, 'the 8-day-old event pruned');
  t.equal(count(gw.store, "pod_message_events WHERE guid = 'gw-new'"), 1, 'the 6-day-old one kept');
});

t.test('pod_message_events has one index leading with ts_us (migration 28): the report reads by time through it too', async (t) => {
  const { dir, cleanup } = tempDir('pod-ts-indexes');
  t.teardown(cleanup);
  const s = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => s.close());
  const byTime = (s.db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pod_message_events' AND sql IS NOT NULL").all() as { name: string; sql: string }[])
    .filter((r) => /\(\s*ts_us\b/.test(r.sql))
    .map((r) => r.name);
  t.same(byTime, ['pod_message_events_ts_disposition']);
  const p = (s.db.prepare('EXPLAIN QUERY PLAN SELECT COUNT(*) AS n FROM pod_message_events WHERE ts_us >= ? * 1000 AND ts_us < ? * 1000').all(0, 1) as { detail: string }[]).map((r) => r.detail).join('; ');
  t.match(p, /USING COVERING INDEX pod_message_events_ts_disposition/, p);
});
