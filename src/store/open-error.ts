import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** The store cannot be opened; the message names the file and what to do. */
export class StoreOpenError extends Error {
  readonly code = 'ERR_MAILBAG_STORE_OPEN';
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
    this.name = 'StoreOpenError';
  }
}

const writable = (p: string): boolean => {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Turns an error from opening the SQLite store (creating its directory, opening the
 * file, switching to WAL) into one line that names the file and says what to do.
 * Errors that are not about opening it (a newer schema) pass through unchanged.
 */
export function explainOpenError(path: string, err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return err;
  const file = resolve(path);
  const dir = dirname(file);
  const detail = `${code}: ${(err as Error).message}`;
  const fail = (what: string) => new StoreOpenError(`cannot open the store ${file}: ${what}`, err);
  if (code === 'ERR_MAILBAG_STORE_VERSION') return err;
  if ((err as { syscall?: string }).syscall === 'mkdir') {
    return fail(`its directory ${dir} does not exist and cannot be created (${code}): create it, writable by the gateway's user, or set store.path to a writable location`);
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return fail(`it is not a mailbag store (${detail}): set store.path to the gateway's store, or move this file away to start with an empty store`);
  }
  if (!code.startsWith('SQLITE_')) return fail(`${detail}`);
  const st = statSync(file, { throwIfNoEntry: false });
  if (st?.isDirectory()) return fail('it is a directory: store.path names the database file');
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    return fail(`its directory ${dir} does not exist: create it, or set store.path to a file in an existing directory`);
  }
  if (st && !writable(file)) return fail(`the file is not writable (${detail}): give the gateway's user write access to it`);
  if (!writable(dir)) {
    return fail(`its directory ${dir} is not writable (${detail}): SQLite creates ${file}-wal and ${file}-shm there; give the gateway's user write access`);
  }
  return fail(`${detail}: check that ${dir} and the file are writable by the gateway's user and on a local file system`);
}
