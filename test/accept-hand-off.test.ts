// The accept path hands its commits to the delivery queue's connection (on the queue's
// thread) while that takes them. Whatever the hand-off says, a message is committed
// exactly once or not at all, and a 250 is given only once it is committed: a hand-off
// that did not try, or cannot tell whether it committed (its thread died, it did not
// answer), leaves the commit to the accept path's own connection, idempotently.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AcceptPath, toNewMessage } from '../src/delivery/accept.js';
import { CommitOutcomeUnknownError, ERR_COMMIT_UNKNOWN, ERR_QUEUE_NOT_RUNNING, GroupCommitter, type CommitHandOff } from '../src/delivery/group-commit.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { Spool } from '../src/delivery/spool.js';
import { openDatabase } from '../src/store/db.js';
import type { NewMessage } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

function setup(t: { teardown(fn: () => void): void }) {
  const { dir, cleanup } = tempDir('accept-hand-off');
  const path = join(dir, 'store.db');
  const store = Store.open(path, { role: 'smtp' });
  // another connection, as the queue thread's: the hand-off commits there
  const queueSide = Store.open(path, { role: 'queue' });
  t.teardown(() => {
    queueSide.close();
    store.close();
    cleanup();
  });
  const spool = new Spool(join(dir, 'spool'));
  const committer = new GroupCommitter(store, spool);
  let localCommits = 0;
  const insertMessages = store.queue.insertMessages.bind(store.queue);
  store.queue.insertMessages = (batch, opts) => {
    localCommits++;
    insertMessages(batch, opts);
  };
  const message = (qid: string) =>
    toNewMessage({ qid, receivedAt: 1, sender: 'a@sender.test', recipients: [{ address: 'b@example.test' }] }, { spoolPath: join(dir, 'spool', qid), spoolOffset: 0, size: 1, sha256: '0'.repeat(64) });
  return { dir, path, store, queueSide, spool, committer, message, localCommits: () => localCommits };
}

const failWith = (code: string) => Object.assign(new Error(code), { code });

t.test('a hand-off that commits: the accept path does not commit again', async (t) => {
  const { store, queueSide, committer, message, localCommits } = setup(t);
  const handedOff: string[][] = [];
  committer.handOffTo((rows) => {
    handedOff.push(rows.map((r) => r.qid));
    queueSide.queue.insertMessages(rows);
    return Promise.resolve();
  });
  await Promise.all([committer.commit(message('0Q000000000A1')), committer.commit(message('0Q000000000A2'))]);
  t.same(handedOff, [['0Q000000000A1', '0Q000000000A2']], 'one hand-off for the batch');
  t.equal(localCommits(), 0);
  t.ok(store.queue.message('0Q000000000A1'));
  t.ok(store.queue.message('0Q000000000A2'));
});

t.test('no taker (undefined) or a queue that did not try: committed here', async (t) => {
  const { store, committer, message, localCommits } = setup(t);
  committer.handOffTo(() => undefined);
  await committer.commit(message('0Q000000000B1'));
  committer.handOffTo(() => Promise.reject(failWith(ERR_QUEUE_NOT_RUNNING)));
  await committer.commit(message('0Q000000000B2'));
  t.equal(localCommits(), 2);
  t.ok(store.queue.message('0Q000000000B1'));
  t.ok(store.queue.message('0Q000000000B2'));
});

t.test('an unknown outcome after the hand-off committed: committed here again, idempotently, once', async (t) => {
  const { store, queueSide, committer, message, localCommits } = setup(t);
  committer.handOffTo((rows) => {
    // the queue thread committed, then died before it could answer
    queueSide.queue.insertMessages(rows);
    return Promise.reject(failWith(ERR_COMMIT_UNKNOWN));
  });
  await committer.commit(message('0Q000000000C1'));
  t.equal(localCommits(), 1, 'the accept path committed too');
  t.equal(store.queue.recipients('0Q000000000C1').length, 1, 'one message, one recipient row');
});

t.test('an unknown outcome after the hand-off did not commit: committed here', async (t) => {
  const { store, committer, message } = setup(t);
  committer.handOffTo(() => Promise.reject(failWith(ERR_COMMIT_UNKNOWN)));
  await committer.commit(message('0Q000000000D1'));
  t.ok(store.queue.message('0Q000000000D1'));
});

t.test('a hand-off that failed (disk full, lock bound): the batch fails, nothing is committed here', async (t) => {
  const { store, committer, message, localCommits } = setup(t);
  committer.handOffTo(() => Promise.reject(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
  await t.rejects(committer.commit(message('0Q000000000E1')), { code: 'SQLITE_FULL' });
  t.equal(localCommits(), 0);
  t.equal(store.queue.message('0Q000000000E1'), undefined);
});

/** An accept path over `setup`'s store, and one message spooled into it. */
async function spooledMessage(s: ReturnType<typeof setup>, handOff: CommitHandOff) {
  const accept = new AcceptPath({ spool: s.spool, store: s.store, qids: new QidGenerator(undefined) });
  accept.handCommitsTo(handOff);
  const m = await accept.open({ sender: 'a@sender.test', recipients: [{ address: 'b@example.test' }] });
  await new Promise<void>((resolve) => m.writer.end(Buffer.from('Subject: x\r\n\r\nbody\r\n'), () => resolve()));
  return { accept, m, path: s.spool.pathFor(m.qid) };
}

t.test('an unknown outcome and a failed commit here: 451, and the spool file is kept (the store may hold the message)', async (t) => {
  const s = setup(t);
  const other = openDatabase(s.path, { role: 'queue' });
  t.teardown(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
  });
  // the write lock stays taken past the accept path's bound: its own commit fails
  const { accept, m, path } = await spooledMessage(s, () => {
    other.exec('BEGIN IMMEDIATE');
    return Promise.reject(failWith(ERR_COMMIT_UNKNOWN));
  });
  const err = await accept.commit(m).then(
    () => undefined,
    (e: Error) => e,
  );
  other.exec('ROLLBACK');
  t.type(err, CommitOutcomeUnknownError);
  t.equal((err as CommitOutcomeUnknownError).cause.message, 'database is locked');
  t.ok(existsSync(path), 'the spool file is kept');
});

t.test('a failed hand-off: 451, and the spool file is removed (nothing was committed)', async (t) => {
  const s = setup(t);
  const { accept, m, path } = await spooledMessage(s, () => Promise.reject(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
  await t.rejects(accept.commit(m), { code: 'SQLITE_FULL' });
  t.notOk(existsSync(path));
});

t.test('the spool directory is synced before the hand-off, as before a commit here', async (t) => {
  const s = setup(t);
  const events: string[] = [];
  const syncDir = s.spool.syncDir.bind(s.spool);
  s.spool.syncDir = async () => {
    await syncDir();
    events.push('spool directory synced');
  };
  const { accept, m } = await spooledMessage(s, (rows: readonly NewMessage[]) => {
    events.push(`handed off ${rows.length}`);
    s.queueSide.queue.insertMessages(rows);
    return Promise.resolve();
  });
  await accept.commit(m);
  events.push('committed');
  t.same(events, ['spool directory synced', 'handed off 1', 'committed']);
});
