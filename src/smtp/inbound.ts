import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerSession, SMTPServerAuthentication } from 'smtp-server';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { BareNewlineScanner } from './bare-newline.js';
import { ConnectionRateLimit } from './connection-rate.js';
import { tooBig } from './data-limit.js';
import { GatewaySmtpServer, type CapturedAddress, type GatewaySmtpOptions, type SmtpRefusal } from './gateway-smtp-server.js';
import type { AcceptPath, IncomingMessage } from '../delivery/accept.js';
import { receivedHeader } from './received.js';
import { RelayPolicy, normaliseIp } from './relay-policy.js';
import { SmtpReplyError } from './reply.js';
import { addressKey } from '../delivery/address.js';
import { resolveRoute, type Route } from '../delivery/routes.js';
import type { SpoolWriter } from '../delivery/spool.js';
import type { MessageParams, RecipientParams } from '../store/queue-store.js';
import { mailParams, postmasterAddress, recipientParams, refuseSourceRoutedLocalPart } from './envelope-params.js';

/** What the inbound side tells the rest of the gateway. */
export interface InboundEvents {
  accepted?(qid: string, size: number): void;
  /** Every 4xx/5xx reply a client got, by the code it got. */
  rejected?(code: number): void;
}

/** The listener's part of /healthz. */
export interface ListenerHealth {
  ok: boolean;
  reason?: string;
  connections: number;
  maxConnections: number;
}

export class SmtpListenError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SmtpListenError';
  }
}

export interface InboundOptions {
  config: Config;
  /** The durable accept path shared with the other listeners. */
  accept: AcceptPath;
  logger: Logger;
  routes: readonly Route[];
  events?: InboundEvents;
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
  private readonly connectionRate: ConnectionRateLimit;
  /** session id -> why its current transaction failed, for the refusal's log line. */
  private readonly failures = new Map<string, Error>();
  private listening = false;
  private activeTransactions = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: InboundOptions) {
    const s = o.config.smtp;
    this.policy = new RelayPolicy(s.localDomains, s.trustedNetworks);
    this.connectionRate = new ConnectionRateLimit(s.maxConnectionRatePerIp);
    const disabled: string[] = [];
    const options: GatewaySmtpOptions = {
      name: o.config.gateway.hostname,
      // smtp-server writes "220 NAME ESMTP BANNER": the banner names the software only.
      banner: 'mailbag',
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
    this.server = new GatewaySmtpServer(options, { commandTimeout: s.commandTimeout, dataTimeout: s.dataTimeout }, (r) => this.refused(r));
    this.server.on('error', (err: Error & { code?: string; remoteAddress?: string }) => {
      // An error while binding is listen()'s to report (one line from `mailbag start`).
      if (!this.listening) return;
      if (err.remoteAddress !== undefined) {
        o.logger.warn({ client: normaliseIp(err.remoteAddress), err: { message: err.message, code: err.code } }, 'smtp connection error');
      } else {
        o.logger.error({ err: { message: err.message, code: err.code } }, 'smtp listener error');
      }
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new SmtpListenError(err.code ?? 'ERR_MAILBAG_SMTP_LISTEN', `smtp listener ${host}:${port}: ${err.message}`));
      };
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.removeListener('error', onError);
        this.listening = true;
        resolve(this.server.server.address() as AddressInfo);
      });
    });
  }

  /** Unhealthy while not listening or while every connection slot is taken. */
  health(): ListenerHealth {
    const connections = this.server.connections.size;
    const maxConnections = this.o.config.smtp.maxConnections;
    const base = { connections, maxConnections };
    if (!this.server.server.listening) return { ok: false, reason: 'the SMTP listener is not accepting connections', ...base };
    if (connections >= maxConnections) {
      return { ok: false, reason: `every connection slot is taken (${connections} of smtp.maxConnections ${maxConnections}): new clients get 421`, ...base };
    }
    return { ok: true, ...base };
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
    for (const conn of [...this.server.connections]) {
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
    // Trusted networks (the MTAs in front) are exempt, as Postfix exempts $mynetworks.
    if (!this.policy.isTrusted(ip) && !this.connectionRate.admit(ip)) {
      return cb(new SmtpReplyError(421, '4.7.0', `Too many connections from ${ip} per minute, try again later`));
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
    this.failures.delete(session.id);
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
      parsed.mail = mailParams(parsed.written);
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
      return cb(err as SmtpReplyError); // logged with the reply as sent, see refused()
    }
    dropEarlierSpellings(session.envelope.rcptTo, address);
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
        // the line's fields are built only when the level lets it out
        if (this.o.logger.isLevelEnabled('info')) {
          this.o.logger.info({ qid, from, rcpts, size, client, helo: session.hostNameAppearsAs, result: 'queued' }, 'smtp transaction');
        }
        this.o.events?.accepted?.(qid, size);
        cb(null, `Ok: queued as ${qid}`);
        this.transactionDone();
      },
      (err: Error) => {
        const reply =
          err instanceof SmtpReplyError
            ? err
            : new SmtpReplyError(451, '4.3.0', 'Local error in processing, try again later', 'ERR_MAILBAG_ACCEPT');
        this.transactionFailed(session, err);
        cb(reply);
        this.transactionDone();
      },
    );
  }

  /**
   * The log line of every error reply a client got, with the reply as it was written,
   * and the rejection metric by that reply's code.
   */
  private refused(r: SmtpRefusal): void {
    if (!r.written) return this.unanswered(r);
    this.o.events?.rejected?.(r.code);
    const s = r.session;
    const mailFrom = s.envelope?.mailFrom || undefined;
    const declared = mailFrom?.args && typeof mailFrom.args === 'object' ? (mailFrom.args as Record<string, unknown>).SIZE : undefined;
    const fields: Record<string, unknown> = {
      client: normaliseIp(r.client),
      helo: s.hostNameAppearsAs || undefined,
      from: mailFrom ? mailFrom.address : undefined,
      rcpts: s.envelope?.rcptTo?.length ? s.envelope.rcptTo.map((x) => x.address) : undefined,
      size: r.endOfData ? r.dataBytes : typeof declared === 'string' && /^\d+$/.test(declared) ? Number(declared) : undefined,
      command: r.command,
      result: 'rejected',
      reply: r.reply,
    };
    if (r.endOfData) {
      const err = this.failures.get(s.id);
      this.failures.delete(s.id);
      if (err && !(err instanceof SmtpReplyError)) fields.err = err.message;
      this.o.logger.info(fields, 'smtp transaction');
    } else if (r.command === 'RCPT') {
      this.o.logger.info({ ...fields, rcpt: r.address }, 'smtp recipient refused');
    } else {
      if (r.command === 'MAIL' && fields.from === undefined) fields.from = r.address;
      this.o.logger.info(fields, 'smtp refused');
    }
  }

  /** Keeps why a transaction failed, for its refusal line. */
  private transactionFailed(session: SMTPServerSession, err: Error): void {
    this.failures.set(session.id, err);
  }

  /**
   * A transaction whose outcome the client could not get (it went away mid-DATA) is
   * still logged, as such; other replies nobody got are nothing to report.
   */
  private unanswered(r: SmtpRefusal): void {
    const err = this.failures.get(r.session.id);
    this.failures.delete(r.session.id);
    if (!r.endOfData) return;
    const s = r.session;
    this.o.logger.info(
      {
        client: normaliseIp(r.client),
        helo: s.hostNameAppearsAs || undefined,
        from: s.envelope.mailFrom ? s.envelope.mailFrom.address : '',
        rcpts: s.envelope.rcptTo.map((x) => x.address),
        size: r.dataBytes,
        result: 'disconnected',
        err: err?.message,
      },
      'smtp transaction',
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
      const { params, recipientParams } = envelopeParams(session);
      incoming = await this.o.accept.open({
        sender: from,
        ...(params ? { mail: params } : {}),
        recipients: rcpts.map((address) => ({ address, ...recipientParams[address] })),
        client: {
          address: normaliseIp(session.remoteAddress),
          ...(session.clientHostname ? { hostname: session.clientHostname } : {}),
          ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}),
          ...(typeof session.user === 'string' ? { authUser: session.user } : {}),
          session: sessionInfo(session),
        },
      });
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
      return await this.o.accept.commit(incoming);
    } catch (err) {
      if (incoming) await this.o.accept.abort(incoming);
      throw err;
    }
  }
}

/**
 * A repeated recipient replaces the earlier one, as smtp-server does, but smtp-server
 * compares the addresses as it decoded them, before the postmaster rule, and keeps an
 * upper-case `XN--` label as it is: `bob@xn--bcher-kva.example` and
 * `bob@XN--BCHER-KVA.example` (or `bob@bücher.example`) would be two recipients, and
 * the mailbox would get the message twice. Compared here in the one normal form.
 */
function dropEarlierSpellings(rcptTo: SMTPServerAddress[], address: string): void {
  const key = mailboxKey(address);
  // a set per transaction (smtp-server starts a new list for each): one lookup per RCPT,
  // the list is scanned only for a mailbox already in it
  let keys = mailboxKeys.get(rcptTo);
  if (!keys) mailboxKeys.set(rcptTo, (keys = new Set()));
  if (keys.has(key)) {
    for (let i = rcptTo.length - 1; i >= 0; i--) if (mailboxKey(rcptTo[i]!.address) === key) rcptTo.splice(i, 1);
  }
  keys.add(key);
}

const mailboxKeys = new WeakMap<SMTPServerAddress[], Set<string>>();

function mailboxKey(address: string): string {
  return addressKey(address) ?? address.toLowerCase();
}

/** The MAIL FROM and RCPT TO parameters to store with the message. */
function envelopeParams(session: SMTPServerSession): { params: MessageParams | undefined; recipientParams: Record<string, RecipientParams> } {
  const from = session.envelope.mailFrom as CapturedAddress | false;
  const recipientParams: Record<string, RecipientParams> = {};
  for (const r of session.envelope.rcptTo as CapturedAddress[]) if (r.stored) recipientParams[r.address] = r.stored;
  return { params: from ? from.mail : undefined, recipientParams }; // `mail` was parsed once, by onMailFrom
}

/**
 * Writes the client's DATA, through the size limit and the smuggling guard, into the
 * spool writer: chunk by chunk from the stream's 'data' events (pausing it while the
 * writer is full), with no stream per stage in between. On any failure the rest of the
 * client's DATA is drained (smtp-server answers once it has seen the end), never
 * destroyed mid-stream.
 */
function receiveInto(stream: Readable, writer: SpoolWriter, maxBytes: number, policy: 'reject' | 'normalise'): Promise<void> {
  return new Promise((resolve, reject) => {
    const guard = new BareNewlineScanner(policy);
    let bytes = 0;
    let settled = false;
    let ended = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      stream.removeListener('data', onData);
      if (!stream.destroyed) stream.resume();
      reject(err);
    };
    const resume = () => {
      if (!settled) stream.resume();
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (maxBytes > 0 && bytes > maxBytes) return fail(tooBig(maxBytes));
      let out: Buffer;
      try {
        out = guard.pass(chunk);
      } catch (err) {
        return fail(err as Error);
      }
      if (!writer.write(out)) {
        stream.pause();
        writer.once('drain', resume);
      }
    };
    stream.once('end', () => {
      ended = true;
      if (settled) return;
      let tail: Buffer | undefined;
      try {
        tail = guard.end();
      } catch (err) {
        return fail(err as Error);
      }
      if (tail) writer.end(tail);
      else writer.end();
    });
    stream.once('close', () => {
      if (!ended) fail(Object.assign(new Error('client disconnected before the end of DATA'), { code: 'ERR_MAILBAG_DISCONNECTED' }));
    });
    stream.on('error', fail);
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
    stream.on('data', onData);
  });
}

/** The session as PoD message events report it (`connection.sid`, `protocol`, `tls.inbound`). */
function sessionInfo(session: SMTPServerSession): { id: string; protocol: string; tls?: { version: string; cipher?: string } } {
  const cipher = session.tlsOptions ? (session.tlsOptions as { name?: string; version?: string }) : undefined;
  return {
    id: session.id,
    protocol: session.transmissionType || 'ESMTP',
    ...(cipher?.version ? { tls: { version: cipher.version, ...(cipher.name ? { cipher: cipher.name } : {}) } } : {}),
  };
}
