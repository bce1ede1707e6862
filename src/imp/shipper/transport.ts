// The IMP next-hop transport: `imp://host:port` routes hand their messages to the
// Foreign Net Router and Shipper of that peer (peer.ts). Each delivery request becomes
// one DELIVER per recipient sharing one document; requests in flight together share a bag.
import type { Readable } from 'node:stream';
import type { NextHop } from '../../config/schema.js';
import type { DeliveryRequest, DeliveryResult, HopBusy, NextHopTransport } from '../../delivery/transports/transport.js';
import { allRecipients, hopBusy } from '../../delivery/transports/transport.js';
import { encodeBag } from '../bag.js';
import { isImpError } from '../errors.js';
import { deliverCommand, tidKey } from '../message.js';
import { mimeToImpDocument, recipientMailbox } from '../mime/to-imp.js';
import type { ImpMessage, Tid } from '../types.js';
import { PeerShipper, type EndToEndHooks, type PeerEvents, type ShipmentItem } from './peer.js';
import type { TnAllocator } from './tn-allocator.js';

export interface ImpTransportOptions {
  /** Our tids: this MPM's ihn and its transaction numbers. */
  tns: TnAllocator;
  /** imp.compress: the default for routes that do not say. */
  compress: boolean;
  maxBagBytes: number;
  maxBagMessages: number;
  /** Bags in flight per peer (queue.perNexthopConcurrency). */
  maxConnections: number;
  connectTimeoutMs: number;
  /** queue.attemptTimeout: silence from the peer while ACKNOWLEDGEs are due. */
  idleTimeoutMs: number;
  /** A peer with every connection busy and no reply within this long is busy: requests are not taken (default 1000). */
  handoverMs?: number;
  /**
   * The DELIVER a message arrived with over IMP (absent: it did not). It is forwarded
   * "otherwise unchanged" (Example 2 view 2): the same tid, the stamp with our ihn appended.
   */
  impOrigin?: (qid: string) => { tid: Tid; stamp: readonly number[] } | undefined;
  events?: PeerEvents;
  /** End-to-end ACKNOWLEDGEs (docs/imp.md); absent: every hop's answer is final. */
  endToEnd?: EndToEndHooks;
  /** Closed with the transport: the relay's outbox of replies to pass back. */
  replyForwarder?: { close(): Promise<void> };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export class ImpTransport implements NextHopTransport {
  readonly kind = 'imp' as const;
  private readonly peers = new Map<string, PeerShipper>();

  constructor(private readonly o: ImpTransportOptions) {}

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult | HopBusy> {
    if (hop.kind !== 'imp') throw new TypeError(`ImpTransport cannot deliver to ${hop.url}`);
    const peer = this.peer(hop);
    if (peer.stalled(Date.now())) {
      return hopBusy(req, `451 4.4.5 IMP peer ${hop.url} has ${this.o.maxConnections} bag(s) in flight and no reply for a while; not attempted`);
    }
    const raw = await readAll(req.openMessage());
    const origin = this.o.impOrigin?.(req.qid);
    const stamp = [...(origin?.stamp ?? []), this.o.tns.ihn];
    let messages: ImpMessage[];
    try {
      const document = mimeToImpDocument(raw, { envelopeFrom: req.envelopeFrom });
      messages = req.recipients.map((rcpt) => ({
        tid: { tn: 0, ihn: this.o.tns.ihn }, // placeholder, numbered below once the size is known to fit
        command: deliverCommand({ mailbox: recipientMailbox(rcpt), stamp, options: ['REGULAR'] }),
        document,
      }));
    } catch (err) {
      if (isImpError(err)) return allRecipients(req, 'failed', `554 5.6.0 message cannot be carried over IMP: ${err.message}`.replace(/[\r\n]+/g, ' '));
      throw err;
    }
    // Distinct placeholder tns so the encoder's unique-tid check and sharing behave as in the real bag.
    messages.forEach((m, i) => (m.tid = { tn: i, ihn: this.o.tns.ihn }));
    let soloBytes: number;
    try {
      soloBytes = encodeBag(messages).length;
    } catch (err) {
      if (isImpError(err)) return allRecipients(req, 'failed', `552 5.3.4 message does not fit an IMP bag: ${err.message}`.replace(/[\r\n]+/g, ' '));
      throw err;
    }
    if (soloBytes > this.o.maxBagBytes) {
      return allRecipients(req, 'failed', `552 5.3.4 message needs a ${soloBytes}-octet IMP bag; imp.maxBagBytes is ${this.o.maxBagBytes}`);
    }
    if (messages.length > this.o.maxBagMessages) {
      // One request never spans bags: its recipients' ACKNOWLEDGEs come back on one connection.
      return allRecipients(req, 'deferred', `451 4.5.3 ${messages.length} recipients exceed imp.maxMessagesPerBag (${this.o.maxBagMessages})`);
    }
    const recipientOf = new Map<string, string>();
    const ownTns: number[] = [];
    let forwarding: ShipmentItem['origin'];
    if (origin && messages.length === 1) {
      // One DELIVER was accepted as one message: it travels on under its originator's tid.
      messages[0]!.tid = { tn: origin.tid.tn, ihn: origin.tid.ihn | 0 };
      forwarding = origin;
    } else {
      for (const m of messages) {
        const tid = this.o.tns.allocate();
        if (!tid) {
          for (const tn of ownTns) this.o.tns.release(tn);
          return allRecipients(req, 'deferred', '451 4.3.2 every IMP transaction number is awaiting its reply');
        }
        m.tid = tid;
        ownTns.push(tid.tn);
      }
    }
    messages.forEach((m, i) => recipientOf.set(tidKey(m.tid), req.recipients[i]!));
    return new Promise<DeliveryResult>((resolve) => {
      const item: ShipmentItem = { req, messages, recipientOf, ownTns, origin: forwarding, headers: () => headerSection(raw), soloBytes, results: new Map(), done: false, resolve };
      peer.enqueue(item);
    });
  }

  private peer(hop: NextHop & { kind: 'imp' }): PeerShipper {
    let p = this.peers.get(hop.url);
    if (!p) {
      p = new PeerShipper({
        host: hop.host,
        port: hop.port,
        url: hop.url,
        compress: hop.compress ?? this.o.compress,
        ...(hop.tls ? { tls: hop.tls } : {}),
        tns: this.o.tns,
        maxConnections: this.o.maxConnections,
        maxBagBytes: this.o.maxBagBytes,
        maxBagMessages: this.o.maxBagMessages,
        connectTimeoutMs: this.o.connectTimeoutMs,
        idleTimeoutMs: this.o.idleTimeoutMs,
        handoverMs: this.o.handoverMs ?? 1000,
        events: this.o.events ?? {},
        endToEnd: this.o.endToEnd,
      });
      this.peers.set(hop.url, p);
    }
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([...[...this.peers.values()].map((p) => p.close()), this.o.replyForwarder?.close()]);
  }
}

/** The header section (through the blank line), copied so the message buffer can go. */
function headerSection(raw: Buffer, max = 256 * 1024): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  return Buffer.from(raw.subarray(0, end === -1 ? Math.min(raw.length, max) : Math.min(end + 4, max)));
}
