// The Foreign Net Router and Shipper for one peer MPM (RFC 753 section 3.7): messages
// queued for the peer are packed into bags (each message's document once, shared by tid
// between its recipients), shipped over TCP, and their ACKNOWLEDGEs read back
// incrementally from the same connection and mapped to recipient outcomes. Each
// recipient's outcome carries its hop (tid, bag, ACKNOWLEDGE) for the attempt record.
import { randomBytes } from 'node:crypto';
import type { ImpHop } from '../../store/queue-store.js';
import { summaryReply, type DeliveryRequest, type DeliveryResult, type RecipientResult } from '../../delivery/transports/transport.js';
import { encodeBag } from '../bag.js';
import { encodeShippingUnit } from '../compression.js';
import { exchangeBag } from './exchange.js';
import { readArguments, readCommandError, tidKey } from '../message.js';
import { isEndToEndAnswer, passedBackReply, replyAddressee } from '../replies.js';
import type { ImpMessage, Tid } from '../types.js';
import { acknowledgementResult } from './acknowledge.js';
import type { TnAllocator } from './tn-allocator.js';

/** One delivery request waiting for its bag, or in a bag awaiting its ACKNOWLEDGEs. */
export interface ShipmentItem {
  req: DeliveryRequest;
  /** One DELIVER per recipient, all with the same document object. */
  messages: ImpMessage[];
  /** tidKey -> recipient */
  recipientOf: Map<string, string>;
  /** The tns of our own allocator this request holds (a forwarded message keeps its originator's tid). */
  ownTns: number[];
  /**
   * The DELIVER this request forwards under its originator's tid (Example 2 view 2), if
   * it does: that originator hears the destination's answer from us (view 4).
   */
  origin?: { tid: Tid; stamp: readonly number[] } | undefined;
  /** The message's header section, for the originating side's end-to-end record (read when needed). */
  headers(): Buffer;
  /** The bag this request alone would make: an upper bound of its share of a batch. */
  soloBytes: number;
  results: Map<string, RecipientResult>;
  /** Set once the bag carrying it was written to the peer. */
  shipped?: { bag: ImpHop['bag']; at: number };
  done: boolean;
  resolve(r: DeliveryResult): void;
}

export interface PeerEvents {
  /** A bag went out: its messages (one per recipient) and octets on the wire. */
  shipped?(e: { peer: string; bag: string; messages: number; requests: number; octets: number; compressed: boolean }): void;
  /** One recipient's ACKNOWLEDGE came back (or none will: `none`). */
  acknowledged?(e: { peer: string; answer: 'yes' | 'no' | 'none' }): void;
  /** A problem worth a log line (a reply that names no message of the bag, a bad bag). */
  warn?(msg: string, fields: Record<string, unknown>): void;
}

/**
 * End-to-end ACKNOWLEDGEs (RFC 753 Example 2 view 4). Both run on the reply's arrival,
 * before the queue records the hop's outcome, and are durable when they return: a crash
 * in between repeats the attempt, so a reply may be recorded twice, never lost.
 */
export interface EndToEndHooks {
  /** This MPM's ihn (a reply already stamped by it is in a loop and is not passed back). */
  ihn: number;
  /**
   * A hop accepted a message of ours for forwarding: remember it until the destination
   * answers. Returns that answer when it came first (it is then the recipient's outcome).
   */
  awaitFinal(e: {
    tid: Tid;
    qid: string;
    rcpt: string;
    peer: string;
    req: DeliveryRequest;
    headers: Buffer;
    hopReply: string;
    /** When the message's bag was shipped (answers kept before then are not its own). */
    shippedAt?: number;
  }): { outcome: 'delivered' | 'failed'; reply: string } | undefined;
  /**
   * The destination's ACKNOWLEDGE of a message we relayed: queue `reply` (already stamped
   * with our ihn) towards the MPM `targetIhn`. False when that MPM cannot be reached from
   * here (not in imp.mpms): then this hop's outcome stands and we report it ourselves.
   */
  passBack(e: { targetIhn: number; tid: Tid; qid: string; reply: ImpMessage }): boolean;
}

export interface PeerOptions {
  host: string;
  port: number;
  url: string;
  compress: boolean;
  /** TLS from the first octet (the route's tls: required). */
  tls?: { verify: boolean };
  tns: TnAllocator;
  /** Bags in flight to this peer at once, one connection each. */
  maxConnections: number;
  maxBagBytes: number;
  maxBagMessages: number;
  connectTimeoutMs: number;
  /** No octet from the peer for this long while ACKNOWLEDGEs are due: give up on the bag. */
  idleTimeoutMs: number;
  /** With every connection busy, how recent the peer's last progress must be for a new request to wait for a bag. */
  handoverMs: number;
  events: PeerEvents;
  endToEnd?: EndToEndHooks | undefined;
}

export class PeerShipper {
  private readonly pending: ShipmentItem[] = [];
  private readonly shutdown = new AbortController();
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  /** When a reply last arrived or a bag last finished: the peer is making progress. */
  private lastProgressAt = -Infinity;

  constructor(private readonly o: PeerOptions) {}

  /**
   * Every connection carries a bag and none has made progress within `handoverMs`: a
   * new request would only hold a queue slot while the peer hangs, so it is not taken
   * (the queue looks again soon, as for a busy SMTP next hop). A peer that answers keeps
   * taking requests, which wait for the next bag and are packed together.
   */
  stalled(now: number): boolean {
    return this.inFlight >= this.o.maxConnections && now - this.lastProgressAt > this.o.handoverMs;
  }

  /** Queues a request; it resolves once every recipient has an outcome. */
  enqueue(item: ShipmentItem): void {
    if (this.closed) return this.finish(item, 'deferred', '451 4.3.2 IMP shipper is shutting down');
    this.pending.push(item);
    item.req.signal?.addEventListener('abort', () => this.abort(item), { once: true });
    if (item.req.signal?.aborted) return this.abort(item);
    // Requests handed in during the same turn of the event loop share a bag.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.pump();
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const item of this.pending.splice(0)) this.finish(item, 'deferred', '451 4.3.2 IMP shipper is shutting down');
    this.shutdown.abort();
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.o.maxConnections && this.pending.length) {
      const batch = this.takeBatch();
      this.inFlight++;
      void this.ship(batch).finally(() => {
        this.inFlight--;
        this.lastProgressAt = Date.now();
        this.pump();
      });
    }
  }

  /**
   * The oldest pending requests that fit one bag: by message count and by the sum of
   * their solo bag sizes (sharing never makes a message's part of a bag larger).
   */
  private takeBatch(): ShipmentItem[] {
    const batch: ShipmentItem[] = [];
    const tids = new Set<string>();
    let messages = 0;
    let bytes = 4;
    for (let i = 0; i < this.pending.length; ) {
      const next = this.pending[i]!;
      const size = next.soloBytes - 4;
      if (batch.length && (messages + next.messages.length > this.o.maxBagMessages || bytes + size > this.o.maxBagBytes)) break;
      // Tids are unique within a bag: a forwarded message whose originator's tid is already
      // in this bag waits for the next one.
      const keys = [...next.recipientOf.keys()];
      if (keys.some((k) => tids.has(k))) {
        i++;
        continue;
      }
      for (const k of keys) tids.add(k);
      batch.push(...this.pending.splice(i, 1));
      messages += next.messages.length;
      bytes += size;
    }
    return batch;
  }

  private async ship(batch: ShipmentItem[]): Promise<void> {
    const live = batch.filter((i) => !i.done);
    if (!live.length) return;
    const byTid = new Map<string, ShipmentItem>();
    for (const item of live) for (const key of item.recipientOf.keys()) byTid.set(key, item);
    let unit: Buffer;
    try {
      unit = encodeShippingUnit(encodeBag(live.flatMap((i) => i.messages)), { compress: this.o.compress });
    } catch (err) {
      for (const item of live) this.finishRest(item, 'deferred', `451 4.3.0 IMP bag could not be encoded: ${(err as Error).message}`);
      this.releaseAll(live);
      return;
    }
    const bag = { id: randomBytes(4).toString('hex'), messages: byTid.size, octets: unit.length, compressed: this.o.compress };
    let answered = 0;
    const reason = await exchangeBag({
      host: this.o.host,
      port: this.o.port,
      ...(this.o.tls ? { tls: this.o.tls } : {}),
      unit,
      connectTimeoutMs: this.o.connectTimeoutMs,
      idleTimeoutMs: this.o.idleTimeoutMs,
      maxBagBytes: this.o.maxBagBytes,
      signal: this.shutdown.signal,
      onShipped: () => {
        const at = Date.now();
        for (const item of live) item.shipped = { bag, at };
        this.o.events.shipped?.({ peer: this.o.url, bag: bag.id, messages: bag.messages, requests: live.length, octets: bag.octets, compressed: bag.compressed });
      },
      onReply: (reply) => {
        this.lastProgressAt = Date.now();
        answered += this.answer(reply, byTid);
        return answered >= byTid.size || live.every((i) => i.done);
      },
    });
    if (reason) {
      this.o.events.warn?.('imp: bag not fully acknowledged', { peer: this.o.url, reason });
      for (const item of live) this.finishRest(item, 'deferred', reason);
    }
    this.releaseAll(live);
  }

  /** Applies one reply; returns how many of this bag's messages it answered (0 or 1). */
  private answer(reply: ImpMessage, byTid: Map<string, ShipmentItem>): number {
    const cmd = reply.command;
    let args;
    try {
      args = readArguments(cmd);
    } catch (err) {
      this.o.events.warn?.('imp: reply with malformed arguments ignored', { peer: this.o.url, err: (err as Error).message });
      return 0;
    }
    if (args.operation !== 'ACKNOWLEDGE') {
      const error = safeError(reply);
      this.o.events.warn?.('imp: reply that is not an ACKNOWLEDGE ignored', { peer: this.o.url, operation: cmd.operation, error });
      return 0;
    }
    const key = tidKey(args.tid);
    const item = byTid.get(key);
    const rcpt = item?.recipientOf.get(key);
    if (!item || rcpt === undefined || item.results.has(rcpt)) {
      this.o.events.warn?.('imp: ACKNOWLEDGE for no message of the bag ignored', { peer: this.o.url, tid: args.tid });
      return 0;
    }
    const error = safeError(reply);
    let result: RecipientResult = {
      ...acknowledgementResult(rcpt, { ...args, error }),
      ...this.hop(item, args.tid, {
        answer: args.answer,
        reasons: args.reasons,
        howDelivered: args.howDelivered,
        trail: args.trail.map((ihn) => ihn >>> 0),
        ...(error && error.errorClass !== 0 ? { error: { errorClass: error.errorClass, errorString: error.errorString } } : {}),
      }),
    };
    this.o.events.acknowledged?.({ peer: this.o.url, answer: args.answer ? 'yes' : 'no' });
    if (!item.done && !item.results.has(rcpt)) result = this.endToEnd(item, rcpt, reply, { ...args, transient: result.outcome === 'deferred' }, result);
    if (!item.done) {
      item.results.set(rcpt, result);
      if (item.results.size === item.req.recipients.length) this.complete(item);
    }
    return 1;
  }

  /**
   * A message we forward under its originator's tid whose destination answered: the
   * answer goes back towards that originator (view 4), and a "no" is bounced there,
   * not here. A message of ours that a relay took for forwarding: remembered until the
   * destination's answer comes back. Anything the store refuses leaves the hop's
   * outcome as it was (per hop, as before), with a warning.
   */
  private endToEnd(item: ShipmentItem, rcpt: string, reply: ImpMessage, ack: { tid: Tid; answer: boolean; howDelivered: string[]; transient: boolean }, result: RecipientResult): RecipientResult {
    const hooks = this.o.endToEnd;
    if (!hooks) return result;
    const final = isEndToEndAnswer(ack);
    try {
      if (item.origin && final) {
        const targetIhn = replyAddressee(reply, ack.tid);
        if (reply.command.stamp.some((s) => (s | 0) === (hooks.ihn | 0))) {
          this.o.events.warn?.('imp: reply already stamped by this MPM; not passed back', { peer: this.o.url, tid: ack.tid, stamp: reply.command.stamp });
          return result;
        }
        const passed = hooks.passBack({ targetIhn, tid: ack.tid, qid: item.req.qid, reply: passedBackReply(reply, hooks.ihn) });
        if (passed && result.outcome === 'failed') return { ...result, reportedBy: `the originating MPM (ihn ${targetIhn >>> 0})` };
      } else if (!item.origin && ack.answer && !final) {
        const early = hooks.awaitFinal({
          tid: ack.tid,
          qid: item.req.qid,
          rcpt,
          peer: this.o.url,
          req: item.req,
          headers: item.headers(),
          hopReply: result.reply,
          ...(item.shipped ? { shippedAt: item.shipped.at } : {}),
        });
        // The destination's answer came back before this hop's: it is the outcome (bounced here on no).
        if (early) return { ...result, outcome: early.outcome, reply: early.reply };
      }
    } catch (err) {
      this.o.events.warn?.('imp: end-to-end record failed; the hop answer stands', { peer: this.o.url, tid: ack.tid, err: (err as Error).message });
    }
    return result;
  }

  private abort(item: ShipmentItem): void {
    const at = this.pending.indexOf(item);
    if (at !== -1) {
      this.pending.splice(at, 1);
      for (const tn of item.ownTns) this.o.tns.release(tn);
    }
    // In a bag already: its tns stay reserved until that connection ends, so a late
    // ACKNOWLEDGE can never be taken for another message's.
    this.finishRest(item, 'deferred', '451 4.4.7 attempt deadline passed before the IMP peer acknowledged');
  }

  private releaseAll(items: ShipmentItem[]): void {
    for (const item of items) for (const tn of item.ownTns) this.o.tns.release(tn);
  }

  private finish(item: ShipmentItem, outcome: 'deferred' | 'failed', reply: string): void {
    for (const tn of item.ownTns) this.o.tns.release(tn);
    this.finishRest(item, outcome, reply);
  }

  /** Every recipient without an answer gets `outcome`; then the request resolves. */
  private finishRest(item: ShipmentItem, outcome: 'deferred' | 'failed', reply: string): void {
    if (item.done) return;
    item.req.recipients.forEach((rcpt, i) => {
      if (item.results.has(rcpt)) return;
      // shipped and never answered: the hop is recorded with no ACKNOWLEDGE
      const tid = item.messages[i]?.tid;
      item.results.set(rcpt, { rcpt, outcome, reply, ...(tid ? this.hop(item, tid, null) : {}) });
      this.o.events.acknowledged?.({ peer: this.o.url, answer: 'none' });
    });
    this.complete(item);
  }

  /** The recipient's hop, once its bag went out (nothing before: it never left). */
  private hop(item: ShipmentItem, tid: { tn: number; ihn: number }, acknowledge: ImpHop['acknowledge']): { imp?: ImpHop } {
    if (!item.shipped) return {};
    return { imp: { peer: this.o.url, tid: { tn: tid.tn, ihn: tid.ihn >>> 0 }, bag: item.shipped.bag, shippedAt: item.shipped.at, acknowledge } };
  }

  private complete(item: ShipmentItem): void {
    if (item.done) return;
    item.done = true;
    const recipients = item.req.recipients.map((r) => item.results.get(r)!);
    item.resolve({ reply: recipients.length === 1 ? recipients[0]!.reply : summaryReply(this.o.url, recipients), recipients, successDsn: 'relayed' });
  }
}

function safeError(reply: ImpMessage) {
  try {
    return readCommandError(reply.command);
  } catch {
    return undefined;
  }
}
