// The delivery queue on its own thread. Accepting (smtp-server, spool, the durable
// commit) and delivering (routing, next-hop clients, attempt records) each cost about
// a millisecond of CPU per message; on one thread they add up, on two they overlap.
// The queue thread has its own SQLite connection to the same WAL store.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { QueueEvents, QueueHandle } from '../delivery/queue.js';
import { workerSource } from './worker-source.js';
import { ERR_COMMIT_UNKNOWN } from '../delivery/group-commit.js';
import type { NewMessage } from '../store/queue-store.js';

export interface QueueThreadData {
  config: Config;
  pollMs?: number;
}

export type ToQueueThread = { type: 'kick'; accepted: string[] } | { type: 'commit'; id: number; rows: readonly NewMessage[] } | { type: 'stop'; graceMs: number };
export type FromQueueThread =
  | { type: 'ready' }
  | { type: 'committed'; id: number; error?: { message: string; code?: string } }
  | { type: 'stopped' }
  | { type: 'inflight'; count: number }
  | { type: 'attempt'; attempt: Parameters<NonNullable<QueueEvents['attempt']>>[0] }
  | { type: 'bounced'; count: number }
  | { type: 'fromMismatch' }
  | { type: 'impBagShipped'; peer: string; messages: number }
  | { type: 'impAcknowledged'; peer: string; answer: 'yes' | 'no' | 'none' }
  | { type: 'impRepliesPassedBack'; result: 'passed' | 'retried'; replies: number }
  | { type: 'batch'; messages: FromQueueThread[] };

/** How long to wait before replacing a queue thread that died. */
const RESTART_DELAY_MS = 1000;

/**
 * A commit the queue thread has not answered within this long (its event loop held by a
 * long rewrite, say) is made by the accept path itself, idempotently: a stalled queue
 * thread delays a 250 by this much at most.
 */
export const HAND_OFF_TIMEOUT_MS = 1000;

/** Qids committed by the queue thread and not yet kicked: at most this many are remembered. */
const MAX_HANDED_OVER = 10_000;

interface CommitInFlight {
  resolve(): void;
  reject(err: Error): void;
  qids: string[];
  timer: NodeJS.Timeout;
}

function outcomeUnknown(why: string): Error {
  return Object.assign(new Error(why), { code: ERR_COMMIT_UNKNOWN });
}

/**
 * The main thread's handle on the queue thread. A thread that dies (an uncaught error)
 * is replaced after a second: its leases are stale, so the new one resumes everything.
 */
export class QueueThread implements QueueHandle {
  private inflight = 0;
  private kickPending = false;
  private accepted: string[] = [];
  private stopping: Promise<void> | undefined;
  private worker!: Worker;
  /** The current thread answers commits (`commitAccepted`): it is ready and not stopping. */
  private takesCommits = false;
  private nextCommitId = 0;
  private readonly commits = new Map<number, CommitInFlight>();
  /** How long a commit waits for the queue thread's answer (`HAND_OFF_TIMEOUT_MS`). */
  handOffTimeoutMs = HAND_OFF_TIMEOUT_MS;
  /** Committed by the queue thread, which knows them: their kick is not sent. */
  private readonly handedOver = new Set<string>();
  /** Set while the current thread is dead (reported by /healthz). */
  failed: Error | undefined;
  restarts = 0;

  private constructor(
    private readonly data: QueueThreadData,
    private readonly events: QueueEvents,
    private readonly logger: Logger,
  ) {}

  static async start(data: QueueThreadData, events: QueueEvents, logger: Logger): Promise<QueueThread> {
    const thread = new QueueThread(data, events, logger);
    await thread.spawn();
    return thread;
  }

  private spawn(): Promise<void> {
    const { source, eval: isEval } = workerSource(import.meta.url, 'queue-worker');
    const worker = new Worker(source, { eval: isEval, workerData: this.data });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      const handle = (m: FromQueueThread): void => {
        switch (m.type) {
          case 'ready':
            ready = true;
            this.failed = undefined;
            this.takesCommits = !this.stopping;
            resolve();
            break;
          case 'committed':
            this.committed(m);
            break;
          case 'inflight':
            this.inflight = m.count;
            break;
          case 'attempt':
            this.events.attempt?.(m.attempt);
            break;
          case 'bounced':
            this.events.bounced?.(m.count);
            break;
          case 'fromMismatch':
            this.events.fromMismatch?.();
            break;
          case 'impBagShipped':
            this.events.impBagShipped?.({ peer: m.peer, messages: m.messages });
            break;
          case 'impAcknowledged':
            this.events.impAcknowledged?.({ peer: m.peer, answer: m.answer });
            break;
          case 'impRepliesPassedBack':
            this.events.impRepliesPassedBack?.({ result: m.result, replies: m.replies });
            break;
          case 'batch':
            for (const inner of m.messages) handle(inner);
            break;
          case 'stopped':
            break;
        }
      };
      worker.on('message', handle);
      worker.on('error', (err) => {
        this.failed = err;
        this.logger.error({ err: { message: err.message, stack: err.stack } }, 'queue thread failed');
      });
      worker.on('exit', (code) => {
        this.takesCommits = false;
        // the thread may have committed them or not: the accept path commits them again, idempotently
        for (const [id, c] of this.commits) this.settle(id, c, outcomeUnknown(`queue thread exited with code ${code}`));
        if (!ready) return reject(this.failed ?? new Error(`queue thread exited with code ${code} before it was ready`));
        if (this.stopping) return;
        this.failed ??= new Error(`queue thread exited with code ${code}`);
        this.inflight = 0;
        this.logger.error({ code, restartInMs: RESTART_DELAY_MS }, 'queue thread exited; replacing it');
        setTimeout(() => {
          if (this.stopping) return;
          this.restarts++;
          this.spawn().catch((err: Error) => this.logger.error({ err: { message: err.message } }, 'queue thread could not be replaced'));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  get inFlight(): number {
    return this.inflight;
  }

  /**
   * Coalesced: one message per event-loop turn however many messages were accepted,
   * carrying their qids so the queue thread claims them without scanning the store.
   */
  kick(accepted?: readonly string[]): void {
    if (this.stopping) return;
    if (accepted) {
      let known = 0;
      for (const qid of accepted) {
        if (this.handedOver.delete(qid)) known++;
        else this.accepted.push(qid);
      }
      // the queue thread committed them and has them already
      if (known === accepted.length) return;
    }
    if (this.kickPending) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      const qids = this.accepted;
      this.accepted = [];
      this.post({ type: 'kick', accepted: qids });
    });
  }

  /**
   * The accept path's commit on the queue thread's connection, which claims the messages
   * in the same transaction (`DeliveryQueue.commitAccepted`). Undefined while no thread
   * takes commits (being replaced, stopping): the accept path commits on its own.
   */
  commitAccepted(rows: readonly NewMessage[]): Promise<void> | undefined {
    if (!this.takesCommits) return undefined;
    const id = this.nextCommitId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const c = this.commits.get(id);
        // its answer, when it comes, is dropped: the accept path has committed on its own
        if (c) this.settle(id, c, outcomeUnknown(`the queue thread did not answer a commit within ${this.handOffTimeoutMs} ms`));
      }, this.handOffTimeoutMs);
      this.commits.set(id, { resolve, reject, qids: rows.map((r) => r.qid), timer });
      this.post({ type: 'commit', id, rows });
    });
  }

  private committed(m: Extract<FromQueueThread, { type: 'committed' }>): void {
    const c = this.commits.get(m.id);
    if (!c) return;
    if (m.error) return this.settle(m.id, c, Object.assign(new Error(m.error.message), m.error.code !== undefined ? { code: m.error.code } : {}));
    // a kick lost to a full set costs one claim transaction that finds the message claimed
    if (this.handedOver.size + c.qids.length > MAX_HANDED_OVER) this.handedOver.clear();
    for (const qid of c.qids) this.handedOver.add(qid);
    this.settle(m.id, c);
  }

  private settle(id: number, c: CommitInFlight, err?: Error): void {
    this.commits.delete(id);
    clearTimeout(c.timer);
    if (err) c.reject(err);
    else c.resolve();
  }

  stop(graceMs: number): Promise<void> {
    this.stopping ??= (async () => {
      this.takesCommits = false;
      if (!this.failed) {
        const stopped = new Promise<void>((resolve) => {
          const onMessage = (m: FromQueueThread) => {
            if (m.type === 'stopped') resolve();
          };
          this.worker.on('message', onMessage);
          this.worker.once('exit', () => resolve());
        });
        this.post({ type: 'stop', graceMs });
        await Promise.race([stopped, new Promise<void>((r) => setTimeout(r, graceMs + 5000).unref())]);
      }
      await this.worker.terminate();
    })();
    return this.stopping;
  }

  private post(m: ToQueueThread): void {
    try {
      this.worker.postMessage(m);
    } catch (err) {
      this.logger.warn({ err: { message: (err as Error).message } }, 'queue thread unreachable');
    }
  }
}
