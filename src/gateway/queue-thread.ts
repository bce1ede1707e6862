// The delivery queue on its own thread. Accepting (smtp-server, spool, the durable
// commit) and delivering (routing, next-hop clients, attempt records) each cost about
// a millisecond of CPU per message; on one thread they add up, on two they overlap.
// The queue thread has its own SQLite connection to the same WAL store.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { QueueEvents, QueueHandle } from '../smtp/queue.js';

export interface QueueThreadData {
  config: Config;
  pollMs?: number;
}

export type ToQueueThread = { type: 'kick' } | { type: 'stop'; graceMs: number };
export type FromQueueThread =
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'inflight'; count: number }
  | { type: 'attempt'; attempt: Parameters<NonNullable<QueueEvents['attempt']>>[0] }
  | { type: 'bounced'; count: number }
  | { type: 'batch'; messages: FromQueueThread[] };

/** The worker entry: compiled `.js` next to this file, or the `.ts` source through tsx. */
function workerSource(): { source: string | URL; eval: boolean } {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return { source: new URL('./queue-worker.js', self), eval: false };
  // Running from source (tests, benchmarks): worker threads do not inherit tsx's loader.
  const entry = new URL('./queue-worker.ts', self).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return {
    source: `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`,
    eval: true,
  };
}

/** The main thread's handle on the queue thread. */
export class QueueThread implements QueueHandle {
  private inflight = 0;
  private kickPending = false;
  private stopping: Promise<void> | undefined;
  failed: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly logger: Logger,
  ) {}

  static start(data: QueueThreadData, events: QueueEvents, logger: Logger): Promise<QueueThread> {
    const { source, eval: isEval } = workerSource();
    const worker = new Worker(source, { eval: isEval, workerData: data });
    const thread = new QueueThread(worker, logger);
    return new Promise((resolve, reject) => {
      let ready = false;
      const handle = (m: FromQueueThread): void => {
        switch (m.type) {
          case 'ready':
            ready = true;
            resolve(thread);
            break;
          case 'inflight':
            thread.inflight = m.count;
            break;
          case 'attempt':
            events.attempt?.(m.attempt);
            break;
          case 'bounced':
            events.bounced?.(m.count);
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
        thread.failed = err;
        logger.error({ err: { message: err.message, stack: err.stack } }, 'queue thread failed');
        if (!ready) reject(err);
      });
      worker.on('exit', (code) => {
        if (!thread.stopping) {
          thread.failed ??= new Error(`queue thread exited with code ${code}`);
          logger.error({ code }, 'queue thread exited');
        }
        if (!ready) reject(thread.failed ?? new Error(`queue thread exited with code ${code}`));
      });
    });
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Coalesced: one message per event-loop turn however many messages were accepted. */
  kick(): void {
    if (this.kickPending || this.stopping) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      this.post({ type: 'kick' });
    });
  }

  stop(graceMs: number): Promise<void> {
    this.stopping ??= (async () => {
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
