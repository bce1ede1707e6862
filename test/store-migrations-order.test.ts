// Migration numbers are reserved per line of work and land out of order: a store that
// already has later migrations still gets an earlier one that landed after them.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { migrate, migrations } from '../src/store/migrations.js';
import { tempDir } from './helpers/gateway.js';

t.test('a migration numbered below the store\'s highest is still applied', async (t) => {
  const { dir, cleanup } = tempDir('migrations');
  t.teardown(cleanup);
  const db = new Database(join(dir, 'store.db'));
  t.teardown(() => db.close());
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  // a store migrated by a build that had every migration but version 2
  for (const m of migrations.filter((m) => m.version !== 2)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 0);
  }
  migrate(db);
  const versions = (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
  t.same(versions, migrations.map((m) => m.version).sort((a, b) => a - b));
  const columns = (db.prepare('PRAGMA table_info(recipients)').all() as { name: string }[]).map((c) => c.name);
  t.ok(columns.includes('retry_gen') && columns.includes('copy_path'), 'the columns of migration 2 exist');
});
