// PoD ingest (UTF-8 check, JSON parse, normalisation, schema, sendmail line, canonical form
// and its hash: about 40% of the consumer's CPU per event) on a thread of its own, so that
// it overlaps with the WebSocket and with the store's transactions on the main thread.
//
// Results come back in the order the payloads went in (one thread, one port, FIFO), which
// is all the consumer's checkpoint and dedupe need. The main thread keeps every payload until
// its result is back: if the thread dies, what it held is ingested on the main thread, in
// order, and so is everything after (nothing is lost, the stream just loses the overlap).
// A thread that is alive but silent (stuck in a loop, starved) is treated the same way once
// the oldest payloads it holds have gone unanswered for `answerTimeoutMs`: otherwise its
// streams would stall, and the consumer's stop with them.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ingestToBatchItem, type PodEventKind } from '../pod/ingest.js';
import type { PodBatchItem } from '../store/pod-store.js';
import { workerSource } from './worker-source.js';

/** How a stream's payloads are taken: one object per stream, shared by its payloads. */
export interface IngestStreamOptions {
  kind: PodEventKind;
  maxEventBytes: number;
  /** Dead letters' source: the stream name. */
  source: string;
}

/** Payloads of one stream, packed end to end in one transferred buffer. */
export interface ToIngestThread {
  opts: IngestStreamOptions;
  bytes: ArrayBuffer;
  /** End offset of each payload in `bytes`. */
  ends: Uint32Array;
}

/** The batch items of one `ToIngestThread`, in its order. */
export type FromIngestThread = PodBatchItem[];

export type IngestDone = (item: PodBatchItem) => void;

interface Entry {
  payload: Buffer;
  opts: IngestStreamOptions;
  done: IngestDone;
}

/**
 * Payloads posted in one message at most (a turn of the event loop rarely brings more), and
 * bytes: beyond either, what is waiting goes at once (the packed copy stays small).
 */
const MAX_PER_POST = 256;
const MAX_BYTES_PER_POST = 4 * 1024 * 1024;

/**
 * No answer for this long while payloads are out: the thread is given up. A post of the
 * largest size takes well under a second; this leaves room for a machine under heavy load.
 */
const ANSWER_TIMEOUT_MS = 30_000;

export interface PodIngestThreadOptions {
  /** How long the oldest unanswered payloads may wait before the thread is given up (default 30 s). */
  answerTimeoutMs?: number;
}

/** A dead letter's raw bytes come back from the thread as a Uint8Array (structured clone): the store binds Buffers. */
function asBufferItem(item: PodBatchItem): PodBatchItem {
  if (item.kind === 'dead' && !Buffer.isBuffer(item.row.raw)) {
    const raw = item.row.raw as Uint8Array;
    item.row.raw = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  }
  return item;
}

export class PodIngestThread {
  private worker: Worker | undefined;
  /** Not yet posted (gathered until the end of this event-loop turn). */
  private waiting: Entry[] = [];
  private waitingBytes = 0;
  /** Posted, oldest first: one array per message to the thread. */
  private readonly posted: Entry[][] = [];
  private postScheduled = false;
  private closing = false;
  private drainWaiters: Array<() => void> = [];
  /** Armed while payloads are out: fires when the thread has answered none of them for `answerTimeoutMs`. */
  private watchdog: NodeJS.Timeout | undefined;
  private readonly answerTimeoutMs: number;

  constructor(
    private readonly logger: Logger,
    opts: PodIngestThreadOptions = {},
  ) {
    this.answerTimeoutMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    const { source, eval: isEval } = workerSource(import.meta.url, 'pod-ingest-worker');
    const worker = new Worker(source, { eval: isEval });
    this.worker = worker;
    worker.on('message', (items: FromIngestThread) => this.answered(items));
    worker.on('error', (err) => this.failed(err.message, undefined, err));
    worker.on('exit', (code) => {
      if (!this.closing) this.failed(`exited with code ${code}`);
    });
  }

  /** Payloads taken and not yet answered. */
  get inFlight(): number {
    let n = this.waiting.length;
    for (const group of this.posted) n += group.length;
    return n;
  }

  /** Ingests `payload`; `done` is called with its batch item, in the order of the calls. */
  ingest(payload: Buffer, opts: IngestStreamOptions, done: IngestDone): void {
    if (!this.worker) {
      done(ingestToBatchItem(payload, opts.source, opts));
      return;
    }
    this.waiting.push({ payload, opts, done });
    this.waitingBytes += payload.length;
    if (this.waiting.length >= MAX_PER_POST || this.waitingBytes >= MAX_BYTES_PER_POST) this.post();
    else if (!this.postScheduled) {
      this.postScheduled = true;
      setImmediate(() => {
        this.postScheduled = false;
        this.post();
      });
    }
  }

  /** Resolves once every payload taken so far has been answered. */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drained();
    this.closing = true;
    this.disarm();
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  /** Runs from the oldest unanswered post, and again from each answer while more are out. */
  private arm(): void {
    this.disarm();
    if (!this.worker || !this.posted.length) return;
    this.watchdog = setTimeout(() => this.failed(`no answer for ${this.answerTimeoutMs} ms`), this.answerTimeoutMs);
  }

  private disarm(): void {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private post(): void {
    if (!this.worker || !this.waiting.length) return;
    const entries = this.waiting;
    this.waiting = [];
    this.waitingBytes = 0;
    // One message per run of one stream's payloads (streams share the thread).
    let from = 0;
    for (let i = 1; i <= entries.length; i++) {
      if (i < entries.length && entries[i]!.opts === entries[from]!.opts) continue;
      this.postGroup(entries.slice(from, i));
      from = i;
    }
  }

  private postGroup(group: Entry[]): void {
    let size = 0;
    for (const e of group) size += e.payload.length;
    const bytes = new ArrayBuffer(size);
    const view = new Uint8Array(bytes);
    const ends = new Uint32Array(group.length);
    let at = 0;
    for (let i = 0; i < group.length; i++) {
      view.set(group[i]!.payload, at);
      at += group[i]!.payload.length;
      ends[i] = at;
    }
    this.posted.push(group);
    this.worker!.postMessage({ opts: group[0]!.opts, bytes, ends } satisfies ToIngestThread, [bytes, ends.buffer]);
    if (!this.watchdog) this.arm();
  }

  private answered(items: FromIngestThread): void {
    const group = this.posted.shift();
    if (!group || group.length !== items.length) {
      this.failed(`answered ${items.length} items for ${group?.length ?? 0} payloads`, group);
      return;
    }
    this.arm();
    for (let i = 0; i < group.length; i++) group[i]!.done(asBufferItem(items[i]!));
    this.checkDrained();
  }

  /** The thread is gone: everything it held, then everything waiting, is ingested here, in order. */
  private failed(why: string, current?: Entry[], err?: Error): void {
    if (!this.worker) return;
    this.logger.error({ why, ...(err ? { err } : {}) }, 'pod: ingest thread failed; ingesting on the main thread');
    const w = this.worker;
    this.worker = undefined;
    this.closing = true;
    this.disarm();
    void w.terminate();
    const rest = [...(current ? [current] : []), ...this.posted.splice(0), this.waiting.splice(0)];
    this.waitingBytes = 0;
    for (const group of rest) for (const e of group) e.done(ingestToBatchItem(e.payload, e.opts.source, e.opts));
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.inFlight !== 0 || !this.drainWaiters.length) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
