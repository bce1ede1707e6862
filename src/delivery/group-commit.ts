import { BUSY_TIMEOUT_MS, isLockBusy, LockRetry } from '../store/db.js';
import type { NewMessage } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import type { Spool } from './spool.js';

/**
 * Commits accepted messages somewhere else (the delivery queue's connection, on its
 * thread): resolves once they are durable. Returns undefined when it cannot take them
 * now. Rejects with code `ERR_MAILBAG_QUEUE_NOT_RUNNING` when it did not try, with
 * `ERR_MAILBAG_COMMIT_UNKNOWN` when it cannot tell whether they were committed (its
 * thread died): the group commit then commits them itself, idempotently. Any other
 * rejection means not committed.
 */
export type CommitHandOff = (rows: readonly NewMessage[]) => Promise<void> | undefined;

/** The hand-off did not try: the queue was not running. */
export const ERR_QUEUE_NOT_RUNNING = 'ERR_MAILBAG_QUEUE_NOT_RUNNING';
/** The hand-off cannot tell whether it committed: the queue's thread died meanwhile. */
export const ERR_COMMIT_UNKNOWN = 'ERR_MAILBAG_COMMIT_UNKNOWN';

/**
 * The commit failed after a hand-off that may have committed the message: its spool file
 * is kept (delivered if the store has its row; set aside at the next start if not).
 */
export class CommitOutcomeUnknownError extends Error {
  readonly code = ERR_COMMIT_UNKNOWN;

  constructor(override readonly cause: Error) {
    super(`${cause.message} (after a hand-off that may have committed the message)`);
    this.name = 'CommitOutcomeUnknownError';
  }
}

interface Pending {
  message: NewMessage;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Group commit for the accept path. Each session fsyncs and renames its own spool
 * file; the spool directory fsync and the synchronous=FULL SQLite commit are shared by
 * every message that became ready meanwhile. One fsync pair then covers many 250s
 * instead of one, and the main thread blocks on SQLite's fsync once per batch.
 *
 * While another connection (the queue thread, the CLI) holds the store's write lock, the
 * commit does not sleep in SQLite's busy handler, which would freeze every session of
 * the thread: it tries again from the event loop (`LockRetry`: 1, 2, then every 4 ms), up to the
 * SMTP connection's lock bound, and only then fails the batch (the clients get 451).
 */
export class GroupCommitter {
  private pending: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  /** How long a batch waits for the store's write lock before its clients get 451: the SMTP connection's bound. */
  private readonly lock = new LockRetry(BUSY_TIMEOUT_MS.smtp);
  /** Where batches are committed while it takes them (`handOffTo`). */
  private handOff: CommitHandOff | undefined;

  constructor(
    private readonly store: Store,
    private readonly spool: Spool,
  ) {
    store.queue.durableWriter();
  }

  /** Batches are committed by `handOff` while it takes them, else here (undefined: always here). */
  handOffTo(handOff: CommitHandOff | undefined): void {
    this.handOff = handOff;
  }

  /** Resolves once the message's spool rename and its rows are durable. */
  commit(message: NewMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ message, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.flushing = true;
    const batch = this.pending.splice(0);
    try {
      await this.spool.syncDir();
      const rows = batch.map((p) => p.message);
      const handedOff = await this.commitElsewhere(rows);
      if (handedOff === 'committed') {
        for (const p of batch) p.resolve();
        return;
      }
      for (;;) {
        try {
          this.store.queue.insertMessages(rows, { waitForLock: false, ifNew: handedOff === 'unknown' });
          this.lock.done();
          break;
        } catch (err) {
          const retryInMs = isLockBusy(err) ? this.lock.busy() : undefined;
          if (retryInMs === undefined) {
            this.lock.done();
            throw handedOff === 'unknown' ? new CommitOutcomeUnknownError(err as Error) : err;
          }
          // messages arriving meanwhile wait for the next batch: their renames are not yet synced
          await new Promise((r) => setTimeout(r, retryInMs));
        }
      }
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
    } finally {
      this.flushing = false;
      if (this.pending.length) this.schedule();
    }
  }

  /** 'committed' by the hand-off; 'no' (not tried: commit here) or 'unknown' (commit here, idempotently); throws when it failed. */
  private async commitElsewhere(rows: readonly NewMessage[]): Promise<'committed' | 'no' | 'unknown'> {
    const handedOff = this.handOff?.(rows);
    if (!handedOff) return 'no';
    try {
      await handedOff;
      return 'committed';
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === ERR_QUEUE_NOT_RUNNING) return 'no';
      if (code === ERR_COMMIT_UNKNOWN) return 'unknown';
      throw err;
    }
  }
}
