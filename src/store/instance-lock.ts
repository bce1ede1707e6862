import Database from 'better-sqlite3';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Who holds a lock, as the holder wrote it next to the lock. */
export interface LockHolder {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** Another process holds the lock: `code` ERR_MAILBAG_LOCKED, and who, if it said. */
export class InstanceLockedError extends Error {
  readonly code = 'ERR_MAILBAG_LOCKED';
  constructor(
    message: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(message);
    this.name = 'InstanceLockedError';
  }
}

/**
 * An exclusive lock held for the life of a process: one gateway per spool and store.
 *
 * The lock is an SQLite EXCLUSIVE transaction on a small file of its own, that is an
 * fcntl lock the kernel drops when the process dies, however it dies. So there is no
 * stale lock to detect: no pid liveness check, which would misjudge a pid reused after
 * a crash or a pid from another container's namespace on a shared volume, and no race
 * between two starters removing a lock each thinks is stale. Who holds it is written to
 * `PATH.holder` (pid, host, start time) for the refusal message only; the lock never
 * depends on it.
 */
export class InstanceLock {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /** Takes the lock at `path`, or throws InstanceLockedError naming `what` and the holder. */
  static acquire(path: string, what: string): InstanceLock {
    const db = new Database(path, { timeout: 0 });
    try {
      db.pragma('busy_timeout = 0');
      db.pragma('journal_mode = MEMORY'); // no -journal file next to the lock: nothing is ever written
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      const holder = readHolder(path);
      const who = holder ? `pid ${holder.pid} on ${holder.hostname}, started ${holder.startedAt}` : 'holder unknown';
      throw new InstanceLockedError(`${what} is in use by another mailbag gateway (${who}); stop it first, or give this one its own spool.dir and store.path`, holder);
    }
    const holder: LockHolder = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
    try {
      const tmp = `${path}.holder.tmp`;
      writeFileSync(tmp, JSON.stringify(holder) + '\n');
      renameSync(tmp, `${path}.holder`);
    } catch {
      // informational only: a refused second gateway then says "holder unknown"
    }
    return new InstanceLock(db, path);
  }

  release(): void {
    if (!this.db.open) return;
    this.db.close();
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const v = JSON.parse(readFileSync(`${path}.holder`, 'utf8')) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && typeof v.hostname === 'string' && typeof v.startedAt === 'string') return v as LockHolder;
  } catch {
    // no holder file, or half-written: the lock itself still says it is taken
  }
  return undefined;
}
