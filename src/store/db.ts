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
 * Opens the SQLite store in WAL mode with synchronous=FULL: a committed transaction is
 * on disk before COMMIT returns, which the accept path relies on before it says 250.
 * WAL also lets the queue CLI read and write while the gateway runs.
 */
export function openDatabase(path: string, opts: OpenStoreOptions = {}): SqliteDatabase {
  if (!opts.mustExist) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { fileMustExist: !!opts.mustExist });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}
