import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { migrate, migrations } from '../src/store/migrations.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-migrations-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const versions = (db: Database.Database) => db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all() as number[];
const all = migrations.map((m) => m.version).sort((a, b) => a - b);

t.test('versions appended out of numeric order: a store reopens, and a missing one is applied', async (t) => {
  t.ok(migrations.some((m, i) => i > 0 && m.version < migrations[i - 1]!.version), 'the array holds a version after a higher one');
  const db = new Database(join(dir, 'a.db'));
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
  const db = new Database(join(dir, 'b.db'));
  t.teardown(() => db.close());
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  db.prepare('INSERT INTO schema_migrations VALUES (1000, ?, 0)').run('from the future');
  t.throws(() => migrate(db), { code: 'ERR_MAILBAG_STORE_VERSION', message: `store schema version 1000 is newer than this mailbag (${Math.max(...all)})` });
  t.same(versions(db), [1000], 'nothing applied');
});
