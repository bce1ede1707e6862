import type { Database } from 'better-sqlite3';

/**
 * Numbered, append-only schema migrations. A migration is never edited once released:
 * later issues (PoD events, correlation) add new entries at the end.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'delivery queue: messages, recipients, attempts',
    sql: `
      CREATE TABLE messages (
        qid TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        envelope_from TEXT NOT NULL,
        size INTEGER NOT NULL,
        spool_path TEXT NOT NULL,
        client_address TEXT,
        client_hostname TEXT,
        helo TEXT,
        auth_user TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
        finished_at INTEGER
      );
      CREATE TABLE recipients (
        qid TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,
        rcpt TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
          CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'deleted')),
        next_attempt_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT,
        nexthop TEXT,
        inflight_until INTEGER,
        delivered_as TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (qid, rcpt)
      );
      CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE state IN ('queued', 'deferred');
      CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        qid TEXT NOT NULL,
        nexthop TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        reply TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'failed', 'partial')),
        recipients TEXT NOT NULL
      );
      CREATE INDEX attempts_qid ON attempts (qid);
    `,
  },
  {
    version: 5,
    name: 'retention: finished messages by finish time',
    // The pruner walks finished messages oldest first and stops at the cutoff.
    sql: `CREATE INDEX messages_done ON messages (finished_at) WHERE state = 'done';`,
  },
];

/** The schema version this code expects: the last migration's. */
export function latestVersion(list: readonly Migration[] = migrations): number {
  return list.reduce((max, m) => Math.max(max, m.version), 0);
}

/** The store's schema version (0: no schema yet). Reads only. */
export function schemaVersion(db: Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!table) return 0;
  return (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
}

function newerThanCode(db: Database, current: number, latest: number): Error {
  return Object.assign(new Error(`store ${db.name} is at schema ${current}, newer than this mailbag (${latest}): use the mailbag version that wrote it`), {
    code: 'ERR_MAILBAG_STORE_VERSION',
  });
}

/**
 * Applies every migration newer than the database, each in its own BEGIN IMMEDIATE
 * transaction that reads the version again once it holds the write lock: when two
 * processes migrate one file at once, the second waits for the first (busy_timeout)
 * and then finds the work done, instead of applying a migration twice.
 */
export function migrate(db: Database, list: readonly Migration[] = migrations): number {
  const latest = latestVersion(list);
  const ordered = [...list].sort((a, b) => a.version - b.version);
  for (;;) {
    const step = db
      .transaction(() => {
        db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
        const current = schemaVersion(db);
        if (current > latest) throw newerThanCode(db, current, latest);
        const next = ordered.find((m) => m.version > current);
        if (!next) return undefined;
        db.exec(next.sql);
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(next.version, next.name, Date.now());
        return next;
      })
      .immediate();
    if (!step) return latest;
  }
}
