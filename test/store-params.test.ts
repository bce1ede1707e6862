import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrations } from '../src/store/migrations.js';
import { messageParams, recipientParams } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

t.test('MAIL FROM / RCPT TO parameters are stored with the message and read back', async (t) => {
  const { dir, cleanup } = tempDir('store-params');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'db.sqlite'));
  t.teardown(() => store.close());
  store.queue.insertMessage({
    qid: 'Q1', receivedAt: 1, envelopeFrom: 'a@b', size: 10, spoolPath: '/x', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['c@d', 'e@f'],
    params: { bodyType: '8bitmime', smtpUtf8: true, declaredSize: 9, dsnRet: 'HDRS', dsnEnvid: 'id+1' },
    recipientParams: { 'c@d': { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;C@D' } },
  });
  t.same(messageParams(store.queue.message('Q1')!), { bodyType: '8bitmime', smtpUtf8: true, declaredSize: 9, dsnRet: 'HDRS', dsnEnvid: 'id+1' });
  const [cd, ef] = store.queue.recipients('Q1');
  t.same(recipientParams(cd!), { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;C@D' });
  t.same(recipientParams(ef!), { notify: undefined, orcpt: undefined }, 'not given: nothing stored');
  store.queue.insertMessage({ qid: 'Q2', receivedAt: 1, envelopeFrom: '', size: 1, spoolPath: '/y', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['g@h'] });
  t.same(messageParams(store.queue.message('Q2')!), { bodyType: undefined, smtpUtf8: false, declaredSize: undefined, dsnRet: undefined, dsnEnvid: undefined });
});

t.test('migration 4 adds the columns to a store with queued mail, which reads as "no parameters"', async (t) => {
  const { dir, cleanup } = tempDir('store-migrate');
  t.teardown(cleanup);
  const path = join(dir, 'db.sqlite');
  const old = new Database(path);
  old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  old.exec(migrations[0]!.sql);
  old.prepare('INSERT INTO schema_migrations VALUES (1, ?, 0)').run(migrations[0]!.name);
  old.prepare("INSERT INTO messages (qid, received_at, envelope_from, size, spool_path) VALUES ('OLD', 1, 'a@b', 1, '/z')").run();
  old.prepare("INSERT INTO recipients (qid, rcpt, next_attempt_at, updated_at) VALUES ('OLD', 'c@d', 1, 1)").run();
  old.close();
  const store = Store.open(path);
  t.teardown(() => store.close());
  t.same(messageParams(store.queue.message('OLD')!).smtpUtf8, false);
  t.same(recipientParams(store.queue.recipients('OLD')[0]!), { notify: undefined, orcpt: undefined });
  const cols = (store.db.prepare('PRAGMA table_info(recipients)').all() as { name: string }[]).map((c) => c.name);
  t.ok(cols.includes('dsn_notify') && cols.includes('dsn_orcpt'));
});

t.test('migration 4 is applied to a store that already has later migrations (reserved numbers land out of order)', async (t) => {
  const { dir, cleanup } = tempDir('store-gap');
  t.teardown(cleanup);
  const path = join(dir, 'db.sqlite');
  const old = new Database(path);
  old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  for (const m of migrations.filter((x) => x.version !== 4)) {
    old.exec(m.sql);
    old.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
  }
  old.close();
  const store = Store.open(path);
  t.teardown(() => store.close());
  const cols = (store.db.prepare('PRAGMA table_info(messages)').all() as { name: string }[]).map((c) => c.name);
  t.ok(cols.includes('dsn_envid'), 'the columns of migration 4 exist');
  t.ok(store.db.prepare('SELECT 1 FROM schema_migrations WHERE version = 4').get(), 'and it is recorded');
});
