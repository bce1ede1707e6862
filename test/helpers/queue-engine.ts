// An in-process DeliveryQueue on a temp store and spool, with a fake next-hop transport
// whose attempts the test holds open and releases, and a config file for the queue CLI
// pointing at the same store. Tests order events; they never measure time.
import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import { pino } from 'pino';
import type { ConfigInput } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { enqueueGenerated } from '../../src/delivery/enqueue.js';
import { QidGenerator } from '../../src/delivery/qid.js';
import { DeliveryQueue, type DeliveryQueueOptions, type RewriteStep } from '../../src/delivery/queue.js';
import { Spool } from '../../src/delivery/spool.js';
import type { DeliveryRequest, DeliveryResult, NextHopTransport } from '../../src/delivery/transports/transport.js';
import type { NextHop } from '../../src/config/schema.js';
import { Store } from '../../src/store/store.js';
import { tempDir, writeTestConfig } from './gateway.js';

export async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** What the fake next hop says to one attempt (the test decides, possibly later). */
export type Answer = (req: DeliveryRequest) => DeliveryResult | Promise<DeliveryResult>;

export const reply = (req: DeliveryRequest, outcome: 'delivered' | 'deferred' | 'failed', text: string): DeliveryResult => ({
  reply: text,
  recipients: req.recipients.map((rcpt) => ({ rcpt, outcome, reply: text })),
});

/** A next hop that records every attempt (recipients and bytes) and answers as told. */
export class FakeTransport implements NextHopTransport {
  readonly kind = 'smtp' as const;
  readonly attempts: { rcpts: string[]; bytes: Buffer; req: DeliveryRequest }[] = [];
  /** Answers for the coming attempts, in order; then `fallback`. */
  readonly answers: Answer[] = [];
  fallback: Answer = (req) => reply(req, 'delivered', '250 2.0.0 ok');
  private waiters: (() => void)[] = [];

  async deliver(_hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult> {
    const bytes = await readAll(req.openMessage());
    this.attempts.push({ rcpts: [...req.recipients], bytes, req });
    for (const w of this.waiters.splice(0)) w();
    const answer = this.answers.shift() ?? this.fallback;
    return answer(req);
  }

  /** Resolves once `n` attempts have started. */
  async started(n: number): Promise<void> {
    while (this.attempts.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  async close(): Promise<void> {}
}

/** A promise the test resolves: an attempt held open until then. */
export function gate<T = void>(): { promise: Promise<T>; open(v: T): void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

export interface Engine {
  dir: string;
  configFile: string;
  /** Replaced by `restart`. */
  store: Store;
  spool: Spool;
  queue: DeliveryQueue;
  transport: FakeTransport;
  /** Every log line, parsed. */
  logs: { level: number; msg: string; [k: string]: unknown }[];
  enqueue(recipients: string[], from?: string): Promise<string>;
  /** A stop (`graceMs`) and a start as of a new process: the store reopened, a new queue, the same next hop. */
  restart(graceMs?: number, whileStopped?: () => void, beforeStart?: (store: Store) => void): Promise<void>;
  close(): Promise<void>;
}

export async function startEngine(
  opts: {
    queue?: Record<string, unknown>;
    rewrite?: RewriteStep;
    transport?: FakeTransport;
    /** Options of the queue beyond the config (seams: abort grace, results journal). */
    pollMs?: number;
    queueOptions?: Pick<DeliveryQueueOptions, 'abortGraceMs' | 'resultJournal'>;
  } = {},
): Promise<Engine> {
  const { dir, cleanup } = tempDir('engine');
  const overrides: Partial<Record<keyof ConfigInput, unknown>> = { routes: [{ domain: 'example.test', nexthop: 'smtp://127.0.0.1:9' }] };
  if (opts.queue) overrides.queue = opts.queue;
  const configFile = writeTestConfig(dir, overrides);
  const config = loadConfig(configFile);
  const store = Store.open(config.store.path);
  const spool = new Spool(config.spool.dir);
  const qids = new QidGenerator(undefined);
  const transport = opts.transport ?? new FakeTransport();
  const logs: Engine['logs'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      logs.push(JSON.parse(chunk.toString()) as Engine['logs'][number]);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const newQueue = (store: Store) =>
    new DeliveryQueue({
      store,
      spool,
      qids,
      routes: config.routes,
      queue: config.queue,
      hostname: 'mx.test.invalid',
      transports: [transport],
      logger,
      pollMs: opts.pollMs ?? 20,
      ...(opts.rewrite ? { rewrite: opts.rewrite } : {}),
      ...opts.queueOptions,
    });
  const engine: Engine = {
    dir,
    configFile,
    store,
    spool,
    queue: newQueue(store),
    transport,
    logs,
    async enqueue(recipients, from = 'ann@sender.test') {
      const qid = await enqueueGenerated({ spool, store: engine.store, qids }, { envelopeFrom: from, recipients, bytes: Buffer.from('Subject: test\r\n\r\nbody\r\n') });
      engine.queue.kick([qid]);
      return qid;
    },
    async restart(graceMs = 1000, whileStopped, beforeStart) {
      await engine.queue.stop(graceMs);
      engine.store.close();
      whileStopped?.();
      engine.store = Store.open(config.store.path);
      beforeStart?.(engine.store);
      engine.queue = newQueue(engine.store);
      engine.queue.start();
    },
    async close() {
      await engine.queue.stop(1000);
      engine.store.close();
      cleanup();
    },
  };
  engine.queue.start();
  return engine;
}
