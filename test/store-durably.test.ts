// `durably` commits at synchronous=FULL and `writeTransaction` at the connection's NORMAL.
// The switch back waits for the next transaction that need not be durable: under load the
// queue thread's durable commits (the accepted messages it inserts) come one after another,
// and each switch is a PRAGMA compiled on that thread.
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
  /** The level a transaction runs (and so commits) at, read inside it. */
  const level = (db: SqliteDatabase) => Number(db.pragma('synchronous', { simple: true }));
  const insert = (n: number) => db.prepare('INSERT INTO durably_test (n) VALUES (?)').run(n);
  return { db, assignments, level, insert };
}

t.test('durable commits one after another switch the level once', async (t) => {
  const { db, assignments, level, insert } = setup(t);
  const seen: number[] = [];
  for (let n = 0; n < 3; n++) durably(db, () => (insert(n), seen.push(level(db))));
  t.same(seen, [FULL, FULL, FULL], 'each durable transaction commits at FULL');
  t.same(assignments, ['synchronous = FULL'], 'one PRAGMA for the three, not two each');
});

t.test('a transaction that need not be durable switches back to NORMAL before it begins', async (t) => {
  const { db, assignments, level, insert } = setup(t);
  const seen: number[] = [];
  durably(db, () => (insert(1), seen.push(level(db))));
  writeTransaction(db, () => (insert(2), seen.push(level(db))));
  writeTransaction(db, () => (insert(3), seen.push(level(db))));
  durably(db, () => (insert(4), seen.push(level(db))));
  t.same(seen, [FULL, NORMAL, NORMAL, FULL]);
  t.same(assignments, ['synchronous = FULL', 'synchronous = NORMAL', 'synchronous = FULL']);
  t.equal(db.prepare('SELECT COUNT(*) FROM durably_test').pluck().get(), 4);
});

t.test('a durable transaction that fails leaves the next durable one at FULL, a plain one at NORMAL', async (t) => {
  const { db, level, insert } = setup(t);
  t.throws(() => durably(db, () => {
    insert(1);
    throw new Error('refused');
  }), /refused/);
  t.equal(db.prepare('SELECT COUNT(*) FROM durably_test').pluck().get(), 0, 'rolled back');
  t.equal(durably(db, () => level(db)), FULL);
  t.equal(writeTransaction(db, () => level(db)), NORMAL);
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
