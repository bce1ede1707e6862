// `durably` commits at synchronous=FULL and leaves the connection at NORMAL again, so the
// connection's other writes, a single statement included, never pay an fsync each (a
// review found a version that left it at FULL until the next `writeTransaction`: every
// Maildir delivery's name, recorded by one statement, then fsync'd the WAL). The switches
// run through `exec` (test/helpers/pragma-spy.ts sees both ways).
import t from 'tap';
import { join } from 'node:path';
import { durably, openDatabase, writeTransaction, type SqliteDatabase } from '../src/store/db.js';
import { tempDir } from './helpers/gateway.js';
import { spyPragmaAssignments } from './helpers/pragma-spy.js';

const FULL = 2;
const NORMAL = 1;

function setup(t: { teardown(fn: () => void): void }) {
  const { dir, cleanup } = tempDir('store-durably');
  const db = openDatabase(join(dir, 'store.db'), { role: 'queue' });
  db.exec('CREATE TABLE IF NOT EXISTS durably_test (n INTEGER)');
  t.teardown(() => (db.close(), cleanup()));
  const assignments = spyPragmaAssignments(db);
  /** The level a transaction runs (and so commits) at, read inside it; or the connection's, outside. */
  const level = (db: SqliteDatabase) => Number(db.pragma('synchronous', { simple: true }));
  const insert = (n: number) => db.prepare('INSERT INTO durably_test (n) VALUES (?)').run(n);
  return { db, assignments, level, insert };
}

t.test('a durable transaction commits at FULL; the connection is at NORMAL again after it', async (t) => {
  const { db, assignments, level, insert } = setup(t);
  const seen: number[] = [];
  durably(db, () => (insert(1), seen.push(level(db))));
  seen.push(level(db));
  insert(2); // a single statement (setDeliveredAs, markDeleted): its own transaction
  writeTransaction(db, () => (insert(3), seen.push(level(db))));
  durably(db, () => (insert(4), seen.push(level(db))));
  t.same(seen, [FULL, NORMAL, NORMAL, FULL]);
  t.same(assignments, ['synchronous = FULL', 'synchronous = NORMAL', 'synchronous = FULL', 'synchronous = NORMAL']);
  t.equal(db.prepare('SELECT COUNT(*) FROM durably_test').pluck().get(), 4);
});

t.test('a durable transaction that fails leaves the connection at NORMAL', async (t) => {
  const { db, level, insert } = setup(t);
  t.throws(() => durably(db, () => {
    insert(1);
    throw new Error('refused');
  }), /refused/);
  t.equal(db.prepare('SELECT COUNT(*) FROM durably_test').pluck().get(), 0, 'rolled back');
  t.equal(level(db), NORMAL);
  t.equal(durably(db, () => level(db)), FULL);
});

t.test('a write nested in a durable transaction commits with it, at FULL', async (t) => {
  const { db, level, insert } = setup(t);
  const inner = durably(db, () => {
    insert(1);
    return writeTransaction(db, () => (insert(2), level(db)));
  });
  t.equal(inner, FULL, 'the nested write does not switch the level inside the transaction');
  t.equal(db.prepare('SELECT COUNT(*) FROM durably_test').pluck().get(), 2);
});
