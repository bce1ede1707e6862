// Passes queued replies back towards the MPMs they are addressed to (RFC 753 Example 2
// view 4): the relay's durable outbox, shipped per target MPM in one bag per round over
// its own connection. Replies are not answered (the acceptor never answers a reply), so
// a bag counts as taken when the peer, after our half-close, closes its side without
// sending anything: it has processed the bag by then. Anything else (refused, silent,
// an error reply, a dropped connection) leaves the replies queued, retried with backoff.
import { decodeBag, encodeBag } from '../bag.js';
import { encodeShippingUnit } from '../compression.js';
import { tidKey } from '../message.js';
import type { ImpMessage, Tid } from '../types.js';
import { connectToMpm } from './connect.js';

export interface QueuedReply {
  id: number;
  targetIhn: number;
  tid: Tid;
  /** The reply message as a one-message bag. */
  message: Buffer;
  attempts: number;
}

/** Where an MPM listens (an imp.mpms entry): TLS from the first octet when its acceptor has imp.tls. */
export interface MpmTarget {
  host: string;
  port: number;
  url: string;
  tls?: { verify: boolean } | undefined;
}

/** The durable outbox (src/store/imp-reply-store.ts). */
export interface ReplyOutbox {
  dueReplies(now: number, limit: number): QueuedReply[];
  nextReplyDueAt(): number | undefined;
  repliesSent(ids: readonly number[], now?: number): void;
  repliesRetry(ids: readonly number[], nextAttemptAt: number, error: string): void;
}

export interface ReplyForwarderOptions {
  outbox: ReplyOutbox;
  /** imp.mpms: where the MPM of this ihn listens. */
  resolve(ihn: number): MpmTarget | undefined;
  connectTimeoutMs: number;
  /** Silence from the peer this long after our half-close: not taken. */
  idleTimeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** How often the outbox is looked at (other processes and threads queue replies too). */
  pollMs: number;
  events?: {
    passed?(e: { url: string; targetIhn: number; replies: number; octets: number }): void;
    failed?(e: { url: string | undefined; targetIhn: number; replies: number; reason: string; attempts: number }): void;
  };
}

/** Replies looked at per round. */
const ROUND_LIMIT = 1000;

export class ReplyForwarder {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly shutdown = new AbortController();

  constructor(private readonly o: ReplyForwarderOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Something was queued: look now. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.shutdown.abort();
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.round()
        .catch((err: Error) => this.o.events?.failed?.({ url: undefined, targetIhn: 0, replies: 0, reason: `outbox: ${err.message}`, attempts: 0 }))
        .finally(() => {
          this.running = undefined;
          const again = this.again;
          this.again = false;
          this.schedule(again ? 0 : this.nextWait());
        });
    }, ms);
    this.timer.unref?.();
  }

  private nextWait(): number {
    let at: number | undefined;
    try {
      at = this.o.outbox.nextReplyDueAt();
    } catch {
      at = undefined;
    }
    const poll = this.o.pollMs;
    return at === undefined ? poll : Math.max(0, Math.min(poll, at - Date.now()));
  }

  private async round(): Promise<void> {
    const due = this.o.outbox.dueReplies(Date.now(), ROUND_LIMIT);
    const byTarget = new Map<number, QueuedReply[]>();
    for (const r of due) byTarget.set(r.targetIhn, [...(byTarget.get(r.targetIhn) ?? []), r]);
    await Promise.all([...byTarget].map(([ihn, replies]) => this.ship(ihn, replies)));
  }

  private async ship(targetIhn: number, queued: QueuedReply[]): Promise<void> {
    const where = this.o.resolve(targetIhn);
    if (!where) return this.retry(undefined, targetIhn, queued, `no imp.mpms entry for ihn ${targetIhn >>> 0}`);
    // Tids are unique within a bag: a second reply with the same tid waits for the next round.
    const tids = new Set<string>();
    const batch: QueuedReply[] = [];
    const messages: ImpMessage[] = [];
    const bad: QueuedReply[] = [];
    for (const r of queued) {
      let msg: ImpMessage | undefined;
      try {
        msg = decodeBag(r.message)[0];
      } catch {
        msg = undefined;
      }
      if (!msg) {
        bad.push(r);
        continue;
      }
      const key = tidKey(msg.tid);
      if (tids.has(key)) continue;
      tids.add(key);
      batch.push(r);
      messages.push(msg);
    }
    if (bad.length) this.retry(where.url, targetIhn, bad, 'the stored reply does not decode');
    if (!batch.length) return;
    const unit = encodeShippingUnit(encodeBag(messages, { sharing: 'none' }), { compress: false });
    const reason = await sendWithoutAnswer({ ...where, unit, connectTimeoutMs: this.o.connectTimeoutMs, idleTimeoutMs: this.o.idleTimeoutMs, signal: this.shutdown.signal });
    if (reason) return this.retry(where.url, targetIhn, batch, reason);
    this.o.outbox.repliesSent(batch.map((r) => r.id));
    this.o.events?.passed?.({ url: where.url, targetIhn, replies: batch.length, octets: unit.length });
  }

  private retry(url: string | undefined, targetIhn: number, replies: QueuedReply[], reason: string): void {
    const attempts = Math.min(...replies.map((r) => r.attempts));
    const wait = Math.min(this.o.retryMaxMs, this.o.retryInitialMs * 2 ** Math.min(attempts, 30));
    this.o.outbox.repliesRetry(replies.map((r) => r.id), Date.now() + wait, reason);
    this.o.events?.failed?.({ url, targetIhn, replies: replies.length, reason, attempts: attempts + 1 });
  }
}

/**
 * Connects, writes the unit, half-closes, and waits for the peer to close its side.
 * Resolves undefined when it did so without sending anything, else with the reason.
 */
function sendWithoutAnswer(o: MpmTarget & { unit: Buffer; connectTimeoutMs: number; idleTimeoutMs: number; signal: AbortSignal }): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    let answered = 0;
    let ended = false;
    const { socket, readyEvent } = connectToMpm({ host: o.host, port: o.port, tls: o.tls, allowHalfOpen: true });
    const end = (reason: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      o.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(reason);
    };
    const onAbort = () => end(`${o.url}: ended by shutdown`);
    o.signal.addEventListener('abort', onAbort, { once: true });
    if (o.signal.aborted) return onAbort();
    const connectTimer = setTimeout(() => end(`${o.url}: connect timed out`), o.connectTimeoutMs);
    socket.setTimeout(o.idleTimeoutMs, () => end(`${o.url}: no close for ${o.idleTimeoutMs} ms after the replies`));
    socket.on(readyEvent, () => {
      clearTimeout(connectTimer);
      socket.end(o.unit);
    });
    socket.on('data', (chunk: Buffer) => {
      answered += chunk.length;
    });
    socket.on('end', () => {
      ended = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => end(`${o.url}: ${err.code ?? 'ERROR'} ${err.message}`.replace(/[\r\n]+/g, ' ')));
    socket.on('close', () => {
      if (answered) return end(`${o.url}: the MPM answered the replies (${answered} octets; an error reply): not taken`);
      end(ended ? undefined : `${o.url}: closed before taking the replies`);
    });
  });
}
