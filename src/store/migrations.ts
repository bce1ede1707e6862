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
    version: 4,
    name: 'MAIL FROM and RCPT TO parameters (BODY, SMTPUTF8, SIZE, DSN)',
    // NULL means the client did not give the parameter; ENVID and ORCPT are kept decoded from xtext.
    sql: `
      ALTER TABLE messages ADD COLUMN body_type TEXT CHECK (body_type IN ('7bit', '8bitmime'));
      ALTER TABLE messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN declared_size INTEGER;
      ALTER TABLE messages ADD COLUMN dsn_ret TEXT CHECK (dsn_ret IN ('FULL', 'HDRS'));
      ALTER TABLE messages ADD COLUMN dsn_envid TEXT;
      ALTER TABLE recipients ADD COLUMN dsn_notify TEXT;
      ALTER TABLE recipients ADD COLUMN dsn_orcpt TEXT;
    `,
  },
  {
    version: 7,
    name: 'multilingual: recipient language preferences',
    sql: `
      CREATE TABLE user_languages (
        address TEXT PRIMARY KEY,
        languages TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    name: 'multilingual: the part each recipient got and why',
    sql: `
      CREATE TABLE language_choices (
        qid TEXT NOT NULL,
        rcpt TEXT NOT NULL,
        mode TEXT NOT NULL,
        part_index INTEGER,
        tags TEXT,
        translation_type TEXT,
        rule TEXT NOT NULL,
        why TEXT NOT NULL,
        preferences TEXT NOT NULL,
        from_mismatch INTEGER NOT NULL DEFAULT 0,
        dkim TEXT,
        decided_at INTEGER NOT NULL,
        PRIMARY KEY (qid, rcpt)
      );
    `,
  },
];

/** Applies every migration newer than the database, each in its own transaction. */
export function migrate(db: Database): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  // Versions are reserved per feature and may land out of order (4 after 7 and 9): apply
  // every one the database has not recorded, not only those above its highest.
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
  const current = Math.max(0, ...applied);
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
    })();
  }
  const latest = migrations[migrations.length - 1]!.version;
  if (current > latest) {
    throw Object.assign(new Error(`store schema version ${current} is newer than this mailbag (${latest})`), {
      code: 'ERR_MAILBAG_STORE_VERSION',
    });
  }
  return latest;
}
