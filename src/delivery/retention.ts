import type { Logger } from 'pino';
import type { PodPruneResult, Store } from '../store/store.js';

export interface RetentionOptions {
  store: Store;
  /** How long a finished message (recipients, attempts) is kept, ms. */
  retentionMs: number;
  logger: Logger;
  /** Messages removed per write transaction: each batch holds the write lock briefly. */
  batchSize?: number;
  /** How long PoD events (by their own time) and dead letters are kept, ms; default `retentionMs`. */
  podRetentionMs?: number;
  /** PoD events and dead letters removed per write transaction. */
  podBatchSize?: number;
  /** How often to prune, ms (default hourly). */
  intervalMs?: number;
  now?: () => number;
}

const HOUR_MS = 3_600_000;
/**
 * PoD events and dead letters per write transaction. An event costs about 0.1 ms to remove
 * (its counters, rule rows, links; `npm run bench -- pod-retention`): a batch of 250 holds
 * the lock well under the time the consumer's own batch of 500 inserts holds it.
 */
export const POD_PRUNE_BATCH = 250;

/**
 * Prunes finished messages after the retention period, and the upstream's PoD events and
 * dead letters after theirs (`store.podRetention`), on the queue's thread: at start
 * and then hourly, in small batches, each its own short IMMEDIATE transaction, yielding
 * to the event loop between batches so deliveries and the other writers get the lock.
 * Everything of a finished message stays for the whole period (correlation by qid
 * needs it); nothing of an unfinished message is ever removed.
 */
export class RetentionPruner {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;
  private readonly batchSize: number;
  private readonly podBatchSize: number;
  private readonly now: () => number;

  constructor(private readonly o: RetentionOptions) {
    // 200 messages of up to 100 recipients each stay well inside the SMTP thread's 500 ms lock wait
    this.batchSize = o.batchSize ?? 200;
    this.podBatchSize = o.podBatchSize ?? POD_PRUNE_BATCH;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.trigger();
    this.timer = setInterval(() => this.trigger(), this.o.intervalMs ?? HOUR_MS);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress to end (it stops between batches). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private trigger(): void {
    if (this.running) return;
    // runOnce never rejects (it logs), so the pass needs no handler beyond clearing the slot.
    this.running = this.runOnce().finally(() => {
      this.running = undefined;
    });
  }

  /**
   * One pass: finished messages, then PoD events and dead letters, each in batches until
   * nothing is older than its cutoff. Resolves to the number of messages removed.
   */
  async runOnce(now = this.now()): Promise<number> {
    const removed = await this.pruneMessages(now);
    if (!this.stopped) await this.prunePod(now);
    return removed;
  }

  private async pruneMessages(now: number): Promise<number> {
    const cutoff = now - this.o.retentionMs;
    let removed = 0;
    try {
      for (;;) {
        const n = this.o.store.pruneFinished(cutoff, this.batchSize);
        removed += n;
        if (n < this.batchSize || this.stopped) break;
        await new Promise<void>((r) => setImmediate(r));
      }
    } catch (err) {
      // The store is busy or closing: the next pass picks up where this one stopped.
      this.o.logger.warn({ err: { message: (err as Error).message }, removed }, 'store: pruning finished messages failed; retrying at the next pass');
      return removed;
    }
    if (removed) this.o.logger.info({ messages: removed, finishedBefore: new Date(cutoff).toISOString() }, 'store: pruned finished messages past retention');
    return removed;
  }

  /**
   * PoD events older than the PoD retention (by their `ts`) and dead letters received before
   * it, with the links only they supported. Checkpoints stay. Resolves to what went.
   */
  async prunePod(now = this.now()): Promise<PodPruneResult> {
    const cutoff = now - (this.o.podRetentionMs ?? this.o.retentionMs);
    const total: PodPruneResult = { messageEvents: 0, maillogEvents: 0, deadLetters: 0, links: 0, rows: 0 };
    try {
      for (;;) {
        const n = this.o.store.prunePodBefore(cutoff, this.podBatchSize);
        total.messageEvents += n.messageEvents;
        total.maillogEvents += n.maillogEvents;
        total.deadLetters += n.deadLetters;
        total.links += n.links;
        total.rows += n.rows;
        if (n.rows < this.podBatchSize || this.stopped) break;
        await new Promise<void>((r) => setImmediate(r));
      }
    } catch (err) {
      this.o.logger.warn({ err: { message: (err as Error).message }, removed: total.rows }, 'store: pruning PoD events failed; retrying at the next pass');
      return total;
    }
    if (total.rows) {
      const { messageEvents, maillogEvents, deadLetters, links } = total;
      this.o.logger.info({ messageEvents, maillogEvents, deadLetters, links, before: new Date(cutoff).toISOString() }, 'store: pruned PoD events past retention');
    }
    return total;
  }
}
