// Retention: finished messages, their recipients and attempts go after store.retention,
// in small batches, through an index; nothing of an unfinished message is ever pruned.
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { startGateway } from '../src/gateway/gateway.js';
import { RetentionPruner } from '../src/delivery/retention.js';
import { validateConfig } from '../src/config/load.js';
import { PRUNE_CANDIDATES_SQL } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { tempDir, testConfig, waitFor } from './helpers/gateway.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);
const silent = pino({ level: 'silent' });

let seq = 0;
/** A message received at `receivedAt`; finished (delivered) at `finishedAt` unless undefined. */
function addMessage(store: Store, receivedAt: number, finishedAt: number | undefined): string {
  const qid = `0RET${String(seq++).padStart(9, '0')}`;
  store.queue.insertMessage({ qid, receivedAt, envelopeFrom: 'a@example.test', size: 1, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['x@example.test', 'y@example.test'] });
  const attempt = (state: 'delivered' | 'deferred', at: number) => ({
    qid,
    nexthop: 'smtp://127.0.0.1:1',
    startedAt: at,
    durationMs: 1,
    reply: state === 'delivered' ? '250 ok' : '451 later',
    outcome: state,
    recipients: ['x@example.test', 'y@example.test'].map((rcpt) => ({ rcpt, state, reply: '-', ...(state === 'deferred' ? { nextAttemptAt: at + DAY } : {}) })),
  });
  store.queue.recordRound(qid, [attempt('deferred', receivedAt)], [], receivedAt);
  if (finishedAt !== undefined) store.queue.recordRound(qid, [attempt('delivered', finishedAt)], [], finishedAt);
  store.multilingual.recordChoices(qid, [
    { rcpt: 'x@example.test', mode: 'unchanged', partIndex: null, tags: null, translationType: null, rule: 'none', why: 'not multilingual', preferences: '', fromMismatch: false, dkim: null },
  ]);
  return qid;
}

function counts(store: Store, qid: string) {
  const n = (sql: string) => (store.db.prepare(sql).get(qid) as { n: number }).n;
  return {
    messages: n('SELECT COUNT(*) AS n FROM messages WHERE qid = ?'),
    recipients: n('SELECT COUNT(*) AS n FROM recipients WHERE qid = ?'),
    attempts: n('SELECT COUNT(*) AS n FROM attempts WHERE qid = ?'),
    languageChoices: n('SELECT COUNT(*) AS n FROM language_choices WHERE qid = ?'),
  };
}

t.test('finished messages past retention go with their recipients and attempts; the rest stays', async (t) => {
  const { dir, cleanup } = tempDir('retention');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => store.close());
  const retention = 30 * DAY;
  const old = addMessage(store, NOW - 40 * DAY, NOW - 31 * DAY);
  const recent = addMessage(store, NOW - 40 * DAY, NOW - 29 * DAY);
  const atCutoff = addMessage(store, NOW - 40 * DAY, NOW - retention);
  const unfinished = addMessage(store, NOW - 60 * DAY, undefined);
  t.equal(store.queue.message(old)!.state, 'done');
  t.equal(store.queue.message(unfinished)!.state, 'queued');

  const pruner = new RetentionPruner({ store, retentionMs: retention, logger: silent, now: () => NOW });
  t.equal(await pruner.runOnce(), 1);
  t.same(counts(store, old), { messages: 0, recipients: 0, attempts: 0, languageChoices: 0 }, 'finished 31 days ago: gone, all of it (language decisions too)');
  t.same(counts(store, recent), { messages: 1, recipients: 2, attempts: 2, languageChoices: 1 }, 'finished 29 days ago: kept for correlation');
  t.same(counts(store, atCutoff), { messages: 1, recipients: 2, attempts: 2, languageChoices: 1 }, 'finished exactly 30 days ago: kept');
  t.same(counts(store, unfinished), { messages: 1, recipients: 2, attempts: 1, languageChoices: 1 }, 'unfinished, received 60 days ago: untouched');

  // a day later, the next two are due
  t.equal(await pruner.runOnce(NOW + 1.5 * DAY), 2);
  t.same(counts(store, recent).messages, 0);
  t.same(counts(store, atCutoff).messages, 0);
  t.same(counts(store, unfinished), { messages: 1, recipients: 2, attempts: 1, languageChoices: 1 }, 'still untouched');
});

t.test('pruning runs in small transactions of at most batchSize messages', async (t) => {
  const { dir, cleanup } = tempDir('retention-batches');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => store.close());
  for (let i = 0; i < 5; i++) addMessage(store, NOW - 100 * DAY, NOW - 90 * DAY + i);
  const keep = addMessage(store, NOW - 2 * DAY, NOW - DAY);
  const batches: number[] = [];
  const prune = store.pruneFinished.bind(store);
  store.pruneFinished = (cutoff, limit) => {
    const n = prune(cutoff, limit);
    batches.push(n);
    return n;
  };
  const pruner = new RetentionPruner({ store, retentionMs: 30 * DAY, logger: silent, batchSize: 2, now: () => NOW });
  t.equal(await pruner.runOnce(), 5);
  t.same(batches, [2, 2, 1], 'three transactions');
  t.equal(counts(store, keep).messages, 1);
});

t.test('the cutoff query walks the messages_done index', async (t) => {
  const { dir, cleanup } = tempDir('retention-index');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => store.close());
  const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${PRUNE_CANDIDATES_SQL}`).all({ cutoff: NOW, limit: 10 }) as { detail: string }[]).map((r) => r.detail);
  t.match(plan.join('\n'), /USING INDEX messages_done/, plan.join('; '));
  t.notMatch(plan.join('\n'), /TEMP B-TREE/, 'no sort: the index is in finish order');
});

t.test('store.retention: default 30 days, at least a minute', async (t) => {
  t.equal(validateConfig({}).store.retention, 30 * DAY);
  t.equal(validateConfig({ store: { retention: '7d' } }).store.retention, 7 * DAY);
  t.throws(() => validateConfig({ store: { retention: '10s' } }), /retention/);
});

for (const queueThread of [true, false]) {
  t.test(`the gateway prunes at start (queue ${queueThread ? 'on its own thread' : 'on the SMTP thread'})`, async (t) => {
    const { dir, cleanup } = tempDir('retention-gateway');
    t.teardown(cleanup);
    const config = testConfig(dir, { store: { retention: '30d' } });
    const seed = Store.open(config.store.path);
    const now = Date.now();
    const old = addMessage(seed, now - 40 * DAY, now - 31 * DAY);
    const recent = addMessage(seed, now - 2 * DAY, now - DAY);
    seed.close();
    const gw = await startGateway(config, { queueThread });
    t.teardown(() => gw.stop());
    await waitFor(() => gw.store.queue.message(old) === undefined, 10_000, 'the old finished message pruned');
    t.same(counts(gw.store, old), { messages: 0, recipients: 0, attempts: 0, languageChoices: 0 });
    t.equal(gw.store.queue.message(recent)?.state, 'done', 'the recent one kept');
    // the SMTP thread's connection: short lock waits; checkpoints left to the queue thread when it has one
    t.equal(gw.store.db.pragma('busy_timeout', { simple: true }), 500);
    t.equal(gw.store.db.pragma('wal_autocheckpoint', { simple: true }), queueThread ? 0 : 1000);
  });
}
