// A hand-written IMP peer for tests: ships bytes (whole shipping units, or any bytes
// at all) to an acceptor and reads the reply units back with the codec.
import { connect, type Socket } from 'node:net';
import { decodeBag, ShippingUnitDecoder, type ImpMessage, type ShippingUnit } from '../../src/imp/index.js';

export interface ImpTestClient {
  socket: Socket;
  send(bytes: Buffer): Promise<void>;
  /** Resolves with the next reply unit (rejects if the connection closes first). */
  unit(): Promise<ShippingUnit>;
  /** Reads reply units until `count` reply messages have arrived. */
  replies(count: number): Promise<ImpMessage[]>;
  /** Resolves when the acceptor closed the connection. */
  closed: Promise<void>;
  close(): void;
}

export async function impClient(port: number): Promise<ImpTestClient> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const decoder = new ShippingUnitDecoder();
  const units: ShippingUnit[] = [];
  const waiters: Array<{ resolve(u: ShippingUnit): void; reject(e: Error): void }> = [];
  let ended = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    for (const u of decoder.push(chunk)) {
      const copy = { ...u, bag: Buffer.from(u.bag) };
      const w = waiters.shift();
      if (w) w.resolve(copy);
      else units.push(copy);
    }
  });
  socket.on('close', () => {
    ended = true;
    for (const w of waiters.splice(0)) w.reject(new Error('connection closed before a reply unit'));
  });
  const unit = () =>
    new Promise<ShippingUnit>((resolve, reject) => {
      const u = units.shift();
      if (u) resolve(u);
      else if (ended) reject(new Error('connection closed before a reply unit'));
      else waiters.push({ resolve, reject });
    });
  return {
    socket,
    send: (bytes) => new Promise<void>((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve()))),
    unit,
    async replies(count) {
      const out: ImpMessage[] = [];
      while (out.length < count) out.push(...decodeBag((await unit()).bag));
      return out;
    },
    closed,
    close: () => socket.destroy(),
  };
}
