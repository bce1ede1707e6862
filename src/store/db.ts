import Database from 'better-sqlite3';
import { makeDirSync } from '../make-dir.js';
import { dirname } from 'node:path';
import { migrate } from './migrations.js';

export type SqliteDatabase = Database.Database;

/**
 * Who holds the connection. Each role waits for the write lock as long as it can afford:
 *
 * - `smtp`: the SMTP listener's thread. better-sqlite3 is synchronous, so while it waits
 *   for the lock (busy_timeout) every SMTP session of the process is frozen. Every other
 *   writer holds the lock for one short batch (milliseconds), so 500 ms is ample; past it
 *   the accept path answers 451 (the client retries) rather than freezing all sessions.
 *   It also leaves WAL checkpoints to the queue thread, so a checkpoint's page copy and
 *   fsync never run on this event loop.
 * - `queue`: the delivery queue's own thread: waiting delays deliveries only. 5 s.
 * - `gateway`: one connection doing both (the queue on the SMTP thread): the SMTP bound.
 * - `cli`: an operator's command. 5 s, then a clear error.
 */
export type ConnectionRole = 'smtp' | 'queue' | 'gateway' | 'cli';

export const BUSY_TIMEOUT_MS: Record<ConnectionRole, number> = { smtp: 500, queue: 5000, gateway: 500, cli: 5000 };

export interface OpenStoreOptions {
  /** Open without creating (the queue CLI against a live gateway's file). */
  mustExist?: boolean;
  /**
   * Apply pending migrations (default true). The queue CLI opens without migrating: it
   * must never change the schema under a running gateway of another version.
   */
  migrate?: boolean;
  /** Default `gateway`. */
  role?: ConnectionRole;
}

/**
 * Opens the SQLite store in WAL mode. The connection's default is synchronous=NORMAL
 * (a commit survives a process crash, not necessarily a power loss); the accept path
 * commits under synchronous=FULL (on its own connection, `openDurableWriter`), so the
 * row is on disk before the 250.
 * Because the WAL is sequential, a FULL commit also makes every earlier commit durable.
 * WAL also lets the queue CLI read and write while the gateway runs.
 */
export function openDatabase(path: string, opts: OpenStoreOptions = {}): SqliteDatabase {
  if (!opts.mustExist) makeDirSync(dirname(path));
  const role = opts.role ?? 'gateway';
  const db = new Database(path, { fileMustExist: !!opts.mustExist });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS[role]}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    if (role === 'smtp') db.pragma('wal_autocheckpoint = 0');
    if (opts.migrate !== false) migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * An assignment PRAGMA on a hot path: through `exec` (sqlite3_exec), about a third of the CPU
 * of `db.pragma()`, which builds a statement object and reads its result each call (about 1.5
 * against 5 µs here). SQLite applies it as it compiles it, so either way it is compiled per call.
 */
function setPragma(db: SqliteDatabase, assignment: string): void {
  db.exec(`PRAGMA ${assignment}`);
}

/**
 * Runs `fn` as one write transaction that takes the write lock at BEGIN (IMMEDIATE).
 * A deferred transaction that reads first takes a read snapshot; if another connection
 * commits before it writes, the write fails at once with SQLITE_BUSY_SNAPSHOT, which no
 * busy_timeout can wait out. BEGIN IMMEDIATE waits (busy_timeout) for the lock instead.
 * Every transaction that writes goes through here (or `durably`).
 */
export function writeTransaction<T>(db: SqliteDatabase, fn: () => T, opts: WriteTransactionOptions = {}): T {
  // nested: better-sqlite3's SAVEPOINT, so an error undoes the inner part only
  if (db.inTransaction) return db.transaction(fn).immediate();
  // The outermost transaction runs on statements prepared once per connection:
  // `db.transaction(fn)` builds four wrapper functions per call, on every hot path.
  const t = transactionStatements(db);
  if (opts.waitForLock === false) beginWithoutWaiting(db);
  else t.begin.run();
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('a write transaction cannot return a promise');
    t.commit.run();
    return result;
  } catch (err) {
    if (db.inTransaction) t.rollback.run();
    throw err;
  }
}

export interface WriteTransactionOptions {
  /**
   * false: when another connection holds the write lock, throw SQLITE_BUSY at once
   * (`isLockBusy`) instead of sleeping in SQLite's busy handler, which blocks the thread's
   * event loop; the caller tries again from its event loop (`LockRetry`).
   */
  waitForLock?: boolean;
}

/**
 * BEGIN IMMEDIATE with busy_timeout 0 for the BEGIN only; the connection's own timeout is
 * restored. The PRAGMAs are compiled per call: SQLite applies an assignment PRAGMA when it
 * compiles the statement, so a statement prepared once would not apply it on each run.
 */
function beginWithoutWaiting(db: SqliteDatabase): void {
  // a connection opened not to wait (`openNoWaitWriter`) needs no switch
  const timeout = busyTimeoutOf(db);
  // a busy BEGIN is expected and retried: its SqliteError needs no stack trace (most of its cost)
  const stackTraceLimit = Error.stackTraceLimit;
  if (timeout !== 0) setPragma(db, 'busy_timeout = 0');
  Error.stackTraceLimit = 0;
  try {
    transactionStatements(db).begin.run();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    if (timeout !== 0) setPragma(db, `busy_timeout = ${timeout}`);
  }
}

const busyTimeouts = new WeakMap<SqliteDatabase, number>();

/** The connection's busy_timeout as opened (`BUSY_TIMEOUT_MS` of its role). */
function busyTimeoutOf(db: SqliteDatabase): number {
  let ms = busyTimeouts.get(db);
  if (ms === undefined) busyTimeouts.set(db, (ms = Number(db.pragma('busy_timeout', { simple: true }))));
  return ms;
}

/**
 * Waiting for the write lock from the event loop: a caller whose transaction threw
 * SQLITE_BUSY (`waitForLock: false`) asks `busy()` when to try again (1 ms, doubling up to
 * 4 ms: another connection holds the lock for one short batch and its fsync). Past
 * `boundMs` since the first busy try, the same bound as the connection's busy_timeout,
 * `busy()` says give up, as SQLite's busy handler would have, with the event loop
 * running all along instead of frozen.
 */
export class LockRetry {
  private since: number | undefined;
  private tries = 0;

  constructor(
    private readonly boundMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The connection's own bound (its busy_timeout). */
  static of(db: SqliteDatabase): LockRetry {
    return new LockRetry(busyTimeoutOf(db));
  }

  /** The lock was busy: ms until the next try, or undefined once the bound has passed (then reset). */
  busy(): number | undefined {
    const now = this.now();
    this.since ??= now;
    if (now - this.since >= this.boundMs) {
      this.done();
      return undefined;
    }
    return Math.min(4, 2 ** this.tries++);
  }

  /** The transaction ran (or failed otherwise): the next busy try starts a new wait. */
  done(): void {
    this.since = undefined;
    this.tries = 0;
  }
}

const statements = new WeakMap<SqliteDatabase, { begin: Database.Statement; commit: Database.Statement; rollback: Database.Statement }>();

function transactionStatements(db: SqliteDatabase) {
  let t = statements.get(db);
  if (!t) statements.set(db, (t = { begin: db.prepare('BEGIN IMMEDIATE'), commit: db.prepare('COMMIT'), rollback: db.prepare('ROLLBACK') }));
  return t;
}

/**
 * `writeTransaction` committed under synchronous=FULL (fsync before return). The connection
 * is back at NORMAL when it returns: its other writes, a single statement included, do not
 * pay an fsync each.
 */
export function durably<T>(db: SqliteDatabase, fn: () => T, opts?: WriteTransactionOptions): T {
  setPragma(db, 'synchronous = FULL');
  try {
    return writeTransaction(db, fn, opts);
  } finally {
    setPragma(db, 'synchronous = NORMAL');
  }
}

/**
 * A second connection to the store for the writes that must be durable and must never
 * wait for the write lock on the event loop: the accept path's group commit. Its
 * settings are fixed once, at open: synchronous=FULL (every commit fsyncs the WAL before
 * it returns) and busy_timeout 0 (BEGIN IMMEDIATE throws SQLITE_BUSY at once while
 * another connection holds the write lock, instead of sleeping in SQLite's busy handler,
 * which blocks the thread's event loop; the caller retries from its event loop,
 * `isLockBusy`). No WAL checkpoints either: they are the other connections' work.
 *
 * Setting these around each commit on a shared connection costs four PRAGMA statements
 * compiled per commit, and they cannot be prepared once: SQLite applies an assignment
 * PRAGMA when it compiles it, not when it runs. Use it through `writeTransaction`.
 */
export function openDurableWriter(path: string): SqliteDatabase {
  return openSecondConnection(path, ['synchronous = FULL', 'foreign_keys = ON', 'wal_autocheckpoint = 0']);
}

/**
 * A second connection to the store for the transactions that must never wait for the
 * write lock on the event loop (the delivery queue's claims and round recordings):
 * busy_timeout 0, so BEGIN IMMEDIATE throws SQLITE_BUSY at once while another connection
 * holds the write lock, and the caller retries from its event loop (`LockRetry`).
 * Otherwise set like the store's own connection (synchronous=NORMAL, WAL checkpoints).
 * Switching one shared connection's busy_timeout around each BEGIN costs two PRAGMA
 * statements compiled per transaction (see `beginWithoutWaiting`).
 */
export function openNoWaitWriter(path: string): SqliteDatabase {
  return openSecondConnection(path, ['synchronous = NORMAL', 'foreign_keys = ON']);
}

/**
 * Another connection to a store some connection has already opened (and migrated) in WAL
 * mode, with busy_timeout 0 and `pragmas` set once; closed again if any of that fails.
 */
function openSecondConnection(path: string, pragmas: readonly string[]): SqliteDatabase {
  const db = new Database(path, { fileMustExist: true, timeout: 0 });
  try {
    if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') {
      throw Object.assign(new Error(`store ${path} is not in WAL mode`), { code: 'ERR_MAILBAG_STORE_JOURNAL' });
    }
    for (const p of pragmas) db.pragma(p);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** The write lock was taken by another connection (a `openDurableWriter` connection's BEGIN). */
export function isLockBusy(err: unknown): boolean {
  return (err as { code?: unknown }).code === 'SQLITE_BUSY';
}
