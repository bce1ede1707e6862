// Migrations run in BEGIN IMMEDIATE and re-read the version under the lock; the queue
// CLI never migrates and refuses a store of another schema version in one line.
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/db.js';
import { describeSchema, latestVersion, migrate, migrations, schemaState, schemaVersion, type Migration } from '../src/store/migrations.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { tempDir, writeTestConfig } from './helpers/gateway.js';
import { runWritersTogether } from './helpers/store-workers.js';

function appliedVersions(db: Database.Database): number[] {
  return (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
}

t.test('a process that migrates while another is midway waits for it, then finds the work done', async (t) => {
  const { dir, cleanup } = tempDir('migrate-race');
  t.teardown(cleanup);
  const path = join(dir, 'race.db');
  const first = openDatabase(path, { migrate: false, role: 'cli' });
  const second = openDatabase(path, { migrate: false, role: 'cli' });
  t.teardown(() => (first.close(), second.close()));
  second.pragma('busy_timeout = 0'); // one thread plays both processes: the second cannot wait
  const plain: Migration[] = [
    { version: 1, name: 'one', sql: 'CREATE TABLE one (x);' },
    { version: 2, name: 'two', sql: 'ALTER TABLE one ADD COLUMN y;' },
  ];
  const events: string[] = [];
  // The first process, having read the version and begun migration 1, lets the second
  // one (a second `mailbag start`, or the queue thread) run its whole migration.
  first.function('second_process_migrates', () => {
    try {
      migrate(second, plain);
      events.push('second applied');
    } catch (err) {
      events.push(`second waits: ${(err as { code?: string }).code}`);
    }
    return 0;
  });
  const interrupted: Migration[] = [{ ...plain[0]!, sql: `SELECT second_process_migrates(); ${plain[0]!.sql}` }, plain[1]!];
  migrate(first, interrupted);
  events.push('first done');
  migrate(second, plain); // the second retries once the lock is free: nothing left to do
  events.push('second found nothing to do');
  t.same(events, ['second waits: SQLITE_BUSY', 'first done', 'second found nothing to do']);
  t.same(appliedVersions(first), [1, 2], 'each migration applied once');
});

t.test('two threads opening a fresh store at once both succeed, each migration recorded once', async (t) => {
  const { dir, cleanup } = tempDir('migrate-threads');
  t.teardown(cleanup);
  for (let round = 0; round < 3; round++) {
    const path = join(dir, `fresh-${round}.db`);
    const reports = await runWritersTogether([
      { path, role: 'smtp', kind: 'migrate', qids: [], iterations: 0 },
      { path, role: 'queue', kind: 'migrate', qids: [], iterations: 0 },
    ]);
    t.same(reports.map((r) => r.errors), [[], []], `round ${round}: no errors`);
    const db = new Database(path);
    t.same(appliedVersions(db), migrations.map((m) => m.version).sort((a, b) => a - b));
    db.close();
  }
});

t.test('the latest version comes from the list, whatever its order', async (t) => {
  t.equal(latestVersion([{ version: 5, name: '', sql: '' }, { version: 2, name: '', sql: '' }]), 5);
  t.equal(latestVersion(), Math.max(...migrations.map((m) => m.version)));
});

t.test('a store newer than the code is refused, not touched', async (t) => {
  const { dir, cleanup } = tempDir('migrate-newer');
  t.teardown(cleanup);
  const path = join(dir, 'new.db');
  Store.open(path).close();
  const db = new Database(path);
  db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(latestVersion() + 1, 'from the future', 0);
  db.close();
  t.throws(() => Store.open(path), { code: 'ERR_MAILBAG_STORE_VERSION', message: /is at schema \d+, newer than this mailbag/ });
});

t.test('versions merged out of order: a store missing a lower version gets it; the CLI sees the gap', async (t) => {
  const { dir, cleanup } = tempDir('migrate-gap');
  t.teardown(cleanup);
  const path = join(dir, 'mailbag.db');
  const list: Migration[] = [
    { version: 1, name: 'one', sql: 'CREATE TABLE one (x);' },
    { version: 5, name: 'five', sql: 'CREATE INDEX one_x ON one (x);' },
    { version: 9, name: 'nine', sql: 'CREATE TABLE nine (y);' },
  ];
  const db = openDatabase(path, { migrate: false });
  t.teardown(() => db.close());
  migrate(db, [list[0]!, list[2]!]); // written by a build that had 1 and 9 but not yet 5
  t.same(schemaState(db, list), { version: 9, missing: [5], unknown: [] });
  t.equal(describeSchema(schemaState(db, list)), '9 (without 5)');
  migrate(db, list);
  t.same(appliedVersions(db), [1, 5, 9], 'the missing lower version applied');
  t.same(schemaState(db, list), { version: 9, missing: [], unknown: [] });
});

t.test('the queue CLI refuses a store that lacks a lower version', async (t) => {
  const { dir, cleanup } = tempDir('cli-version-gap');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  const path = join(dir, 'mailbag.db');
  const gap = migrations.find((m) => m.version === 5)!;
  const db = openDatabase(path, { migrate: false });
  migrate(db, migrations.filter((m) => m !== gap));
  db.close();
  const r = await cli(['queue', 'list', '--config', file]);
  t.equal(r.code, 1);
  t.equal(
    r.stderr,
    `mailbag queue list: store ${path} is at schema ${latestVersion()} (without 5), this mailbag expects ${latestVersion()}: ` +
      'stop the gateway and run `mailbag start` (which migrates) or use the matching mailbag version\n',
  );
});

/** A store as an older mailbag left it: only its first migration applied. */
function olderStore(path: string): void {
  const db = openDatabase(path, { migrate: false });
  migrate(db, migrations.slice(0, 1));
  db.close();
}

t.test('the queue CLI does not migrate an older store: one line says what to do, exit 1', async (t) => {
  const { dir, cleanup } = tempDir('cli-version');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  const path = join(dir, 'mailbag.db');
  olderStore(path);
  const before = statSync(path).mtimeMs;
  for (const argv of [['list'], ['show', '0000000000000'], ['retry', '0000000000000'], ['delete', '0000000000000']]) {
    const r = await cli(['queue', ...argv, '--config', file]);
    t.equal(r.code, 1, `queue ${argv[0]}: exit 1`);
    t.equal(
      r.stderr,
      `mailbag queue ${argv[0]}: store ${path} is at schema 1, this mailbag expects ${latestVersion()}: ` +
        'stop the gateway and run `mailbag start` (which migrates) or use the matching mailbag version\n',
    );
  }
  for (const argv of [['users', 'list'], ['pod', 'dead-letters']]) {
    const r = await cli([...argv, '--config', file]);
    t.equal(r.code, 1, `mailbag ${argv.join(' ')} too`);
    t.match(r.stderr, new RegExp(`^mailbag ${argv.join(' ')}: store .* is at schema 1, this mailbag expects \\d+: stop the gateway`));
  }
  const db = new Database(path, { readonly: true });
  t.equal(schemaVersion(db), 1, 'still at schema 1');
  db.close();
  t.equal(statSync(path).mtimeMs, before, 'the file was not written');
});

t.test('the queue CLI refuses a newer store too', async (t) => {
  const { dir, cleanup } = tempDir('cli-version-newer');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  const path = join(dir, 'mailbag.db');
  Store.open(path).close();
  const db = new Database(path);
  db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(latestVersion() + 1, 'from the future', 0);
  db.close();
  const r = await cli(['queue', 'list', '--config', file]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `mailbag queue list: store ${path} is at schema ${latestVersion() + 1}, this mailbag expects ${latestVersion()}: use the mailbag version that wrote it (or a newer one)\n`);
});

t.test('the queue CLI works on a store at the current schema', async (t) => {
  const { dir, cleanup } = tempDir('cli-version-ok');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  Store.open(join(dir, 'mailbag.db')).close();
  const r = await cli(['queue', 'list', '--config', file]);
  t.equal(r.code, 0);
  t.match(r.stdout.toString(), /queue is empty/);
});

// Versions appended out of numeric order (a lower one after a higher one).
const outOfOrderDir = mkdtempSync(join(tmpdir(), 'mailbag-migrations-'));
t.teardown(() => rmSync(outOfOrderDir, { recursive: true, force: true }));

const versions = (db: Database.Database) => db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all() as number[];
const all = migrations.map((m) => m.version).sort((a, b) => a - b);

t.test('versions appended out of numeric order: a store reopens, and a missing one is applied', async (t) => {
  t.ok(migrations.some((m, i) => i > 0 && m.version < migrations[i - 1]!.version), 'the array holds a version after a higher one');
  const db = new Database(join(outOfOrderDir, 'a.db'));
  t.teardown(() => db.close());
  t.equal(migrate(db), Math.max(...all));
  t.same(versions(db), all);
  t.equal(migrate(db), Math.max(...all), 'opening the same store again');
  // A store made by a build that had the higher versions but not this later-appended lower one.
  const missing = migrations.find((m, i) => migrations.slice(0, i).some((earlier) => earlier.version > m.version))!;
  const lowest = missing.version;
  const tables = [...missing.sql.matchAll(/CREATE TABLE (\w+)/g)].map((m) => m[1]!);
  for (const table of tables) db.exec(`DROP TABLE ${table}`);
  db.prepare('DELETE FROM schema_migrations WHERE version = ?').run(lowest);
  migrate(db);
  t.same(versions(db), all, `version ${lowest} applied although higher versions were recorded`);
  for (const table of tables) t.ok(db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table), table);
});

t.test('a store with a version this code does not know is refused untouched', async (t) => {
  const db = new Database(join(outOfOrderDir, 'b.db'));
  t.teardown(() => db.close());
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  db.prepare('INSERT INTO schema_migrations VALUES (1000, ?, 0)').run('from the future');
  t.throws(() => migrate(db), { code: 'ERR_MAILBAG_STORE_VERSION', message: `store ${join(outOfOrderDir, 'b.db')} is at schema 1000, newer than this mailbag (${Math.max(...all)}): use the mailbag version that wrote it` });
  t.same(versions(db), [1000], 'nothing applied');
});
