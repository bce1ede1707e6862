import type { Logger } from 'pino';
import type { Config, NextHop } from '../config/schema.js';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { AttemptOutcome, AttemptRecord, ClaimedMessage, ClaimNext, FinishedMessage, MessageRow, NewMessage, RecipientRow, RecipientUpdate } from '../store/queue-store.js';
import { BUSY_TIMEOUT_MS, isLockBusy, LockRetry } from '../store/db.js';
import type { Store } from '../store/store.js';
import { correlationKeysFor } from './correlation.js';
import { queueDsn, relayParams, reportableRecipients, type RoundUpdate } from './dsn.js';
import { ERR_QUEUE_NOT_RUNNING } from './group-commit.js';
import { holdIfSpoolDamaged } from './hold.js';
import { QueueInternalError, untilAborted } from './internal-error.js';
import { replayResultJournal, type ResultJournalOptions } from './journal-replay.js';
import type { QidGenerator } from './qid.js';
import { RewriteCopies, type MessageCopy, type RewriteStep } from './rewrite/step.js';
import { RoundRecorder } from './round-recorder.js';
import { resolveRoute, type Route } from './routes.js';
import type { Spool } from './spool.js';
import { isHopBusy, type DeliveryResult, type HopBusy, type NextHopTransport, type RecipientResult } from './transports/transport.js';
import { RoundDeadline, type AttemptSignal } from './deadline.js';

export type { MessageCopy, RewriteStep, RewriteStepFactory } from './rewrite/step.js';
export { QueueInternalError } from './internal-error.js';

/**
 * Transports are aborted at the round's deadline (`queue.attemptTimeout`) and report
 * within this long. One that does not is logged and waited for with its recipients still
 * claimed (see `outlast`): it may still be delivering.
 */
const ABORT_GRACE_MS = 30_000;
/** A claim's lease outlives the round's deadline and abort grace; recording has the rest. */
const LEASE_MARGIN_MS = 60_000;

interface AttemptDone<R extends DeliveryResult | HopBusy = DeliveryResult> {
  nexthop: string;
  started: number;
  durationMs: number;
  result: R;
}

export interface QueueEvents {
  attempt?(a: { qid: string; nexthop: string; outcome: AttemptOutcome; durationMs: number; recipients: RecipientUpdate[] }): void;
  bounced?(count: number): void;
  /** The number of messages with an attempt round in flight changed. */
  inFlight?(count: number): void;
  /** The rewrite step met a language part naming another sender than the message (RFC 8255 section 10). */
  fromMismatch?(): void;
  /** An IMP bag went out to a peer MPM: its messages (one per recipient). */
  impBagShipped?(e: { peer: string; messages: number }): void;
  /** An IMP recipient's answer: yes, no, or none (no ACKNOWLEDGE came: connection lost, timeout). */
  impAcknowledged?(e: { peer: string; answer: 'yes' | 'no' | 'none' }): void;
  /** Replies passed back towards their originating MPM (`passed`), or left queued for a retry (`retried`). */
  impRepliesPassedBack?(e: { result: 'passed' | 'retried'; replies: number }): void;
}

/** What the rest of the gateway needs from a running queue, on this thread or another. */
export interface QueueHandle {
  /**
   * Something became due: look now instead of at the next poll. `accepted`: qids of
   * messages just committed, which the queue may claim without asking the store first.
   */
  kick(accepted?: readonly string[]): void;
  /** Messages with an attempt round in flight. */
  readonly inFlight: number;
  /** Stops picking work and waits (up to graceMs) for the attempts in flight. */
  stop(graceMs: number): Promise<void>;
}

export interface DeliveryQueueOptions {
  store: Store;
  spool: Spool;
  qids: QidGenerator;
  routes: readonly Route[];
  queue: Config['queue'];
  hostname: string;
  transports: readonly NextHopTransport[];
  logger: Logger;
  events?: QueueEvents;
  rewrite?: RewriteStep;
  /** How often the store is polled for work other processes made due (queue CLI). */
  pollMs?: number;
  random?: () => number;
  /** The results journal (default: `results.journal` in the spool directory, `queue.resultJournalBytes`). */
  resultJournal?: ResultJournalOptions;
  /** How long an aborted transport is waited for before the round goes on without it (tests shorten it). */
  abortGraceMs?: number;
}

/** At most this many handed-over qids wait in memory; the rest wait in the store only. */
const MAX_FRESH = 10_000;

/** Messages another thread accepted, waiting for the queue's connection to commit them (`commitAccepted`). */
interface AcceptedBatch {
  rows: readonly NewMessage[];
  resolve(): void;
  reject(err: Error): void;
}

function notRunning(): Error {
  return Object.assign(new Error('the delivery queue is not running'), { code: ERR_QUEUE_NOT_RUNNING });
}

/**
 * The delivery queue: picks due recipients from the store, groups them by next hop,
 * makes one attempt per group, records it, retries 4xx with exponential backoff and
 * jitter until the lifetime runs out, bounces 5xx and expired recipients to the
 * envelope sender, and removes the spool file once every recipient is final.
 */
export class DeliveryQueue implements QueueHandle {
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly inProgress = new Map<string, Promise<void>>();
  private readonly transports = new Map<string, NextHopTransport>();
  private readonly copies: RewriteCopies | undefined;
  private readonly pollMs: number;
  private readonly random: () => number;
  private ticking = false;
  private readonly recorder: RoundRecorder;
  private again = false;
  /** Freshly accepted qids handed over by `kick`, claimed before the store is scanned. */
  private fresh: string[] = [];
  private lastScan = 0;
  /** The store may hold due work that was not handed over: scan it at the next tick. */
  private scanNeeded = true;
  /**
   * The last scan filled every slot: more may be due in the store. Scanned again only
   * when the handed-over qids cannot fill the free slots (they are due too, and need no
   * query); the poll interval still bounds how long older due work waits.
   */
  private scanFilled = false;
  /** Claiming waits for the write lock from the event loop (see `LockRetry`), not in SQLite's busy handler. */
  private readonly claimLock: LockRetry;
  /** When `schedule` last asked the store for its next due time, and the answer. */
  private dueAskedAt = -Infinity;
  private storeDueAt: number | undefined;
  /** The earliest due time of this queue's own deferrals not yet taken by a timer's scan (`noteDue`). */
  private notedDueAt: number | undefined;
  /** The last claim found the write lock busy: the next tick in this many ms. */
  private claimRetryInMs: number | undefined;
  /** Spool files of finished messages being removed: a round's slot does not wait for them. */
  private readonly removals = new Set<Promise<void>>();
  /** Accepted messages to commit at the next tick (`commitAccepted`). */
  private inbox: AcceptedBatch[] = [];
  /** The accept path's clients wait for these commits: the SMTP connection's lock bound, not the queue's. */
  private readonly inboxLock = new LockRetry(BUSY_TIMEOUT_MS.smtp);

  constructor(private readonly o: DeliveryQueueOptions) {
    for (const t of o.transports) this.transports.set(t.kind, t);
    if (o.rewrite) this.copies = new RewriteCopies({ store: o.store, spool: o.spool, rewrite: o.rewrite, deadlineMs: o.queue.attemptTimeout });
    this.pollMs = o.pollMs ?? 1000;
    this.random = o.random ?? Math.random;
    this.claimLock = LockRetry.of(o.store.queue.db);
    this.recorder = new RoundRecorder(o.store, o.logger, this.o.queue.attemptTimeout + LEASE_MARGIN_MS);
    this.recorder.claimWith((recorded) => this.claimAfter(recorded));
    // the inbox waited for the recorder's transaction, which may not have taken it (a replay, a busy lock)
    this.recorder.onFlushed(() => {
      if (this.inbox.length) this.wake();
    });
  }

  /** Resumes everything the store holds: after a restart nothing is in flight. */
  start(): void {
    if (this.running) return;
    // claims and recordings do not wait for the lock: their connection, opened before anything runs
    this.o.store.queue.openNoWaitConnection();
    this.running = true;
    // results the last stop kept in the journal are recorded before anything is claimed
    this.recorder.start();
    const { journal, waits } = replayResultJournal({ ...this.o, journal: { bytes: this.o.queue.resultJournalBytes, ...this.o.resultJournal } }, this.recorder);
    this.recorder.useJournal(journal);
    for (const [qid, p] of waits) this.track(qid, p);
    const stale = this.o.store.queue.clearLeases();
    if (stale) this.o.logger.info({ recipients: stale }, 'queue: resumed recipients that were in flight at the last stop');
    this.kick();
  }

  /** Something became due (a message was accepted): look now instead of at the next poll. */
  kick(accepted?: readonly string[]): void {
    if (!this.running) return;
    if (!accepted?.length) this.scanNeeded = true;
    else {
      for (const qid of accepted) this.handOver(qid);
    }
    this.wake();
  }

  /**
   * Commits messages the accept path made durable on disk (spool files and directory
   * synced) on the queue's own connection, and claims those it has slots for in the same
   * transaction (`QueueStore.insertAndClaim`). Batches arriving in one event-loop turn share
   * the commit. Resolves once the commit is durable: the listener may say yes. Rejects
   * when it did not commit: code `ERR_QUEUE_NOT_RUNNING` (not tried: the queue stopped),
   * else the store's error (the lock stayed busy past the SMTP bound, the disk is full).
   */
  commitAccepted(rows: readonly NewMessage[]): Promise<void> {
    if (!this.running) return Promise.reject(notRunning());
    return new Promise((resolve, reject) => {
      this.inbox.push({ rows, resolve, reject });
      this.wake();
    });
  }

  /** `qid` waits to be claimed without a store scan, while the list has room; else the next scan finds it. */
  private handOver(qid: string): void {
    if (this.fresh.length < MAX_FRESH) this.fresh.push(qid);
    else this.scanNeeded = true;
  }

  /** Look again without a reason to scan the store (an attempt round finished). */
  private wake(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    if (this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.tick();
    });
  }

  get inFlight(): number {
    return this.inProgress.size;
  }

  /** Stops picking work and waits (up to graceMs) for the attempts in flight. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    for (const b of this.inbox.splice(0)) b.reject(notRunning());
    if (this.inProgress.size) {
      await Promise.race([
        Promise.allSettled([...this.inProgress.values()]),
        new Promise((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    await Promise.allSettled([...this.removals]);
    this.recorder.stop();
    await Promise.all([...this.transports.values()].map((t) => t.close()));
  }

  /** `qid` is in flight until `p` settles: not claimed meanwhile. */
  private track(qid: string, p: Promise<void>): void {
    this.inProgress.set(
      qid,
      p
        .catch((err: Error) => this.o.logger.error({ qid, err: { message: err.message, stack: err.stack } }, 'queue: attempt round failed'))
        .finally(() => {
          this.inProgress.delete(qid);
          this.o.events?.inFlight?.(this.inProgress.size);
          this.wake();
        }),
    );
    this.o.events?.inFlight?.(this.inProgress.size);
  }

  private tick(): void {
    if (!this.running) return;
    this.ticking = true;
    try {
      // rounds are recorded later in this turn: the inbox is committed in their transaction
      if (this.inbox.length && !this.recorder.flushesSoon) this.commitInbox();
      do {
        this.again = false;
        const free = this.o.queue.concurrency - this.inProgress.size;
        if (free <= 0) break;
        const now = Date.now();
        const qids = this.pick(now, free);
        if (qids.length === 0) break;
        let claimed: ClaimedMessage[];
        try {
          claimed = this.o.store.queue.claimMany(qids, now, this.leaseUntil(now), { waitForLock: false });
          this.claimLock.done();
        } catch (err) {
          const retryInMs = isLockBusy(err) ? this.claimLock.busy() : undefined;
          if (retryInMs === undefined) {
            this.claimLock.done();
            throw err;
          }
          // another connection holds the write lock: try again from the event loop, where
          // the attempts in flight keep running meanwhile; the picked qids first
          this.fresh.unshift(...qids);
          this.claimRetryInMs = retryInMs;
          break;
        }
        // some handed-over qids were already done or claimed: fill their slots from the rest
        if (claimed.length < qids.length && this.fresh.length) this.again = true;
        this.begin(claimed);
      } while (this.again);
    } catch (err) {
      this.scanNeeded = true; // handed-over qids may have been dropped: they are in the store
      this.o.logger.error({ err: { message: (err as Error).message } }, 'queue: scheduling failed');
    } finally {
      this.ticking = false;
    }
    this.schedule();
  }

  /**
   * The inbox's messages in one durable transaction, with the claims of as many of them
   * (after the handed-over qids waiting already) as there are free slots. Those left
   * over wait as handed-over qids. A busy write lock is tried again from the event loop
   * up to the SMTP bound, then the batches fail (their clients get 451).
   */
  private commitInbox(): void {
    const batch = this.inbox.splice(0);
    const rows = batch.flatMap((b) => b.rows);
    const now = Date.now();
    const free = this.o.queue.concurrency - this.inProgress.size;
    const waiting = free > 0 ? this.pick(now, free) : [];
    const fresh = rows.map((r) => r.qid);
    const take = Math.max(0, free - waiting.length);
    const qids = [...waiting, ...fresh.slice(0, take)];
    let claimed: ClaimedMessage[];
    try {
      claimed = this.o.store.queue.insertAndClaim(rows, qids.length ? { qids, until: this.leaseUntil(now) } : undefined, now, (err) => this.claimRefused(err), { waitForLock: false });
      this.inboxLock.done();
    } catch (err) {
      // nothing committed, nothing claimed: the picked qids wait again
      this.fresh.unshift(...waiting);
      const retryInMs = isLockBusy(err) ? this.inboxLock.busy() : undefined;
      if (retryInMs !== undefined) {
        this.inbox.unshift(...batch);
        this.claimRetryInMs = Math.min(this.claimRetryInMs ?? retryInMs, retryInMs);
        return;
      }
      this.inboxLock.done();
      for (const b of batch) b.reject(err as Error);
      return;
    }
    for (const b of batch) b.resolve();
    for (const qid of fresh.slice(take)) this.handOver(qid);
    this.begin(claimed);
  }

  private claimRefused(err: unknown): void {
    this.scanNeeded = true; // the messages are committed: the next scan finds them
    this.o.logger.error({ err: { message: (err as Error).message } }, 'queue: scheduling failed');
  }

  private leaseUntil(now: number): number {
    return now + this.o.queue.attemptTimeout + LEASE_MARGIN_MS;
  }

  /** Starts an attempt round for each claimed message; its slot is free when the round ends. */
  private begin(claimed: readonly ClaimedMessage[]): void {
    for (const { message, recipients } of claimed) {
      const qid = message.qid;
      this.track(qid, this.process(message, recipients));
    }
  }

  /**
   * The claims the recorder makes in the transaction that records the rounds of `recorded`:
   * their slots are free once it commits, so the next messages are claimed there, not in a
   * transaction of their own at the next tick. Whatever slots stay free, the tick fills.
   */
  private claimAfter(recorded: readonly string[]): ClaimNext {
    let committing: string[] = [];
    return {
      accepted: () => {
        if (!this.running || !this.inbox.length) return undefined;
        const batch = this.inbox.splice(0);
        const rows = batch.flatMap((b) => b.rows);
        committing = rows.map((r) => r.qid);
        return {
          rows,
          committed: () => {
            // those the claim did not take (no free slot) wait as handed-over qids
            for (const qid of committing) if (!this.inProgress.has(qid)) this.handOver(qid);
            for (const b of batch) b.resolve();
          },
          notCommitted: (err, whole) => {
            committing = [];
            if (whole) {
              // the rounds' transaction failed (a busy lock, a round the store refuses): the
              // tick's own transaction commits them (after the recorder's flush, `onFlushed`)
              this.inbox.unshift(...batch);
              return;
            }
            for (const b of batch) b.reject(err as Error);
          },
        };
      },
      pick: (now) => {
        if (!this.running) return undefined;
        const freed = new Set(recorded.filter((q) => this.inProgress.has(q))).size;
        const free = this.o.queue.concurrency - this.inProgress.size + freed;
        if (free <= 0) return undefined;
        // the recorded messages are still in progress: pick leaves them out; the messages
        // just inserted come after those waiting already
        const qids = this.pick(now, free);
        for (const qid of committing) if (qids.length < free) qids.push(qid);
        return qids.length ? { qids, until: this.leaseUntil(now) } : undefined;
      },
      claimed: (claims) => {
        // the store calls this after its commit: an error here must not fail the recording
        try {
          this.begin(claims);
        } catch (err) {
          this.scanNeeded = true;
          this.o.logger.error({ err: { message: (err as Error).message } }, 'queue: scheduling failed');
        }
      },
      notClaimed: (err, roundsRecorded) => {
        this.scanNeeded = true; // the picked qids are in the store: the next scan finds them
        if (roundsRecorded) this.o.logger.error({ err: { message: (err as Error).message } }, 'queue: scheduling failed');
      },
    };
  }

  /**
   * Up to `free` qids to claim. Freshly accepted messages are handed over by `kick` and
   * need no store query to be found. The store is scanned when it may hold due work
   * that was not handed over (at start, on the poll or retry timer, after an external
   * kick, while the last scan filled every slot) and at least once per poll interval,
   * so deferred retries that fell due are never starved by a steady stream of new
   * mail. A qid picked twice (handed over and also found by a scan) is harmless:
   * claimMany skips messages with nothing due.
   */
  private pick(now: number, free: number): string[] {
    const picked = new Set<string>();
    if (this.scanNeeded || (this.scanFilled && this.fresh.length < free) || now - this.lastScan >= this.pollMs) this.scan(now, free, picked);
    let taken = 0;
    while (picked.size < free && taken < this.fresh.length) {
      const q = this.fresh[taken++]!;
      if (!this.inProgress.has(q)) picked.add(q);
    }
    this.fresh.splice(0, taken);
    return [...picked];
  }

  private scan(now: number, free: number, picked: Set<string>): void {
    this.lastScan = now;
    this.scanNeeded = false;
    for (const q of this.o.store.queue.dueMessages(now, free + this.inProgress.size)) {
      if (picked.size >= free) break;
      if (!this.inProgress.has(q)) picked.add(q);
    }
    // every slot taken: more may be due, look again next time
    this.scanFilled = picked.size >= free;
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    if (this.claimRetryInMs !== undefined) {
      this.timer = setTimeout(() => this.tick(), this.claimRetryInMs);
      this.claimRetryInMs = undefined;
      return;
    }
    // Every slot busy: the next attempt to finish kicks the queue; no need to ask the store.
    if (this.inProgress.size >= this.o.queue.concurrency) return;
    const now = Date.now();
    // Asked once per poll interval, not per tick: under load the query walks past every
    // recipient in flight. Between two asks this queue's own deferrals lower it (`noteDue`);
    // other processes' changes (the queue CLI) wait for the poll, as they did.
    if (now - this.dueAskedAt >= this.pollMs) {
      try {
        this.storeDueAt = this.o.store.queue.nextDueAt(now);
        this.dueAskedAt = now;
      } catch {
        // store closing: the poll will find out
      }
    }
    const due = this.notedDueAt === undefined || (this.storeDueAt !== undefined && this.storeDueAt < this.notedDueAt) ? this.storeDueAt : this.notedDueAt;
    let wait = this.pollMs;
    // at least a few ms: never spin on a due row that cannot be claimed
    if (due !== undefined) wait = Math.max(5, Math.min(wait, due - now));
    this.timer = setTimeout(() => {
      this.scanNeeded = true;
      // this scan takes what is due now, or was claimed since: ask again after it
      this.dueAskedAt = -Infinity;
      if (this.notedDueAt !== undefined && this.notedDueAt <= Date.now()) this.notedDueAt = undefined;
      this.tick();
    }, wait);
    this.timer.unref?.();
  }

  /** A recipient of this queue's falls due at `at` (a deferral, a busy next hop): kept apart from the store's answer, which may predate its commit. */
  private noteDue(at: number): void {
    if (this.notedDueAt === undefined || at < this.notedDueAt) this.notedDueAt = at;
  }

  private backoff(attempts: number): number {
    const q = this.o.queue;
    const base = Math.min(q.retryMax, q.retryInitial * 2 ** Math.min(attempts, 30));
    // +-25% jitter so recipients deferred together do not retry in lock-step
    return Math.max(1, Math.min(q.retryMax, Math.round(base * (0.75 + this.random() * 0.5))));
  }

  /**
   * One attempt round for one message: every claimed recipient, grouped by next hop,
   * within the round's deadline. Every claimed recipient leaves the round with a
   * recorded state: an internal error counts as an attempt like a 4xx, a bounce that
   * cannot be queued keeps its recipients open, and a result the store cannot take
   * waits in memory (the round, and so its claim, stays in flight) until it can.
   */
  private async process(msg: MessageRow, rows: RecipientRow[]): Promise<void> {
    const started = Date.now();
    const byRcpt = new Map(rows.map((r) => [r.rcpt, r]));
    const leased = rows.map((r) => r.rcpt);
    const deadline = new RoundDeadline(this.o.queue.attemptTimeout);
    let all: AttemptDone<DeliveryResult | HopBusy>[];
    let keys: MessageKeysInput | undefined;
    try {
      // size and checksum as recorded at accept: a damaged file is held, never delivered
      const original = await this.o.spool.openVerified(msg);
      // recorded with this round's result, from the bytes just verified
      keys = correlationKeysFor(this.o, msg, rows, original.headerSection);
      const copies = this.copies ? await this.copies.copiesFor(msg, rows, original, deadline) : [{ recipients: leased, size: original.size, open: original.open }];
      all = await Promise.all(this.attempts(msg, copies, byRcpt, deadline));
    } catch (err) {
      if (holdIfSpoolDamaged(err, msg, this.o.store, this.o.logger)) return;
      all = [this.internalFailure(msg, leased, started, err as Error)];
    } finally {
      deadline.clear();
    }
    const busy = new Set(all.flatMap((d) => (isHopBusy(d.result) ? d.result.recipients : [])));
    const done = this.postponeBusy(msg.qid, all);
    const decided = done.map((d) => ({ ...d, updates: this.decide(msg, byRcpt, d.result) }));
    const answered = new Set(decided.flatMap((d) => d.updates.map((u) => u.rcpt)));
    const missing = leased.filter((rcpt) => !answered.has(rcpt) && !busy.has(rcpt));
    if (missing.length) {
      // a transport that left recipients out: without a state they would be due again at once
      const err = new QueueInternalError(`no delivery result for ${missing.join(', ')}`, 'ERR_MAILBAG_NO_RESULT');
      const d = this.internalFailure(msg, missing, started, err);
      decided.push({ ...d, updates: this.decide(msg, byRcpt, d.result) });
    }
    // The bounce is queued before the failures are recorded: a crash in between repeats
    // the attempt (and maybe the bounce), it never loses the bounce. A bounce that cannot
    // be queued keeps its recipients open: the next round fails them again and retries it.
    const reportedElsewhere = this.reportedElsewhere(msg, decided);
    const toReport = decided.flatMap((d) => d.updates.filter((u) => !(u.state === 'failed' && reportedElsewhere.has(u.rcpt))).map((u): RoundUpdate => ({ ...u, successDsn: d.result.successDsn })));
    const bounce = await this.bounce(msg, toReport, byRcpt);
    if (bounce) {
      const reopen = new Set(bounce.rcpts);
      for (const d of decided) d.updates = d.updates.map((u) => (u.state === 'failed' && reopen.has(u.rcpt) ? this.bounceLater(u, byRcpt, bounce.error) : u));
    }
    const records = decided.map((d) => this.toRecord(msg, d));
    for (const r of records) for (const u of r.recipients) if (u.state === 'deferred' && u.nextAttemptAt !== undefined) this.noteDue(u.nextAttemptAt);
    const finished = await this.recorder.record(msg.qid, records, rows, keys);
    for (const r of records) this.report(r);
    if (finished) this.removeSpoolFiles(finished);
  }

  /**
   * Removes a finished message's spool files (its result is committed) without holding
   * its slot: the rounds recorded together free their slots together, and the next
   * claim takes them in one transaction. `stop` waits for removals under way.
   */
  private removeSpoolFiles(finished: FinishedMessage): void {
    const removal = (async () => {
      for (const path of finished.spoolFiles) await this.o.spool.remove(path);
    })()
      .catch((err: Error) => this.o.logger.error({ qid: finished.qid, err: { message: err.message, stack: err.stack } }, 'queue: attempt round failed'))
      .finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }

  /** Failed recipients whose failure another MPM reports to the sender: logged, not bounced here. */
  private reportedElsewhere(msg: MessageRow, decided: readonly { result: DeliveryResult; updates: RecipientUpdate[] }[]): Set<string> {
    const by = new Map<string, string>();
    for (const d of decided) for (const r of d.result.recipients) if (r.reportedBy && r.outcome === 'failed') by.set(r.rcpt, r.reportedBy);
    const rcpts = decided.flatMap((d) => d.updates.filter((u) => u.state === 'failed' && by.has(u.rcpt)).map((u) => u.rcpt));
    if (rcpts.length) this.o.logger.info({ qid: msg.qid, rcpts, reportedBy: [...new Set(rcpts.map((r) => by.get(r)))] }, 'queue: no bounce for failures another MPM reports');
    return new Set(rcpts);
  }

  /** One attempt per copy and next hop; unroutable recipients fail at once. */
  private attempts(msg: MessageRow, copies: MessageCopy[], byRcpt: Map<string, RecipientRow>, signal: AttemptSignal): Promise<AttemptDone<DeliveryResult | HopBusy>>[] {
    const attempts: Promise<AttemptDone<DeliveryResult | HopBusy>>[] = [];
    for (const copy of copies) {
      const groups = new Map<string, { hop: NextHop; rcpts: string[] }>();
      const unroutable: string[] = [];
      for (const rcpt of copy.recipients) {
        const route = resolveRoute(this.o.routes, rcpt);
        if (!route) {
          unroutable.push(rcpt);
          continue;
        }
        const g = groups.get(route.nexthop.url) ?? { hop: route.nexthop, rcpts: [] };
        g.rcpts.push(rcpt);
        groups.set(route.nexthop.url, g);
      }
      if (unroutable.length) {
        const reply = '550 5.1.2 no route to the recipient domain';
        const result: DeliveryResult = { reply, recipients: unroutable.map((rcpt) => ({ rcpt, outcome: 'failed' as const, reply })) };
        attempts.push(Promise.resolve({ nexthop: 'none', started: Date.now(), durationMs: 0, result }));
      }
      for (const { hop, rcpts } of groups.values()) attempts.push(this.attempt(msg, copy, hop, rcpts, byRcpt, signal));
    }
    return attempts;
  }

  /** An internal error as one attempt record: every recipient deferred (or expired). */
  private internalFailure(msg: MessageRow, rcpts: string[], started: number, err: Error): AttemptDone {
    const code = (err as { code?: unknown }).code;
    this.o.logger.error({ qid: msg.qid, rcpts, err: { message: err.message, code, stack: err.stack } }, 'queue: internal error in an attempt round');
    const reply = `451 4.3.0 internal error: ${err.message}`.replace(/[\r\n]+/g, ' ');
    return { nexthop: 'internal', started, durationMs: Date.now() - started, result: { reply, recipients: rcpts.map((rcpt) => ({ rcpt, outcome: 'deferred', reply })) } };
  }

  private async attempt(
    msg: MessageRow,
    copy: MessageCopy,
    hop: NextHop,
    rcpts: string[],
    byRcpt: Map<string, RecipientRow>,
    signal: AttemptSignal,
  ): Promise<AttemptDone<DeliveryResult | HopBusy>> {
    const started = Date.now();
    const transport = this.transports.get(hop.kind);
    const deferAll = (reply: string): DeliveryResult => ({ reply, recipients: rcpts.map((rcpt) => ({ rcpt, outcome: 'deferred', reply })) });
    let result: DeliveryResult | HopBusy;
    if (!transport) {
      result = deferAll(`451 4.3.5 no transport for ${hop.kind} next hops`);
    } else {
      const delivery: Promise<DeliveryResult | HopBusy> = transport
        .deliver(hop, {
          qid: msg.qid,
          envelopeFrom: msg.envelope_from,
          recipients: rcpts,
          receivedAt: msg.received_at,
          size: copy.size,
          params: relayParams(msg, rcpts.map((r) => byRcpt.get(r))),
          openMessage: () => copy.open(),
          intendedName: (rcpt) => byRcpt.get(rcpt)?.delivered_as ?? undefined,
          recordIntent: (rcpt, name) => this.o.store.queue.setDeliveredAs(msg.qid, rcpt, name),
          signal,
        })
        .catch((err: Error) => deferAll(`451 4.3.0 ${err.message}`.replace(/[\r\n]+/g, ' ')));
      const expired = `451 4.4.7 attempt deadline of ${this.o.queue.attemptTimeout} ms passed`;
      result = await untilAborted(delivery, signal, () => new Error(expired)).catch(async () => {
        // Aborted: the transport stops and reports what it finished, within the grace.
        let grace: NodeJS.Timeout | undefined;
        const late = await Promise.race([delivery, new Promise<undefined>((r) => (grace = setTimeout(() => r(undefined), this.o.abortGraceMs ?? ABORT_GRACE_MS)))]);
        clearTimeout(grace);
        return late ?? this.outlast(msg.qid, hop.url, [...byRcpt.keys()], delivery, started);
      });
    }
    return { nexthop: hop.url, started, durationMs: Date.now() - started, result };
  }

  /**
   * A transport that ignored the deadline may still deliver: the round's recipients stay
   * claimed (their leases kept alive) until it returns, so no second attempt of them
   * starts meanwhile, and what it then reports is recorded.
   */
  private async outlast(qid: string, nexthop: string, claimed: string[], delivery: Promise<DeliveryResult | HopBusy>, started: number): Promise<DeliveryResult | HopBusy> {
    this.o.logger.error({ qid, nexthop }, 'queue: transport ignored the attempt deadline');
    const extend = () => {
      try {
        this.o.store.queue.extendLeases(qid, claimed, Date.now() + LEASE_MARGIN_MS);
      } catch {
        // the store refuses writes: the recipients stay in flight in this process all the same
      }
    };
    extend();
    const keepAlive = setInterval(extend, LEASE_MARGIN_MS / 2);
    keepAlive.unref();
    try {
      const result = await delivery;
      this.o.logger.warn({ qid, nexthop, durationMs: Date.now() - started }, 'queue: a transport that ignored the attempt deadline returned');
      return result;
    } finally {
      clearInterval(keepAlive);
    }
  }

  /**
   * A busy next hop (at queue.perNexthopConcurrency and not freeing a connection) was not
   * tried: its recipients give their slot back and are looked at again in about a second
   * (not an attempt: no record, no backoff), so one hanging next hop never holds the slots.
   */
  private postponeBusy(qid: string, done: AttemptDone<DeliveryResult | HopBusy>[]): AttemptDone[] {
    const tried: AttemptDone[] = [];
    for (const d of done) {
      const result = d.result;
      if (!isHopBusy(result)) {
        tried.push({ ...d, result });
        continue;
      }
      const wait = Math.max(1, Math.round(Math.min(this.o.queue.retryInitial, 1000) * (0.5 + this.random())));
      try {
        this.o.store.queue.postpone(qid, result.recipients, Date.now() + wait, result.reply);
        this.noteDue(Date.now() + wait);
      } catch {
        // the store refuses writes: a deferral, recorded with the round once the store takes it
        const deferred = result.recipients.map((rcpt) => ({ rcpt, outcome: 'deferred' as const, reply: result.reply }));
        tried.push({ ...d, result: { reply: result.reply, recipients: deferred } });
        continue;
      }
      this.o.logger.debug({ qid, nexthop: d.nexthop, rcpts: result.recipients, waitMs: wait }, 'queue: next hop busy, not attempted');
    }
    return tried;
  }

  /** Each recipient's new state: deferred ones get their next retry, or fail once expired. */
  private decide(msg: MessageRow, byRcpt: Map<string, RecipientRow>, result: DeliveryResult): RecipientUpdate[] {
    const now = Date.now();
    const expired = now >= msg.received_at + this.o.queue.lifetime;
    return result.recipients.map((r: RecipientResult): RecipientUpdate => {
      const row = byRcpt.get(r.rcpt);
      // carried into the attempt record: the retry generation, and the IMP hop (for trace)
      const kept = { ...(row ? { claimedGen: row.retry_gen } : {}), ...(r.imp ? { imp: r.imp } : {}) };
      if (r.outcome === 'deferred') {
        if (expired) {
          return { rcpt: r.rcpt, state: 'failed', reply: `expired after ${Math.round((now - msg.received_at) / 1000)}s in the queue; last reply: ${r.reply}`, ...kept };
        }
        return { rcpt: r.rcpt, state: 'deferred', reply: r.reply, nextAttemptAt: now + this.backoff(row?.attempts ?? 0), ...kept };
      }
      return { rcpt: r.rcpt, state: r.outcome, reply: r.reply, ...(r.deliveredAs ? { deliveredAs: r.deliveredAs } : {}), ...kept };
    });
  }

  /** A failed recipient whose bounce could not be queued: open again, retried with backoff. */
  private bounceLater(u: RecipientUpdate, byRcpt: Map<string, RecipientRow>, err: Error): RecipientUpdate {
    const reply = `${u.reply} (bounce not queued: ${err.message})`.replace(/[\r\n]+/g, ' ');
    const attempts = byRcpt.get(u.rcpt)?.attempts ?? 0;
    return { rcpt: u.rcpt, state: 'deferred', reply, nextAttemptAt: Date.now() + this.backoff(attempts), ...(u.claimedGen !== undefined ? { claimedGen: u.claimedGen } : {}), ...(u.imp ? { imp: u.imp } : {}) };
  }

  private toRecord(msg: MessageRow, d: AttemptDone & { updates: RecipientUpdate[] }): AttemptRecord {
    const states = new Set(d.updates.map((u) => u.state));
    const outcome: AttemptOutcome = states.size === 1 ? [...states][0]! : 'partial';
    return { qid: msg.qid, nexthop: d.nexthop, startedAt: d.started, durationMs: d.durationMs, reply: d.result.reply, outcome, recipients: d.updates };
  }

  /** One JSON log line per attempt, and the metrics. */
  private report(a: AttemptRecord): void {
    this.o.logger.info(
      { qid: a.qid, nexthop: a.nexthop, reply: a.reply, durationMs: a.durationMs, outcome: a.outcome, rcpts: a.recipients.map((u) => ({ rcpt: u.rcpt, state: u.state, reply: u.reply })) },
      'delivery attempt',
    );
    this.o.events?.attempt?.({ qid: a.qid, nexthop: a.nexthop, outcome: a.outcome, durationMs: a.durationMs, recipients: a.recipients });
  }

  /**
   * One DSN for this round's failed recipients (and successes NOTIFY=SUCCESS asked to
   * hear about), to the envelope sender; never to <>. What is reported follows the
   * recipients' DSN parameters (src/delivery/dsn.ts). When the DSN cannot be queued,
   * returns the error and the failed recipients it was to report.
   */
  private async bounce(msg: MessageRow, updates: RoundUpdate[], byRcpt: Map<string, RecipientRow>): Promise<{ error: Error; rcpts: string[] } | undefined> {
    const failed = updates.filter((u) => u.state === 'failed');
    const now = new Date();
    const { report, suppressed } = reportableRecipients(byRcpt, updates, now);
    if (suppressed.length) this.o.logger.info({ qid: msg.qid, rcpts: suppressed }, 'queue: no bounce for recipients whose NOTIFY leaves out FAILURE');
    if (report.length === 0 || msg.envelope_from === '') {
      if (report.length) this.o.logger.info({ qid: msg.qid, rcpts: report.map((f) => f.address) }, 'queue: not bouncing a message from the null sender');
      if (failed.length) this.o.events?.bounced?.(failed.length);
      return undefined;
    }
    try {
      const bounceQid = await queueDsn(this.o, msg, report, now);
      if (failed.length) this.o.events?.bounced?.(failed.length);
      this.o.logger.info({ qid: msg.qid, bounce: bounceQid, to: msg.envelope_from, rcpts: report.map((f) => f.address), actions: [...new Set(report.map((f) => f.action))] }, 'queue: bounce queued');
      this.kick();
      return undefined;
    } catch (err) {
      // the failed recipients stay open; a success report cannot be retried without delivering again
      const rcpts = report.filter((r) => r.action === 'failed').map((r) => r.address);
      this.o.logger.error(
        { qid: msg.qid, rcpts, lostSuccessReports: report.filter((r) => r.action !== 'failed').map((r) => r.address), err: { message: (err as Error).message } },
        'queue: could not queue the bounce; the recipients stay open and are tried again',
      );
      return { error: err as Error, rcpts };
    }
  }
}
