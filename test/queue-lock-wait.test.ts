// The delivery queue while another connection (the SMTP thread's group commit, the CLI)
// holds the store's write lock: recording a finished round and claiming the next message
// wait for the lock from the event loop, not in SQLite's busy handler, so a delivery in
// flight on the same thread keeps going meanwhile; once the lock is free every result is
// recorded once and the waiting message is claimed. Events are ordered, never timed.
import { existsSync } from 'node:fs';
import t from 'tap';
import { enqueueGenerated } from '../src/delivery/enqueue.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { isLockBusy, LockRetry, openDatabase, writeTransaction } from '../src/store/db.js';
import { Store } from '../src/store/store.js';
import { tempDir, waitFor } from './helpers/gateway.js';
import { spyPragmaAssignments } from './helpers/pragma-spy.js';
import { gate, reply, startEngine } from './helpers/queue-engine.js';

const turns = (n: number) =>
  new Promise<void>((resolve) => {
    const next = (left: number) => (left === 0 ? resolve() : setImmediate(() => next(left - 1)));
    next(n);
  });

t.test('the write lock held elsewhere: a delivery in flight progresses, results and claims wait for the lock, nothing lost or doubled', async (t) => {
  const e = await startEngine();
  const other = openDatabase(e.store.queue.db.name, { role: 'cli' });
  t.teardown(async () => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    await e.close();
  });
  const events: string[] = [];
  const gateA = gate();
  const gateB = gate();
  e.transport.answers.push(
    async (req) => {
      await gateA.promise;
      return reply(req, 'delivered', '250 2.0.0 A');
    },
    async (req) => {
      await gateB.promise;
      events.push('B progressed');
      return reply(req, 'delivered', '250 2.0.0 B');
    },
  );
  let recordTries = 0;
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  e.store.queue.recordRounds = (...args) => {
    recordTries++;
    return recordRounds(...args);
  };
  let claimTries = 0;
  const claimMany = e.store.queue.claimMany.bind(e.store.queue);
  e.store.queue.claimMany = (...args) => {
    claimTries++;
    return claimMany(...args);
  };

  const qidA = await e.enqueue(['a@example.test']);
  await e.transport.started(1);
  const qidB = await e.enqueue(['b@example.test']);
  await e.transport.started(2);
  // queued, not yet handed to the queue: it is claimed while the lock is held
  const qidC = await enqueueGenerated(
    { spool: e.spool, store: e.store, qids: new QidGenerator(undefined, { lane: 1, lanes: 2 }) },
    { envelopeFrom: 'ann@sender.test', recipients: ['c@example.test'], bytes: Buffer.from('Subject: c\r\n\r\nbody\r\n') },
  );

  other.exec('BEGIN IMMEDIATE');
  events.push('lock taken');
  gateA.open();
  // once the recorder has tried the lock: SQLite's busy handler would hold this thread
  // until the lock is free or the bound passes, and B could not progress meanwhile
  while (recordTries === 0) await turns(1);
  const claimsBefore = claimTries;
  e.queue.kick([qidC]);
  while (claimTries === claimsBefore) await turns(1);
  await turns(20);
  gateB.open();
  await waitFor(() => events.includes('B progressed'), 5000, 'B to progress');
  t.equal(e.store.queue.message(qidA)!.state, 'queued', 'A is not recorded while the lock is held');
  other.exec('COMMIT');
  events.push('lock released');

  await waitFor(() => [qidA, qidB, qidC].every((q) => e.store.queue.message(q)!.state === 'done'), 5000, 'every message done');
  t.same(events, ['lock taken', 'B progressed', 'lock released']);
  t.same(
    e.transport.attempts.map((a) => a.rcpts.join()),
    ['a@example.test', 'b@example.test', 'c@example.test'],
    'each delivered once, in order',
  );
  for (const q of [qidA, qidB, qidC]) t.equal(e.store.queue.attempts(q).length, 1, `${q}: one attempt recorded`);
  t.same(
    e.logs.filter((l) => l.level >= 50).map((l) => l.msg),
    [],
    'no error: the recorder and the claim did not give up waiting (SQLite busy handler bound) while the lock was held',
  );
});

t.test('LockRetry: short delays from the event loop, then give up at the bound, and a new wait after', async (t) => {
  let now = 0;
  const lock = new LockRetry(10, () => now);
  t.same([lock.busy(), lock.busy(), lock.busy(), lock.busy()], [1, 2, 4, 4]);
  now = 9;
  t.equal(lock.busy(), 4);
  now = 10;
  t.equal(lock.busy(), undefined, 'the bound passed');
  t.equal(lock.busy(), 1, 'a new wait');
  lock.done();
  now = 100;
  t.equal(lock.busy(), 1);
});

t.test('a transaction that does not wait: SQLITE_BUSY while the lock is held, the connection keeps its own busy_timeout', async (t) => {
  const { dir, cleanup } = tempDir('lock-wait');
  const path = `${dir}/store.db`;
  const queue = openDatabase(path, { role: 'queue' });
  const other = openDatabase(path, { role: 'cli' });
  t.teardown(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    queue.close();
    cleanup();
  });
  const timeout = () => Number(queue.pragma('busy_timeout', { simple: true }));
  other.exec('BEGIN IMMEDIATE');
  for (let i = 0; i < 3; i++) {
    let caught: unknown;
    try {
      writeTransaction(queue, () => queue.exec('CREATE TABLE IF NOT EXISTS t (x)'), { waitForLock: false });
    } catch (err) {
      caught = err;
    }
    t.ok(isLockBusy(caught), `try ${i + 1}: SQLITE_BUSY`);
    t.equal(timeout(), 5000, 'busy_timeout restored');
  }
  other.exec('COMMIT');
  writeTransaction(queue, () => queue.exec('CREATE TABLE IF NOT EXISTS t (x)'), { waitForLock: false });
  t.equal(timeout(), 5000, 'busy_timeout restored after a transaction that got the lock');
});

t.test("the queue's no-wait transactions run on a connection of their own (no busy_timeout switch), closed with the store", async (t) => {
  const { dir, cleanup } = tempDir('lock-wait-twin');
  const path = `${dir}/store.db`;
  const store = Store.open(path, { role: 'queue' });
  const other = openDatabase(path, { role: 'cli' });
  t.teardown(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    store.close();
    cleanup();
  });
  const pragmas = spyPragmaAssignments(store.queue.db);
  other.exec('BEGIN IMMEDIATE');
  let caught: unknown;
  try {
    store.queue.claimMany(['none'], Date.now(), Date.now() + 1000, { waitForLock: false });
  } catch (err) {
    caught = err;
  }
  t.ok(isLockBusy(caught), 'SQLITE_BUSY at once while another connection holds the lock');
  other.exec('COMMIT');
  t.same(store.queue.recordRounds([], Date.now(), undefined, undefined, { waitForLock: false }), []);
  t.same(pragmas, [], "the store's own connection was not touched");
  other.close();
  store.close();
  t.notOk(existsSync(`${path}-wal`), 'no connection left open: the last one to close removed the WAL');
});
