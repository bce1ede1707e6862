import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { migrate } from './migrations.js';

export type SqliteDatabase = Database.Database;

export interface OpenStoreOptions {
  /** Open without creating or migrating (the queue CLI against a live gateway's file). */
  mustExist?: boolean;
}

/**
 * Opens the SQLite store in WAL mode. The connection's default is synchronous=NORMAL
 * (a commit survives a process crash, not necessarily a power loss); the accept path
 * commits under synchronous=FULL (`durably`), so the row is on disk before the 250.
 * Because the WAL is sequential, a FULL commit also makes every earlier commit durable.
 * WAL also lets the queue CLI read and write while the gateway runs.
 */
export function openDatabase(path: string, opts: OpenStoreOptions = {}): SqliteDatabase {
  if (!opts.mustExist) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { fileMustExist: !!opts.mustExist });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/** Runs `fn` as one transaction committed under synchronous=FULL (fsync before return). */
export function durably<T>(db: SqliteDatabase, fn: () => T): T {
  db.pragma('synchronous = FULL');
  try {
    return db.transaction(fn)();
  } finally {
    db.pragma('synchronous = NORMAL');
  }
}
