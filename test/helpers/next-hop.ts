// Next hops for transport tests, all on 127.0.0.1: an smtp-server (SMTP or LMTP) that can
// offer STARTTLS and answer each LMTP recipient its own way, a host that accepts TCP and
// never greets, and a DeliveryRequest built from bytes in memory.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { DeliveryRequest } from '../../src/delivery/transports/transport.js';

export interface HopMessage {
  from: string;
  to: string[];
  bytes: Buffer;
  /** The session ran over TLS (STARTTLS). */
  secure: boolean;
}

export interface TestHop {
  port: number;
  messages: HopMessage[];
  close(): Promise<void>;
}

export interface TestHopOptions {
  lmtp?: boolean;
  /** Offer STARTTLS (with smtp-server's built-in self-signed certificate). */
  starttls?: boolean;
  /** LMTP: the reply after DATA for each recipient, in RCPT order (a string is a 250 text). */
  lmtpReplies?: (rcpts: string[]) => (string | Error)[];
}

export function smtpError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

export async function startHop(opts: TestHopOptions = {}): Promise<TestHop> {
  const messages: HopMessage[] = [];
  const server = new SMTPServer({
    logger: false,
    lmtp: !!opts.lmtp,
    authOptional: true,
    disableReverseLookup: true,
    earlyTalkerDelay: 0,
    ...(opts.starttls ? {} : { disabledCommands: ['STARTTLS'], hideSTARTTLS: true }),
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((r) => r.address);
        const replies = opts.lmtpReplies?.(to);
        const accepted = replies ? to.filter((_, i) => typeof replies[i] === 'string') : to;
        if (accepted.length) {
          messages.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: accepted, bytes: Buffer.concat(chunks), secure: session.secure });
        }
        if (replies) return (cb as unknown as (err: null, replies: (string | Error)[]) => void)(null, replies);
        cb(null, 'queued');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of server.connections) c.close();
      }),
  };
}

export interface HangingHop {
  port: number;
  /** Connections open now, and the most that were open at once. */
  readonly open: number;
  readonly maxOpen: number;
  /** Resolves once `n` connections are open at the same time. */
  opened(n: number): Promise<void>;
  close(): Promise<void>;
}

/** Accepts TCP connections and never sends a greeting. */
export async function startHangingHop(): Promise<HangingHop> {
  const sockets = new Set<Socket>();
  let maxOpen = 0;
  let waiters: { n: number; resolve(): void }[] = [];
  const server = createServer((s) => {
    sockets.add(s);
    maxOpen = Math.max(maxOpen, sockets.size);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    waiters = waiters.filter((w) => (sockets.size >= w.n ? (w.resolve(), false) : true));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get open() {
      return sockets.size;
    },
    get maxOpen() {
      return maxOpen;
    },
    opened: (n) => (sockets.size >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A request for `recipients` carrying `bytes`; Maildir intents kept in `intents`. */
export function memoryRequest(recipients: string[], bytes: Buffer, intents = new Map<string, string>()): DeliveryRequest {
  return {
    qid: 'Q0000000000001',
    envelopeFrom: 'ann@sender.test',
    recipients,
    receivedAt: 1_700_000_000_000,
    size: bytes.length,
    openMessage: () => Readable.from([bytes]),
    intendedName: (rcpt) => intents.get(rcpt),
    recordIntent: (rcpt, name) => void intents.set(rcpt, name),
  };
}
