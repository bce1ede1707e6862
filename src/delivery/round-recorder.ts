import type { Logger } from 'pino';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { AttemptRecord, MessageRow } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { logKeysNotRecorded } from './correlation.js';

/** Recording a round the store refused is retried after this, doubling up to the max. */
const RECORD_RETRY_INITIAL_MS = 100;
const RECORD_RETRY_MAX_MS = 10_000;

interface PendingRound {
  qid: string;
  attempts: AttemptRecord[];
  leased: string[];
  /** The message's correlation keys, recorded with the round (its first one). */
  keys?: MessageKeysInput | undefined;
  resolve(m: MessageRow | undefined): void;
}

/**
 * Batches the attempt rounds that finish in the same event-loop turn into one store
 * transaction: under load, one WAL commit covers many messages. A round the store
 * cannot take (disk full) is kept in memory and recorded again with backoff, its
 * leases extended meanwhile: its recipients are not claimed again and not delivered twice.
 */
export class RoundRecorder {
  private pending: PendingRound[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private failures = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly leaseMs: number,
  ) {}

  record(qid: string, attempts: AttemptRecord[], leased: string[], keys?: MessageKeysInput): Promise<MessageRow | undefined> {
    return new Promise((resolve) => {
      this.pending.push({ qid, attempts, leased, keys, resolve });
      if (!this.timer) this.timer = setImmediate(() => this.flush());
    });
  }

  /** Results still unrecorded at stop are logged: they are what a restart will repeat. */
  stop(): void {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.timer = undefined;
    for (const p of this.pending) {
      this.logger.error({ qid: p.qid, attempts: p.attempts }, 'queue: stopping with a delivery result the store never took; the attempt will be repeated');
    }
    this.pending = [];
  }

  private readonly keysFailed = (qids: string[], err: unknown): void => logKeysNotRecorded(this.logger, qids, err);

  private flush(): void {
    this.timer = undefined;
    const batch = this.pending.splice(0);
    let lastError: Error | undefined;
    try {
      const done = this.store.queue.recordRounds(batch, undefined, this.keysFailed);
      batch.forEach((b, i) => b.resolve(done[i]));
    } catch (err) {
      lastError = err as Error;
      if (batch.length === 1) this.pending.push(...batch);
      // one by one, so one round the store refuses does not hold the others back
      else
        for (const b of batch) {
          try {
            b.resolve(this.store.queue.recordRounds([b], undefined, this.keysFailed)[0]);
          } catch (e) {
            lastError = e as Error;
            this.pending.push(b);
          }
        }
    }
    if (!this.pending.length) {
      if (this.failures) this.logger.warn({ retries: this.failures }, 'queue: the store takes delivery results again');
      this.failures = 0;
      return;
    }
    const delay = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_INITIAL_MS * 2 ** Math.min(this.failures++, 20));
    this.logger.error(
      { rounds: this.pending.length, retryInMs: delay, err: { message: lastError?.message } },
      'queue: could not record delivery results; keeping them in memory and retrying',
    );
    try {
      for (const p of this.pending) this.store.queue.extendLeases(p.qid, p.leased, Date.now() + delay + this.leaseMs);
    } catch {
      // the store refuses writes: the round stays in flight in this process all the same
    }
    this.timer = setTimeout(() => this.flush(), delay);
  }
}
