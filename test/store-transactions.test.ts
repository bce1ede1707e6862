// Several writers on one WAL store (the SMTP thread, the queue thread, the CLI): every
// transaction that writes takes the lock at BEGIN (IMMEDIATE), so a read-then-write
// never fails with SQLITE_BUSY_SNAPSHOT, which no busy_timeout can wait out.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, writeTransaction, BUSY_TIMEOUT_MS } from '../src/store/db.js';
import { Store } from '../src/store/store.js';
import { runWritersTogether } from './helpers/store-workers.js';
import { tempDir } from './helpers/gateway.js';

function counterDb(path: string) {
  const a = openDatabase(path, { role: 'cli' });
  const b = openDatabase(path, { role: 'cli' });
  // one thread plays both connections: b must not wait for a lock only a can release
  b.pragma('busy_timeout = 0');
  a.exec('CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)');
  const read = a.prepare('SELECT n FROM counter');
  const writeA = a.prepare('UPDATE counter SET n = ?');
  const bump = b.prepare('UPDATE counter SET n = n + 1');
  return { a, b, read: () => (read.get() as { n: number }).n, writeA: (n: number) => writeA.run(n), bump: () => bump.run() };
}

t.test('deferred read-then-write fails with SQLITE_BUSY_SNAPSHOT when another connection commits in between', async (t) => {
  const { dir, cleanup } = tempDir('tx-deferred');
  t.teardown(cleanup);
  const c = counterDb(join(dir, 'store.db'));
  t.teardown(() => (c.a.close(), c.b.close()));
  // the form every write transaction of the store used before: db.transaction(fn)()
  const deferred = c.a.transaction(() => {
    const n = c.read(); // a's read snapshot starts here
    c.bump(); // b commits meanwhile: a's snapshot is stale
    c.writeA(n + 1);
  });
  t.throws(() => deferred(), { code: 'SQLITE_BUSY_SNAPSHOT' }, 'the write fails at once, whatever busy_timeout says');
});

t.test('immediate read-then-write holds the lock from BEGIN: the other writer waits, nothing fails mid-transaction', async (t) => {
  const { dir, cleanup } = tempDir('tx-immediate');
  t.teardown(cleanup);
  const c = counterDb(join(dir, 'store.db'));
  t.teardown(() => (c.a.close(), c.b.close()));
  const order: string[] = [];
  writeTransaction(c.a, () => {
    const n = c.read();
    try {
      c.bump();
      order.push('b wrote inside a');
    } catch (err) {
      // with busy_timeout > 0 b would wait here for a's commit; this thread cannot
      order.push(`b waits: ${(err as { code: string }).code}`);
    }
    c.writeA(n + 1);
    order.push('a committed');
  });
  c.bump();
  order.push('b wrote after a');
  t.same(order, ['b waits: SQLITE_BUSY', 'a committed', 'b wrote after a']);
  t.equal(c.read(), 2, 'no update lost');
});

t.test('the queue thread and the CLI writing at once: no SQLITE_BUSY from the store accessors', async (t) => {
  const { dir, cleanup } = tempDir('tx-threads');
  t.teardown(cleanup);
  const path = join(dir, 'store.db');
  const store = Store.open(path);
  const qids: string[] = [];
  const now = Date.now();
  for (let i = 0; i < 20; i++) {
    const qid = `0TEST${String(i).padStart(8, '0')}`;
    qids.push(qid);
    store.queue.insertMessage({ qid, receivedAt: now, envelopeFrom: 'a@example.test', size: 1, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['x@example.test', 'y@example.test'] });
  }
  store.close();
  const iterations = 1500;
  const reports = await runWritersTogether([
    { path, role: 'queue', kind: 'queue', qids, iterations },
    { path, role: 'cli', kind: 'cli', qids, iterations },
    { path, role: 'queue', kind: 'queue', qids: [...qids].reverse(), iterations },
  ]);
  for (const [i, r] of reports.entries()) {
    t.same(r.errors.slice(0, 5), [], `writer ${i}: no errors (${r.errors.length} of ${iterations})`);
    t.equal(r.ops, iterations);
  }
  const check = Store.open(path);
  t.teardown(() => check.close());
  const attempts = (check.db.prepare('SELECT COUNT(*) AS n FROM attempts').get() as { n: number }).n;
  t.ok(attempts > 0, 'the queue writers recorded attempts');
});

/** Each `.transaction(...)` call in `text` that is not followed by `.immediate()`, as `line: text`. */
function deferredTransactions(text: string): string[] {
  const out: string[] = [];
  const re = /\.transaction\(/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '(') depth++;
      else if (text[i] === ')') depth--;
    }
    const lineStart = text.lastIndexOf('\n', m.index) + 1;
    const line = text.slice(lineStart, text.indexOf('\n', m.index));
    if (/^\s*(\/\/|\*)/.test(line)) continue; // a comment
    if (!/^\s*\.immediate\(/.test(text.slice(i))) out.push(`${text.slice(0, m.index).split('\n').length}: ${line.trim()}`);
  }
  return out;
}

t.test('every write transaction in src/store is IMMEDIATE', async (t) => {
  const dir = new URL('../src/store/', import.meta.url);
  const offenders: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.ts')) continue;
    for (const o of deferredTransactions(readFileSync(new URL(name, dir), 'utf8'))) offenders.push(`${name}:${o}`);
  }
  t.same(offenders, [], 'db.transaction(fn)() starts DEFERRED: use writeTransaction(db, fn) or .immediate()');
  // the checker itself
  t.same(deferredTransactions('x.transaction(() => {\n  a(b());\n})();'), ['1: x.transaction(() => {']);
  t.same(deferredTransactions('db\n  .transaction(() => {\n  a(b());\n})\n  .immediate();'), []);
});

t.test('busy_timeout by connection role: the SMTP thread waits least', async (t) => {
  const { dir, cleanup } = tempDir('tx-roles');
  t.teardown(cleanup);
  const path = join(dir, 'store.db');
  for (const role of ['smtp', 'queue', 'gateway', 'cli'] as const) {
    const db = openDatabase(path, { role });
    t.equal(db.pragma('busy_timeout', { simple: true }), BUSY_TIMEOUT_MS[role], role);
    t.equal(db.pragma('wal_autocheckpoint', { simple: true }), role === 'smtp' ? 0 : 1000, `${role}: checkpoints ${role === 'smtp' ? 'left to the queue thread' : 'on'}`);
    db.close();
  }
  t.ok(BUSY_TIMEOUT_MS.smtp < BUSY_TIMEOUT_MS.queue);
});
