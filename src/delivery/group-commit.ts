import { BUSY_TIMEOUT_MS, isLockBusy, LockRetry } from '../store/db.js';
import type { NewMessage } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import type { Spool } from './spool.js';

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

  constructor(
    private readonly store: Store,
    private readonly spool: Spool,
  ) {
    store.queue.durableWriter();
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
      for (;;) {
        try {
          this.store.queue.insertMessages(rows, { waitForLock: false });
          this.lock.done();
          break;
        } catch (err) {
          const retryInMs = isLockBusy(err) ? this.lock.busy() : undefined;
          if (retryInMs === undefined) {
            this.lock.done();
            throw err;
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
}
