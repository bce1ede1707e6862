// The accept path's group commit while another connection (the queue thread, the CLI)
// holds the store's write lock: it waits from the event loop, so the SMTP thread's other
// sessions keep running, and commits once the lock is free; past the SMTP lock bound it
// fails (451) instead of waiting on. It commits on a connection of its own whose settings
// are fixed at open, so no PRAGMA runs per commit. Events are ordered, never timed.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { toNewMessage } from '../src/delivery/accept.js';
import { GroupCommitter } from '../src/delivery/group-commit.js';
import { Spool } from '../src/delivery/spool.js';
import { BUSY_TIMEOUT_MS, openDatabase, openDurableWriter } from '../src/store/db.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';
import { spyPragmaAssignments } from './helpers/pragma-spy.js';

function setup(t: { teardown(fn: () => void): void }) {
  const { dir, cleanup } = tempDir('group-commit-lock');
  const path = join(dir, 'store.db');
  const store = Store.open(path, { role: 'smtp' });
  const other = openDatabase(path, { role: 'queue' });
  t.teardown(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    store.close();
    cleanup();
  });
  const spool = new Spool(join(dir, 'spool'));
  const committer = new GroupCommitter(store, spool);
  const message = (qid: string) =>
    toNewMessage({ qid, receivedAt: 1, sender: 'a@sender.test', recipients: [{ address: 'b@example.test' }] }, { spoolPath: join(dir, 'spool', qid), spoolOffset: 0, size: 1, sha256: '0'.repeat(64) });
  return { store, other, committer, message };
}

const turns = (n: number) => new Promise<void>((resolve) => {
  const next = (left: number) => (left === 0 ? resolve() : setImmediate(() => next(left - 1)));
  next(n);
});

t.test('the write lock held elsewhere: the commit waits without blocking the event loop, then commits', async (t) => {
  const { store, other, committer, message } = setup(t);
  const events: string[] = [];
  let tries = 0;
  const insertMessages = store.queue.insertMessages.bind(store.queue);
  store.queue.insertMessages = (batch, opts) => {
    tries++;
    insertMessages(batch, opts);
  };
  other.exec('BEGIN IMMEDIATE');
  const committed = committer.commit(message('0Q0000000000A')).then(
    () => events.push('committed'),
    (err: Error) => events.push(`failed: ${err.message}`),
  );
  // once the commit has tried the lock: SQLite's busy handler would hold this thread until
  // the lock is free or the bound passes, and these turns of the event loop would run after
  while (tries === 0) await turns(1);
  await turns(20);
  events.push('the event loop ran while the lock was held');
  other.exec('COMMIT');
  events.push('lock released');
  await committed;
  t.same(events, ['the event loop ran while the lock was held', 'lock released', 'committed']);
  t.ok(store.queue.message('0Q0000000000A'), 'the row is stored');
});

t.test('the lock held past the SMTP bound: the batch fails with SQLITE_BUSY (the clients get 451)', async (t) => {
  const { store, other, committer, message } = setup(t);
  other.exec('BEGIN IMMEDIATE');
  const result = await committer.commit(message('0Q0000000000B')).then(
    () => 'committed',
    (err: Error & { code?: string }) => err.code,
  );
  t.equal(result, 'SQLITE_BUSY');
  other.exec('COMMIT');
  t.equal(store.queue.message('0Q0000000000B'), undefined, 'nothing stored');
  // the next batch commits once the lock is free
  await committer.commit(message('0Q0000000000C'));
  t.ok(store.queue.message('0Q0000000000C'));
});

t.test('the accept commit runs on a connection of its own: FULL, no busy wait, no PRAGMA per commit on the store connection', async (t) => {
  const { store, committer, message } = setup(t);
  const pragmas = spyPragmaAssignments(store.db);
  await Promise.all([committer.commit(message('0Q0000000000D')), committer.commit(message('0Q0000000000E'))]);
  await committer.commit(message('0Q0000000000F'));
  t.same(pragmas, [], 'no PRAGMA compiled around the commits (SQLite applies one when it compiles it)');
  t.ok(store.queue.message('0Q0000000000F'), 'the rows are visible to the store connection');
  t.equal(store.db.pragma('synchronous', { simple: true }), 1, 'the store connection stays at synchronous=NORMAL');
  t.equal(store.db.pragma('busy_timeout', { simple: true }), BUSY_TIMEOUT_MS.smtp, 'and keeps its lock wait bound');
});

t.test('openDurableWriter: synchronous=FULL, busy_timeout 0, no WAL checkpoints, fixed at open', async (t) => {
  const { dir, cleanup } = tempDir('durable-writer');
  t.teardown(cleanup);
  const path = join(dir, 'store.db');
  const store = Store.open(path, { role: 'smtp' });
  const writer = openDurableWriter(path);
  t.teardown(() => (writer.close(), store.close()));
  t.equal(writer.pragma('synchronous', { simple: true }), 2, 'FULL: every commit fsyncs the WAL before it returns');
  t.equal(writer.pragma('busy_timeout', { simple: true }), 0);
  t.equal(writer.pragma('wal_autocheckpoint', { simple: true }), 0);
  t.equal(writer.pragma('foreign_keys', { simple: true }), 1);
});

t.test('closing the store closes the accept connection too (the last close removes the WAL)', async (t) => {
  const { dir, cleanup } = tempDir('durable-writer-close');
  t.teardown(cleanup);
  const path = join(dir, 'store.db');
  const store = Store.open(path, { role: 'smtp' });
  const committer = new GroupCommitter(store, new Spool(join(dir, 'spool')));
  await committer.commit(toNewMessage({ qid: '0Q0000000000G', receivedAt: 1, sender: '', recipients: [{ address: 'b@example.test' }] }, { spoolPath: join(dir, 'spool', 'x'), spoolOffset: 0, size: 1, sha256: '0'.repeat(64) }));
  t.ok(existsSync(`${path}-wal`));
  store.close();
  t.notOk(existsSync(`${path}-wal`), 'no connection left open');
});

t.test('a commit after the store closed fails (the clients get 451) and opens no connection again', async (t) => {
  const { dir, cleanup } = tempDir('durable-writer-closed');
  t.teardown(cleanup);
  const path = join(dir, 'store.db');
  const store = Store.open(path, { role: 'smtp' });
  const committer = new GroupCommitter(store, new Spool(join(dir, 'spool')));
  store.close();
  const late = toNewMessage({ qid: '0Q0000000000H', receivedAt: 1, sender: '', recipients: [{ address: 'b@example.test' }] }, { spoolPath: join(dir, 'spool', 'y'), spoolOffset: 0, size: 1, sha256: '0'.repeat(64) });
  await t.rejects(committer.commit(late), /not open/, 'the batch fails');
  t.notOk(existsSync(`${path}-wal`), 'no connection opened again on the closed store');
});

t.test('a busy accept commit is thrown without a stack trace: it is expected under load and retried', async (t) => {
  const { store, other, message } = setup(t);
  store.queue.durableWriter();
  other.exec('BEGIN IMMEDIATE');
  const limit = Error.stackTraceLimit;
  let err: (Error & { code?: string }) | undefined;
  try {
    store.queue.insertMessages([message('0Q0000000000J')], { waitForLock: false });
  } catch (e) {
    err = e as Error & { code?: string };
  }
  other.exec('ROLLBACK');
  t.equal(err?.code, 'SQLITE_BUSY', 'the lock was busy');
  // capturing the frames is most of a thrown error's cost, paid on the SMTP thread per try
  t.notMatch(err?.stack ?? '', /\n\s+at /, 'no frames captured');
  t.equal(Error.stackTraceLimit, limit, 'the limit is restored');
  store.queue.insertMessages([message('0Q0000000000J')], { waitForLock: false });
  t.equal(store.queue.recipients('0Q0000000000J').length, 1, 'the next try commits');
});
