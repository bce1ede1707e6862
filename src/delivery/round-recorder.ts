import type { Logger } from 'pino';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { AttemptRecord, ClaimNext, FinishedMessage } from '../store/queue-store.js';
import { isLockBusy, LockRetry } from '../store/db.js';
import type { Store } from '../store/store.js';
import type { ClaimedRecipient, JournalledRound, ResultJournal } from './result-journal.js';
import { logKeysNotRecorded } from './correlation.js';

/** Recording a round the store refused is retried after this, doubling up to the max. */
const RECORD_RETRY_INITIAL_MS = 100;
const RECORD_RETRY_MAX_MS = 10_000;

interface PendingRound {
  qid: string;
  attempts: AttemptRecord[];
  claimed: ClaimedRecipient[];
  leased: string[];
  /** From the results journal: it may have been recorded before, so it is replayed (idempotent). */
  replay: boolean;
  /** The message's correlation keys, recorded with the round (its first one). */
  keys?: MessageKeysInput | undefined;
  resolve(m: FinishedMessage | undefined): void;
}

/**
 * Batches the attempt rounds that finish in the same event-loop turn into one store
 * transaction: under load, one WAL commit covers many messages. A round the store
 * cannot take (disk full) is kept in memory and recorded again with backoff, its
 * leases extended meanwhile: its recipients are not claimed again and not delivered twice.
 * At a stop, rounds the store still refuses go to the results journal (replayed at the
 * next start); only those that do not fit there are repeated after the restart.
 */
export class RoundRecorder {
  private pending: PendingRound[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private failures = 0;
  private stopped = false;
  /** The journal holds rounds written while the store refused them (zeroed once it takes them). */
  private journalled = false;
  /** Rounds were added or recorded since the journal was last written. */
  private journalDirty = false;
  /** Waiting for the write lock from the event loop, not in SQLite's busy handler: in-flight deliveries keep running. */
  private readonly lock: LockRetry;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly leaseMs: number,
  ) {
    this.lock = LockRetry.of(store.queue.db);
  }

  /** Where a stop puts the results the store still refuses (none: they are logged as lost). */
  private journal: ResultJournal | undefined;

  /** The queue's next claims, made in the transaction that records rounds (their slots are free then). */
  private next: ((recorded: readonly string[]) => ClaimNext) | undefined;

  /** `next(qids)`: what to claim once the rounds of `qids` are recorded, in the same transaction. */
  claimWith(next: ((recorded: readonly string[]) => ClaimNext) | undefined): void {
    this.next = next;
  }

  /** Called at the end of every flush (the queue's inbox may wait for it: `flushesSoon`). */
  private flushed: (() => void) | undefined;

  onFlushed(fn: (() => void) | undefined): void {
    this.flushed = fn;
  }

  /** A flush runs later in this event-loop turn (not a retry waiting on a timer). */
  get flushesSoon(): boolean {
    return this.timer !== undefined && this.immediate;
  }

  private immediate = false;

  /** Takes results again (after a stop of the same queue). */
  start(): void {
    this.stopped = false;
  }

  /** Where the next stop puts the results the store still refuses. */
  useJournal(journal: ResultJournal | undefined): void {
    this.journal = journal;
  }

  /** `claimed`: the round's recipients with their attempt counts at the claim. */
  record(qid: string, attempts: AttemptRecord[], claimed: readonly ClaimedRecipient[], keys?: MessageKeysInput): Promise<FinishedMessage | undefined> {
    return this.add({ qid, attempts, claimed: claimed.map((c) => ({ rcpt: c.rcpt, attempts: c.attempts })), ...(keys ? { keys } : {}) }, false);
  }

  /** A round from the results journal that the store refused at start: recorded like the others, idempotently. */
  replay(round: JournalledRound): Promise<FinishedMessage | undefined> {
    return this.add(round, true);
  }

  private add(round: JournalledRound, replay: boolean): Promise<FinishedMessage | undefined> {
    if (this.stopped) {
      // A round that outlasted the stop's grace: one try, no retries on a store that is
      // closing (the journal is already written).
      const pending = { ...round, leased: round.claimed.map((c) => c.rcpt), replay, resolve: () => undefined };
      try {
        return Promise.resolve(this.write([pending])[0]);
      } catch {
        this.logger.error({ qid: round.qid, attempts: round.attempts }, 'queue: stopping with a delivery result the store never took; the attempt will be repeated');
        return Promise.resolve(undefined);
      }
    }
    return new Promise((resolve) => {
      this.pending.push({ ...round, leased: round.claimed.map((c) => c.rcpt), replay, resolve });
      this.journalDirty = true;
      if (!this.timer) {
        this.timer = setImmediate(() => this.flush());
        this.immediate = true;
      }
    });
  }

  /**
   * Results still unrecorded at stop go to the results journal; those it cannot take
   * (full, or no journal) are logged: they are what a restart will repeat.
   */
  stop(): void {
    this.stopped = true;
    const journal = this.journal;
    this.journal = undefined;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.timer = undefined;
    const pending = this.pending;
    this.pending = [];
    let lost = pending;
    if (journal) {
      const rounds = pending.map(({ qid, attempts, claimed, keys }) => ({ qid, attempts, claimed, ...(keys ? { keys } : {}) }));
      try {
        const { written, left } = journal.write(rounds);
        if (written) this.logger.warn({ rounds: written, qids: rounds.slice(0, written).map((r) => r.qid), journal: journal.path }, 'queue: stopping with delivery results the store never took; kept in the results journal for the next start');
        if (left.length) {
          this.logger.error(
            { journalled: written, notJournalled: left.length, journalBytes: journal.bytes, journal: journal.path },
            'queue: the results journal is full; the results that did not fit will be repeated after the restart',
          );
        }
        lost = pending.slice(written);
      } catch (err) {
        this.logger.error({ rounds: rounds.length, journal: journal.path, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, 'queue: could not write the results journal');
      }
    }
    for (const p of lost) {
      this.logger.error({ qid: p.qid, attempts: p.attempts }, 'queue: stopping with a delivery result the store never took; the attempt will be repeated');
    }
    journal?.close();
  }

  /** Stopped: one try that waits for the lock in SQLite's busy handler (nothing else runs any more). */
  private write(batch: PendingRound[]): (FinishedMessage | undefined)[] {
    const opts = { waitForLock: this.stopped };
    if (batch.some((b) => b.replay)) return this.store.queue.replayRounds(batch, undefined, this.keysFailed, opts).finished;
    // no claims while stopping: the queue takes no new work
    const next = this.stopped ? undefined : this.next?.(batch.map((b) => b.qid));
    return this.store.queue.recordRounds(batch, undefined, this.keysFailed, next, opts);
  }

  /**
   * The rounds the store refuses, written to the results journal as soon as it refuses
   * them (the file's blocks were allocated at start, so a full disk takes the write): a
   * crash or a power loss before the stop then loses no delivery result, and the next
   * start records them instead of delivering again. Rewritten when the rounds waiting
   * change; zeroed once the store has taken them all.
   */
  private keepInJournal(): void {
    const journal = this.journal;
    if (!journal || !this.journalDirty) return;
    this.journalDirty = false;
    const rounds = this.pending.map(({ qid, attempts, claimed, keys }) => ({ qid, attempts, claimed, ...(keys ? { keys } : {}) }));
    try {
      journal.write(rounds);
      this.journalled = true;
    } catch (err) {
      this.logger.error({ rounds: rounds.length, journal: journal.path, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, 'queue: could not write the results journal');
    }
  }

  private clearJournal(): void {
    if (!this.journalled || !this.journal) return;
    try {
      this.journal.clear();
      this.journalled = false;
    } catch (err) {
      // the records are replayed idempotently at the next start: nothing is doubled
      this.logger.error({ journal: this.journal.path, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, 'queue: could not write the results journal');
    }
  }

  private readonly keysFailed = (qids: string[], err: unknown): void => logKeysNotRecorded(this.logger, qids, err);

  private flush(): void {
    try {
      this.flushBatch();
    } finally {
      this.flushed?.();
    }
  }

  private flushBatch(): void {
    this.timer = undefined;
    this.immediate = false;
    const batch = this.pending.splice(0);
    let lastError: Error | undefined;
    try {
      const done = this.write(batch);
      this.lock.done();
      batch.forEach((b, i) => b.resolve(done[i]));
    } catch (err) {
      const retryInMs = isLockBusy(err) ? this.lock.busy() : undefined;
      if (retryInMs !== undefined) {
        // the batch first, in order; rounds finishing meanwhile join it
        this.pending.unshift(...batch);
        this.timer = setTimeout(() => this.flush(), retryInMs);
        return;
      }
      // past the lock bound (as SQLite's busy handler would have given up) or another error
      this.lock.done();
      lastError = err as Error;
      if (batch.length === 1) this.pending.push(...batch);
      // one by one, so one round the store refuses does not hold the others back
      else
        for (const b of batch) {
          try {
            b.resolve(this.write([b])[0]);
            this.journalDirty = true;
          } catch (e) {
            lastError = e as Error;
            this.pending.push(b);
          }
        }
    }
    if (!this.pending.length) {
      if (this.failures) this.logger.warn({ retries: this.failures }, 'queue: the store takes delivery results again');
      this.failures = 0;
      this.clearJournal();
      return;
    }
    this.keepInJournal();
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
