// A scripted IMP peer for shipper tests: a TCP acceptor on 127.0.0.1 built on the codec.
// It frames shipping units with ShippingUnitDecoder, keeps every unit's exact octets,
// and answers each DELIVER with an ACKNOWLEDGE per RFC 753 section 3.4 (tid of the
// DELIVER, trail = its stamp plus our ihn, answer, reasons, how-delivered), or as the
// test scripts it: answer no, an error-list class, silence, or a dropped connection.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { decodeBag, encodeBag } from '../../src/imp/bag.js';
import { encodeShippingUnit, ShippingUnitDecoder, type ShippingUnit } from '../../src/imp/compression.js';
import { acknowledgeCommand } from '../../src/imp/message.js';
import type { ImpMessage } from '../../src/imp/types.js';
import { mailboxAddress } from '../../src/imp/mime/from-imp.js';

export interface PeerAnswer {
  answer: boolean;
  reasons?: string[];
  /** Default ACCEPT on yes, nothing on no. */
  howDelivered?: string[];
  error?: { errorClass: number; errorString: string };
}

/** What the peer does with one received bag: answer each message, or drop the connection unanswered. */
export type BagScript = 'drop' | ((msg: ImpMessage, recipient: string) => PeerAnswer | 'silent');

export interface ReceivedBag {
  unit: ShippingUnit;
  /** The shipping unit's octets as they came off the wire (compression-type octet first). */
  wire: Buffer;
  messages: ImpMessage[];
}

export interface ImpPeer {
  port: number;
  url: string;
  ihn: number;
  bags: ReceivedBag[];
  connections: number;
  /** Scripts for the coming bags, in order; then `fallback`. */
  scripts: BagScript[];
  fallback: BagScript;
  /** Resolves once `n` bags have arrived. */
  received(n: number): Promise<void>;
  close(): Promise<void>;
}

export const yes: BagScript = () => ({ answer: true, reasons: ['OK'] });

export async function startImpPeer(opts: { ihn?: number } = {}): Promise<ImpPeer> {
  const ihn = opts.ihn ?? 167772359;
  const sockets = new Set<Socket>();
  const waiters: (() => void)[] = [];
  let tn = 1993;
  const server = createServer((socket) => {
    peer.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new ShippingUnitDecoder();
    const wire: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      wire.push(chunk);
      const units = decoder.push(chunk);
      for (const unit of units) {
        // Offsets count from the connection's first octet.
        const own = Buffer.concat(wire).subarray(unit.offset, unit.end);
        const messages = decodeBag(Buffer.from(unit.bag));
        peer.bags.push({ unit: { ...unit, bag: Buffer.from(unit.bag) }, wire: Buffer.from(own), messages });
        for (const w of waiters.splice(0)) w();
        const script = peer.scripts.shift() ?? peer.fallback;
        if (script === 'drop') {
          socket.destroy();
          return;
        }
        const replies: ImpMessage[] = [];
        for (const msg of messages) {
          const a = script(msg, mailboxAddress(msg.command.mailbox, 'mailbox'));
          if (a === 'silent') continue;
          replies.push({
            tid: { tn: tn++ & 0xffff, ihn },
            // Addressed to the originating MPM, as Example 2 view 3.
            command: acknowledgeCommand({
              mailbox: { type: 'proplist', pairs: [{ name: 'IA', value: { type: 'integer', value: msg.tid.ihn } }, { name: 'USER', value: { type: 'text', data: Buffer.from('*MPM*') } }] },
              stamp: [ihn],
              tid: msg.tid,
              trail: [...msg.command.stamp, ihn],
              answer: a.answer,
              reasons: a.reasons ?? [a.answer ? 'OK' : 'no such user'],
              howDelivered: a.howDelivered ?? (a.answer ? ['ACCEPT'] : []),
              ...(a.error ? { error: a.error } : {}),
            }),
          });
        }
        if (replies.length) socket.write(encodeShippingUnit(encodeBag(replies)));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const peer: ImpPeer = {
    port,
    url: `imp://127.0.0.1:${port}`,
    ihn,
    bags: [],
    connections: 0,
    scripts: [],
    fallback: yes,
    async received(n) {
      while (peer.bags.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return peer;
}
