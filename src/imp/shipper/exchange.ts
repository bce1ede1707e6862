// One bag over one TCP connection: connect, write the shipping unit, read the replies
// incrementally (ShippingUnitDecoder: any split of the stream, several bags of replies)
// until the caller has every answer it waits for, or the connection fails or goes silent.
import { decodeBag } from '../bag.js';
import { ShippingUnitDecoder } from '../compression.js';
import type { ImpMessage } from '../types.js';
import { connectToMpm } from './connect.js';

export interface ExchangeOptions {
  host: string;
  port: number;
  /** TLS from the first octet (a peer with imp.tls); `verify` checks its certificate and host name. */
  tls?: { verify: boolean };
  /** A shipping unit: compression-type octet + bag. */
  unit: Buffer;
  connectTimeoutMs: number;
  /** No octet from the peer for this long while answers are due: give up. */
  idleTimeoutMs: number;
  /** Largest reply bag accepted. */
  maxBagBytes: number;
  /** The unit is on its way (connected and written). */
  onShipped?(): void;
  /** Each reply message; return true once every awaited answer is in (the connection is then closed). */
  onReply(msg: ImpMessage): boolean;
  /** Ends the exchange early (shutdown). */
  signal?: AbortSignal;
}

/** Resolves undefined when every awaited answer came, else with the reason it ended (an SMTP-style 4xx reply). */
export function exchangeBag(o: ExchangeOptions): Promise<string | undefined> {
  const where = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  return new Promise((resolve) => {
    let settled = false;
    const { socket, readyEvent } = connectToMpm({ host: o.host, port: o.port, tls: o.tls });
    const decoder = new ShippingUnitDecoder({ maxBagBytes: o.maxBagBytes });
    const end = (reason: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      o.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(reason);
    };
    const onAbort = () => end(`451 4.3.2 IMP exchange with ${where} ended by shutdown`);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) return onAbort();
    const connectTimer = setTimeout(() => end(`451 4.4.1 IMP connect to ${where} timed out`), o.connectTimeoutMs);
    socket.setTimeout(o.idleTimeoutMs, () => end(`451 4.4.2 IMP peer ${where} sent no ACKNOWLEDGE for ${o.idleTimeoutMs} ms`));
    socket.on(readyEvent, () => {
      clearTimeout(connectTimer);
      socket.write(o.unit);
      o.onShipped?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => end(`451 4.4.1 IMP ${where}: ${err.code ?? 'ERROR'} ${err.message}`.replace(/[\r\n]+/g, ' ')));
    socket.on('close', () => end(`451 4.4.2 IMP peer ${where} closed the connection before acknowledging`));
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const u of decoder.push(chunk)) {
          for (const reply of decodeBag(u.bag, { maxBagBytes: o.maxBagBytes })) {
            if (o.onReply(reply)) return end(undefined);
          }
        }
      } catch (err) {
        end(`451 4.5.0 IMP peer ${where} sent a bad bag: ${(err as Error).message}`.replace(/[\r\n]+/g, ' '));
      }
    });
  });
}
