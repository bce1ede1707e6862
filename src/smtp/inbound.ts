import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions, type SMTPServerSession, type SMTPServerAuthentication } from 'smtp-server';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { BareNewlineGuard } from './bare-newline.js';
import { ByteLimit } from './data-limit.js';
import type { AcceptedEnvelope, AcceptPath, IncomingMessage } from '../delivery/accept.js';
import { receivedHeader } from './received.js';
import { RelayPolicy, normaliseIp } from './relay-policy.js';
import { SmtpReplyError, splitEnhancedCode } from './reply.js';
import { resolveRoute, type Route } from '../delivery/routes.js';
import type { SpoolWriter } from '../delivery/spool.js';
import type { RecipientParams } from '../store/queue-store.js';
import { mailParams, postmasterAddress, recipientParams, refuseSourceRoutedLocalPart, writtenCommand, type WrittenCommand } from './envelope-params.js';

/** What the inbound side tells the rest of the gateway. */
export interface InboundEvents {
  accepted?(qid: string, size: number): void;
  /** Every 4xx/5xx reply mailbag sends to a client. */
  rejected?(code: number): void;
}

export interface InboundOptions {
  config: Config;
  /** The durable accept path shared with the other listeners. */
  accept: AcceptPath;
  logger: Logger;
  routes: readonly Route[];
  events?: InboundEvents;
}

/** smtp-server options plus the greeting-delay option the gateway sets (see docs/smtp.md). */
interface GatewaySmtpOptions extends SMTPServerOptions {
  earlyTalkerDelay?: number;
}

interface ConnectionLike {
  send(code: number, data?: string | string[] | null, context?: string | false): void;
  close(): void;
  _parseAddressCommand(name: string, command: Buffer | string): SMTPServerAddress | false;
}

/** smtp-server's parsed MAIL FROM / RCPT TO, plus the command as the client wrote it. */
interface CapturedAddress extends SMTPServerAddress {
  written?: WrittenCommand;
  /** RCPT TO: the parameters mailbag stores for this recipient. */
  stored?: RecipientParams;
}

/**
 * smtp-server with mailbag's reply conventions: an application error whose text leads
 * with an enhanced status code (SmtpReplyError) is sent with that code instead of the
 * library's per-reply-code default (550 would otherwise always say 5.1.1), and an
 * over-long command line gets 500 5.5.2 (RFC 5321 4.5.3.1.4) rather than a 421.
 */
class GatewaySmtpServer extends SMTPServer {
  onReply?: (code: number) => void;
  private readonly wrapped = new WeakSet<object>();

  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    super.connect(socket, socketOptions);
    // smtp-server adds the new connection last (a Set keeps insertion order), unless it
    // refused it on the spot (maxClients): then the last one is an older, wrapped one.
    let newest: ConnectionLike | undefined;
    for (const c of this.connections) newest = c as unknown as ConnectionLike;
    if (!newest || this.wrapped.has(newest)) return;
    const conn = newest;
    this.wrapped.add(conn);
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      if (code >= 400) this.onReply?.(code);
      if (code === 421 && data === 'Error: Command line too long') {
        send(500, '5.5.2 Error: command line too long', false);
        return conn.close();
      }
      // the text already leads with its enhanced status code: do not add another
      if (code >= 400 && typeof data === 'string' && splitEnhancedCode(data)) return send(code, data, false);
      send(code, data, context);
    };
    // Keep the address and parameters as written: smtp-server turns punycode domains into
    // UTF-8 and decodes xtext before the application sees them (see envelope-params.ts).
    const parse = conn._parseAddressCommand.bind(conn);
    conn._parseAddressCommand = (name, command) => {
      const parsed: CapturedAddress | false = parse(name, command);
      if (parsed) {
        const written = writtenCommand(command.toString());
        if (written) parsed.written = written;
      }
      return parsed;
    };
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The SMTP listener and the accept path: stream DATA through the smuggling guard into
 * the spool, fsync, commit the store row, then (and only then) 250 with the qid.
 */
export class InboundServer {
  readonly server: GatewaySmtpServer;
  private readonly policy: RelayPolicy;
  private readonly perIp = new Map<string, number>();
  /** session id -> the IP it was counted under (XCLIENT/PROXY may change the session's). */
  private readonly counted = new Map<string, string>();
  private activeTransactions = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: InboundOptions) {
    const s = o.config.smtp;
    this.policy = new RelayPolicy(s.localDomains, s.trustedNetworks);
    const disabled: string[] = [];
    const options: GatewaySmtpOptions = {
      name: o.config.gateway.hostname,
      banner: 'mailbag ESMTP',
      logger: false,
      size: s.maxMessageBytes,
      rejectOversized: true,
      maxClients: s.maxConnections,
      maxRecipients: s.maxRecipients,
      maxCommandLength: s.maxLineLength,
      socketTimeout: s.socketTimeout,
      hideENHANCEDSTATUSCODES: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      hideDSN: false,
      disableReverseLookup: !s.reverseDns,
      useProxy: s.proxyProtocol,
      useXClient: s.xclient,
      authOptional: true,
      allowInsecureAuth: s.auth?.allowInsecure ?? false,
      earlyTalkerDelay: s.greetingDelay,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onClose: (session) => this.onClose(session),
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    };
    if (s.tls) {
      // Never the library's built-in certificate: STARTTLS only with the operator's own.
      options.key = readFileSync(s.tls.key);
      options.cert = readFileSync(s.tls.cert);
    } else {
      options.hideSTARTTLS = true;
      disabled.push('STARTTLS');
    }
    if (!s.auth) disabled.push('AUTH');
    options.disabledCommands = disabled;
    this.server = new GatewaySmtpServer(options);
    this.server.onReply = (code) => o.events?.rejected?.(code);
    this.server.on('error', (err: Error) => o.logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'smtp connection error'));
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.removeListener('error', onError);
        resolve(this.server.server.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo {
    return this.server.server.address() as AddressInfo;
  }

  get transactionsInFlight(): number {
    return this.activeTransactions;
  }

  /**
   * Graceful stop: no new connections, let DATA transactions in flight finish (up to
   * `graceMs`), then tell the remaining (idle) clients 421 and close their sockets.
   * Resolves when every socket is gone (bounded: a client that never closes its side
   * is cut off by smtp-server's half-close deadline, and we stop waiting after 2 s).
   */
  async close(graceMs: number): Promise<void> {
    const net = this.server.server;
    const closed = net.listening ? new Promise<void>((r) => net.once('close', () => r())) : Promise.resolve();
    if (net.listening) net.close();
    if (this.activeTransactions > 0) {
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    for (const c of [...this.server.connections]) {
      const conn = c as unknown as ConnectionLike;
      conn.send(421, '4.3.2 Service shutting down, try again later', false);
      conn.close();
    }
    await Promise.race([closed, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const ip = normaliseIp(session.remoteAddress);
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.o.config.smtp.maxConnectionsPerIp) {
      return cb(new SmtpReplyError(421, '4.7.0', `Too many connections from ${ip}, try again later`));
    }
    this.perIp.set(ip, n + 1);
    this.counted.set(session.id, ip);
    // XCLIENT rewrites who the client is: only a trusted MTA may use it.
    if (this.o.config.smtp.xclient && !this.policy.isTrusted(ip)) {
      session.disabledCommands = [...(this.server.options.disabledCommands ?? []), 'XCLIENT'];
    }
    cb();
  }

  private onClose(session: SMTPServerSession): void {
    const ip = this.counted.get(session.id);
    if (ip === undefined) return;
    this.counted.delete(session.id);
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  private onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, cb: (err: Error | null | undefined, res?: { user?: unknown }) => void): void {
    const users = this.o.config.smtp.auth?.users ?? [];
    const given = digest(`${auth.username ?? ''}\0${auth.password ?? ''}`);
    const ok = users.some((u) => timingSafeEqual(digest(`${u.username}\0${u.password}`), given));
    if (!ok) return cb(new SmtpReplyError(535, '5.7.8', 'Authentication credentials invalid'));
    cb(null, { user: auth.username });
  }

  private onMailFrom(parsed: CapturedAddress, _session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (!parsed.written) return cb(new SmtpReplyError(501, '5.5.4', 'Bad MAIL FROM syntax'));
    try {
      mailParams(parsed.written);
    } catch (err) {
      return cb(err as Error);
    }
    parsed.address = parsed.written.address;
    cb();
  }

  private onRcptTo(parsed: CapturedAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    let address = parsed.written ? parsed.written.address : parsed.address;
    try {
      address = this.recipientRules(parsed, session);
    } catch (err) {
      const refusal = err as SmtpReplyError;
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      this.o.logger.info({ from, rcpt: address, client: normaliseIp(session.remoteAddress), result: 'rejected', reply: `${refusal.responseCode} ${refusal.message}` }, 'smtp recipient refused');
      return cb(refusal);
    }
    cb();
  }

  /**
   * Parameters, address rules, relay policy and routing for one RCPT TO; throws the
   * refusal. On success the recipient carries its stored parameters and the address
   * mailbag relays (as written, or the postmaster rule's).
   */
  private recipientRules(parsed: CapturedAddress, session: SMTPServerSession): string {
    const written = parsed.written;
    if (!written) throw new SmtpReplyError(501, '5.5.4', 'Bad RCPT TO syntax');
    const stored = recipientParams(written, !!session.envelope.smtpUtf8);
    let address = written.address;
    if (address.toLowerCase() === 'postmaster') {
      // RFC 5321 4.5.1: accepted without a domain; routed by the rule in postmasterAddress
      const to = postmasterAddress(this.o.config.smtp.localDomains);
      if (!to) throw new SmtpReplyError(550, '5.1.2', 'No local domain configured to deliver <postmaster> to');
      // RFC 3461 4.2: a relay that changes the address may add ORCPT with the address as received
      stored.orcpt ??= `rfc822;${address}`;
      address = to;
    }
    refuseSourceRoutedLocalPart(address);
    const client = { ip: session.remoteAddress, authenticated: !!session.user };
    if (!this.policy.mayRelay(address, client)) throw new SmtpReplyError(550, '5.7.1', `Relay access denied for <${address}>`);
    if (!resolveRoute(this.o.routes, address)) throw new SmtpReplyError(550, '5.1.2', `No route to the domain of <${address}>`);
    parsed.stored = stored;
    parsed.address = address;
    return address;
  }

  private onData(stream: Readable & { sizeExceeded?: boolean }, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    this.activeTransactions++;
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const rcpts = session.envelope.rcptTo.map((r) => r.address);
    const client = session.remoteAddress;
    this.accept(stream, session, from, rcpts).then(
      ({ qid, size }) => {
        this.o.logger.info({ qid, from, rcpts, size, client, helo: session.hostNameAppearsAs, result: 'queued' }, 'smtp transaction');
        this.o.events?.accepted?.(qid, size);
        cb(null, `Ok: queued as ${qid}`);
        this.transactionDone();
      },
      (err: Error) => {
        const reply =
          err instanceof SmtpReplyError
            ? err
            : new SmtpReplyError(451, '4.3.0', 'Local error in processing, try again later', 'ERR_MAILBAG_ACCEPT');
        this.o.logger.info(
          { from, rcpts, client, result: 'rejected', reply: `${reply.responseCode} ${reply.message}`, err: err === reply ? undefined : err.message },
          'smtp transaction',
        );
        cb(reply);
        this.transactionDone();
      },
    );
  }

  private transactionDone(): void {
    if (--this.activeTransactions === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async accept(
    stream: Readable & { sizeExceeded?: boolean },
    session: SMTPServerSession,
    from: string,
    rcpts: string[],
  ): Promise<{ qid: string; size: number }> {
    let incoming: IncomingMessage | undefined;
    try {
      incoming = await this.o.accept.open();
      const { qid, writer } = incoming;
      writer.write(
        receivedHeader({
          helo: session.hostNameAppearsAs || 'unknown',
          clientHostname: session.clientHostname && session.clientHostname !== `[${session.remoteAddress}]` ? session.clientHostname : undefined,
          clientAddress: normaliseIp(session.remoteAddress),
          by: this.o.config.gateway.hostname,
          protocol: session.transmissionType || 'ESMTP',
          qid,
          recipient: rcpts.length === 1 ? rcpts[0] : undefined,
          date: new Date(incoming.receivedAt),
        }),
      );
      await receiveInto(stream, writer, this.o.config.smtp.maxMessageBytes, this.o.config.smtp.bareNewline);
      if (stream.sizeExceeded) throw new SmtpReplyError(552, '5.3.4', 'Message exceeds fixed maximum message size');
      return await this.o.accept.commit(incoming, {
        envelopeFrom: from,
        clientAddress: normaliseIp(session.remoteAddress),
        clientHostname: session.clientHostname || undefined,
        helo: session.hostNameAppearsAs || undefined,
        authUser: typeof session.user === 'string' ? session.user : undefined,
        recipients: rcpts,
        ...envelopeParams(session),
      });
    } catch (err) {
      if (incoming) await this.o.accept.abort(incoming);
      throw err;
    }
  }
}

/** The MAIL FROM and RCPT TO parameters to store with the message. */
function envelopeParams(session: SMTPServerSession): Pick<AcceptedEnvelope, 'params' | 'recipientParams'> {
  const from = session.envelope.mailFrom as CapturedAddress | false;
  const recipientParams: Record<string, RecipientParams> = {};
  for (const r of session.envelope.rcptTo as CapturedAddress[]) if (r.stored) recipientParams[r.address] = r.stored;
  return { params: from && from.written ? mailParams(from.written) : undefined, recipientParams };
}

/**
 * Pipes the client's DATA through the size limit and the smuggling guard into the
 * spool writer. On any failure the rest of the client's DATA is drained (smtp-server
 * answers once it has seen the end), never destroyed mid-stream.
 */
function receiveInto(stream: Readable, writer: SpoolWriter, maxBytes: number, policy: 'reject' | 'normalise'): Promise<void> {
  return new Promise((resolve, reject) => {
    const limit = new ByteLimit(maxBytes);
    const guard = new BareNewlineGuard(policy);
    let settled = false;
    let ended = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      stream.unpipe(limit);
      limit.unpipe(guard);
      guard.unpipe(writer);
      if (!stream.destroyed) stream.resume();
      reject(err);
    };
    stream.once('end', () => (ended = true));
    stream.once('close', () => {
      if (!ended) fail(Object.assign(new Error('client disconnected before the end of DATA'), { code: 'ERR_MAILBAG_DISCONNECTED' }));
    });
    stream.on('error', fail);
    limit.on('error', fail);
    guard.on('error', fail);
    writer.on('error', fail);
    writer.once('finish', () => {
      if (settled) return;
      settled = true;
      resolve();
    });
    // The client may have gone while the spool file was being opened: then the stream
    // was destroyed before these listeners existed and would never say so again.
    if (stream.destroyed && !stream.readableEnded) {
      fail(Object.assign(new Error('client disconnected before the end of DATA'), { code: 'ERR_MAILBAG_DISCONNECTED' }));
      return;
    }
    stream.pipe(limit).pipe(guard).pipe(writer);
  });
}
