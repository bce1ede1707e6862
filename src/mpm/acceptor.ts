// The Acceptor (RFC 753 section 3.7) over TCP (or TLS): reads shipping units
// incrementally with the codec's ShippingUnitDecoder, hands each bag to the
// Message-Bag Processor, and writes the replies back on the same connection, batched
// into bags. One bag at a time per connection: the socket is paused while a bag is
// processed, so a peer cannot queue unbounded work. docs/imp.md, "MPM acceptor".
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import {
  acknowledgeMessage,
  decodeBagEntries,
  encodeBag,
  encodedSize,
  encodeShippingUnit,
  ErrorClass,
  ImpErrorString,
  isImpError,
  MAX_BAG_OCTETS,
  messageElement,
  NO_TID,
  ShippingUnitDecoder,
  type ImpError,
  type ImpMessage,
  type ShippingUnit,
  type Tid,
} from '../imp/index.js';
import type { BagProcessor } from './bag-processor.js';

/** The listener could not bind (a port in use, a privileged port, an address not of this host). */
export class ImpListenError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ImpListenError';
  }
}

export interface ImpAcceptorOptions {
  ihn: number;
  processor: BagProcessor;
  logger: Logger;
  maxBagBytes: number;
  maxDepth: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** ms a shipping unit may take from its first octet to its last; 0 = no limit. */
  bagTimeout: number;
  /** ms a connection may sit with no unit in progress; 0 = forever. */
  idleTimeout: number;
  tls?: { key: string; cert: string } | undefined;
  nextReplyTid(): Tid;
  events?: ImpAcceptorEvents;
}

export interface ImpAcceptorEvents {
  bagReceived?(messages: number): void;
  /** A connection closed by this side, and why (`limit`, `framing`, `bag-timeout`, `idle`). */
  connectionClosed?(reason: string): void;
}

/** Most replies in one reply bag (a bag LIST holds at most 65,535 items). */
const REPLIES_PER_BAG = 4096;
/** A bag's LIST code, octet count and item count. */
const BAG_HEADER_OCTETS = 6;

export class ImpAcceptor {
  private server: Server | undefined;
  private readonly connections = new Set<ImpConnection>();
  private readonly perIp = new Map<string, number>();

  constructor(private readonly o: ImpAcceptorOptions) {}

  async listen(host: string, port: number): Promise<void> {
    // Half-open, over TCP and TLS alike: a peer's FIN ends its bags, not our replies; we
    // close once they are written, and a reply bag (which gets no answer) is recorded
    // before we close, which is how the reply forwarder knows it was taken. A TLS socket
    // becomes half-open only once its handshake is done: a half-open TLS server keeps a
    // socket whose peer gave up during the handshake (a certificate it refused) forever.
    const server = this.o.tls
      ? createTlsServer({ key: readFileSync(this.o.tls.key), cert: readFileSync(this.o.tls.cert) }, (socket: Socket) => {
          socket.allowHalfOpen = true;
          this.connected(socket);
        })
      : createTcpServer({ allowHalfOpen: true }, (socket: Socket) => this.connected(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      // `mailbag start` prints this one line: it names the listener, as the SMTP and admin ones do.
      const onError = (err: NodeJS.ErrnoException) => reject(new ImpListenError(err.code ?? 'ERR_MAILBAG_IMP_LISTEN', `imp listener ${host}:${port}: ${err.message}`));
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.o.logger.error({ err }, 'imp: listener error'));
  }

  address(): AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw Object.assign(new Error('the IMP listener is not listening'), { code: 'ERR_MAILBAG_NOT_STARTED' });
    return a;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  health(): { ok: boolean; reason?: string; connections: number } {
    return this.server?.listening ? { ok: true, connections: this.connections.size } : { ok: false, reason: 'not listening', connections: 0 };
  }

  /** Stops listening; connections get `graceMs` to finish the bag in progress, then are destroyed. */
  async close(graceMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of this.connections) c.drain();
    const deadline = setTimeout(() => {
      for (const c of this.connections) c.destroy();
    }, graceMs);
    deadline.unref();
    await closed;
    clearTimeout(deadline);
  }

  private connected(socket: Socket): void {
    const ip = socket.remoteAddress ?? '';
    const fromIp = this.perIp.get(ip) ?? 0;
    if (this.connections.size >= this.o.maxConnections || fromIp >= this.o.maxConnectionsPerIp) {
      // No bag has been read, so there is no tid to answer: the refusal is the close itself.
      this.o.logger.warn({ peer: ip, connections: this.connections.size, fromIp }, 'imp: connection refused, too many connections');
      this.o.events?.connectionClosed?.('limit');
      socket.destroy();
      return;
    }
    this.perIp.set(ip, fromIp + 1);
    const c = new ImpConnection(socket, this.o, () => {
      this.connections.delete(c);
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    this.connections.add(c);
  }
}

class ImpConnection {
  private readonly decoder: ShippingUnitDecoder;
  private readonly pending: ShippingUnit[] = [];
  private processing = false;
  private closing = false;
  private finalSent = false;
  private bagTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly peer: string;

  constructor(
    private readonly socket: Socket,
    private readonly o: ImpAcceptorOptions,
    private readonly onClose: () => void,
  ) {
    this.peer = socket.remoteAddress ?? '';
    this.decoder = new ShippingUnitDecoder({ maxBagBytes: o.maxBagBytes });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('error', (err) => this.o.logger.debug({ err, peer: this.peer }, 'imp: connection error'));
    socket.on('close', () => {
      this.clearTimers();
      this.onClose();
    });
    socket.on('end', () => {
      // The peer finished sending: answer what is in progress, then close our side.
      if (!this.decoder.idle) {
        this.fatal(ErrorClass.USER_ERROR, `${ImpErrorString.COMMAND_UNRECOGNIZED}: the connection ended inside a shipping unit`, 'truncated');
        return;
      }
      this.closing = true;
      if (!this.processing && this.pending.length === 0) socket.end();
    });
    this.armIdle();
  }

  /** Finish the bag in progress, then close (shutdown). */
  drain(): void {
    this.closing = true;
    if (!this.processing && this.pending.length === 0) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    if (this.closing) return;
    const wasIdle = this.decoder.idle;
    let units: ShippingUnit[];
    try {
      units = this.decoder.push(chunk);
    } catch (err) {
      if (!isImpError(err)) throw err;
      this.framingFault(err);
      return;
    }
    if (this.decoder.failed) {
      // Bags that arrived whole before the fault are answered first; run() ends with the fault.
      this.clearTimers();
      this.pending.push(...units);
      void this.run();
      return;
    }
    // The deadline runs from the first octet of the unit in progress.
    if (units.length || this.decoder.idle) this.clearBag();
    if (!this.decoder.idle && (wasIdle || units.length)) this.armBag();
    if (units.length) {
      this.pending.push(...units);
      void this.run();
    } else if (this.decoder.idle) this.armIdle();
  }

  private async run(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    this.socket.pause();
    this.clearIdle();
    // Our processing time is not the peer's: the next unit's deadline restarts after it.
    this.clearBag();
    try {
      while (this.pending.length && !this.socket.destroyed) {
        const unit = this.pending.shift()!;
        let ok: boolean;
        try {
          ok = await this.bag(unit);
        } catch (err) {
          // A fault of ours (not of the peer's octets): nothing of this bag was answered
          // yes unless it is durable; the peer may ship the rest again later.
          this.o.logger.error({ err, peer: this.peer }, 'imp: internal error while processing a bag');
          this.fatal(ErrorClass.MPM_RECOVERABLE, `${ImpErrorString.TRY_AGAIN}: ${(err as Error).message}`, 'internal');
          ok = false;
        }
        if (!ok) return;
      }
    } finally {
      this.processing = false;
    }
    if (this.socket.destroyed) return;
    const fault = this.decoder.failed;
    if (fault && !this.finalSent) {
      this.framingFault(fault);
      return;
    }
    if (this.closing) {
      this.socket.end();
      return;
    }
    this.socket.resume();
    if (this.decoder.idle) this.armIdle();
    else this.armBag();
  }

  /** Processes one bag and writes its replies; false when the connection was closed. */
  private async bag(unit: ShippingUnit): Promise<boolean> {
    let entries;
    try {
      entries = decodeBagEntries(unit.bag, { maxBagBytes: this.o.maxBagBytes, maxDepth: this.o.maxDepth });
    } catch (err) {
      if (!isImpError(err)) throw err;
      this.fatal(ErrorClass.USER_ERROR, `${ImpErrorString.COMMAND_UNRECOGNIZED}: ${err.message}`, 'framing', unit.compression === 1);
      return false;
    }
    this.o.events?.bagReceived?.(entries.length);
    this.o.logger.debug({ peer: this.peer, messages: entries.length, octets: unit.bag.length }, 'imp: bag');
    const replies = await this.o.processor.process(entries, { address: this.peer });
    if (this.socket.destroyed) return false;
    await this.write(replies, unit.compression === 1);
    return !this.socket.destroyed;
  }

  /**
   * Replies in bags of at most REPLIES_PER_BAG and at most imp.maxBagBytes octets (a
   * peer configured as we are takes them; no bag outgrows the format), compressed when
   * the request was.
   */
  private async write(replies: readonly ImpMessage[], compress: boolean): Promise<void> {
    const maxOctets = Math.min(this.o.maxBagBytes, MAX_BAG_OCTETS) - BAG_HEADER_OCTETS;
    for (let i = 0; i < replies.length; ) {
      let end = i;
      for (let octets = 0; end < replies.length && end - i < REPLIES_PER_BAG; end++) {
        octets += encodedSize(messageElement(replies[end]!));
        if (octets > maxOctets && end > i) break;
      }
      const bag = encodeBag(replies.slice(i, end), { sharing: 'none' });
      i = end;
      const unit = encodeShippingUnit(bag, { compress });
      if (!this.socket.write(unit)) await new Promise<void>((resolve) => this.socket.once('drain', resolve).once('close', resolve));
      if (this.socket.destroyed) return;
    }
  }

  /** The octets cannot be framed into shipping units any further: the final reply, then close. */
  private framingFault(err: ImpError): void {
    const cls = err.code === 'ERR_IMP_TOO_LARGE' ? ErrorClass.RESOURCES_UNAVAILABLE : ErrorClass.USER_ERROR;
    const what = cls === ErrorClass.RESOURCES_UNAVAILABLE ? 'Resources unavailable' : ImpErrorString.COMMAND_UNRECOGNIZED;
    this.fatal(cls, `${what}: ${err.message}`, 'framing');
  }

  /**
   * The stream cannot be framed any further (or a deadline passed): one last reply
   * (an ACKNOWLEDGE no naming no transaction: tid (0, 0)) with the error, then close.
   */
  private fatal(errorClass: number, errorString: string, why: string, compress = false): void {
    if (this.socket.destroyed || this.finalSent) return;
    this.finalSent = true;
    this.closing = true;
    this.clearTimers();
    this.o.logger.info({ peer: this.peer, errorClass, error: errorString }, 'imp: closing the connection');
    this.o.events?.connectionClosed?.(why);
    const reply = acknowledgeMessage(
      { tid: NO_TID, stamp: [] },
      { ihn: this.o.ihn, replyTid: this.o.nextReplyTid() },
      { answer: false, reasons: [errorString], howDelivered: [], error: { errorClass, errorString } },
    );
    this.socket.pause();
    this.socket.end(encodeShippingUnit(encodeBag([reply], { sharing: 'none' }), { compress }));
    // A peer that never reads must not keep the socket: give the reply a moment, then go.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
  }

  private armBag(): void {
    if (!this.o.bagTimeout || this.bagTimer) return;
    this.clearIdle();
    this.bagTimer = setTimeout(() => {
      this.bagTimer = undefined;
      if (!this.decoder.idle)
        this.fatal(ErrorClass.RESOURCES_UNAVAILABLE, `Resources unavailable: shipping unit not complete within ${this.o.bagTimeout} ms of its first octet`, 'bag-timeout');
    }, this.o.bagTimeout);
  }

  private clearBag(): void {
    if (this.bagTimer) clearTimeout(this.bagTimer);
    this.bagTimer = undefined;
  }

  private armIdle(): void {
    if (!this.o.idleTimeout || this.processing) return;
    this.clearIdle();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.decoder.idle && !this.processing) {
        this.o.events?.connectionClosed?.('idle');
        this.closing = true;
        this.socket.end();
        setTimeout(() => this.socket.destroy(), 5_000).unref();
      }
    }, this.o.idleTimeout);
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private clearTimers(): void {
    this.clearBag();
    this.clearIdle();
  }
}
