import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { HopTls, NextHop } from '../../config/schema.js';
import { prepareSend, RelayConnection, type Envelope } from './smtp-envelope.js';
import {
  allRecipients,
  hopBusy,
  outcomeOf,
  summaryReply,
  type DeliveryRequest,
  type DeliveryResult,
  type HopBusy,
  type NextHopTransport,
  type RecipientResult,
  type SuccessDsn,
} from './transport.js';

export interface SmtpTransportOptions {
  /** Our EHLO/LHLO name. */
  hostname: string;
  /** Socket inactivity limit for one attempt (queue.attemptTimeout). */
  timeoutMs: number;
  /** TCP connect to the next hop (queue.connectTimeout). */
  connectTimeoutMs?: number;
  /** From the connect to a ready session: greeting, EHLO/LHLO, STARTTLS (queue.greetingTimeout). */
  greetingTimeoutMs?: number;
  /**
   * Attempts in flight to one next hop, one connection each (queue.perNexthopConcurrency).
   * Beyond it an attempt is not made: the group comes back as `HopBusy`.
   */
  maxConnections?: number;
  /** An idle pooled connection is closed after this long. */
  idleMs?: number;
  /**
   * How long an attempt may wait for a connection of a saturated next hop that is making
   * progress (a transaction finished within this long) before it counts as busy.
   */
  handoverMs?: number;
  /** Where a plaintext retry after a failed TLS handshake is reported (warn). */
  logger?: { warn(fields: Record<string, unknown>, msg: string): void };
}

interface SmtpError extends Error {
  code?: string;
  /** nodemailer keeps the system error's code here when it sets its own (ESOCKET). */
  originalCode?: string;
  /** Set by the pool: the error ended a STARTTLS handshake. */
  duringTls?: boolean;
  responseCode?: number;
  response?: string;
  rejectedErrors?: SmtpError[];
  recipient?: string;
}

interface SendInfo {
  accepted?: string[];
  rejected?: string[];
  rejectedErrors?: SmtpError[];
  response?: string;
}

function replyOf(err: SmtpError): string {
  if (err.response) return err.response.replace(/[\r\n]+/g, ' ');
  return `451 4.4.1 ${err.code ?? 'ERROR'} ${err.message}`.replace(/[\r\n]+/g, ' ');
}

/** A connection that can take another message after a protocol-level refusal (not 421). */
function connectionSurvives(err: SmtpError): boolean {
  return (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421;
}

interface Pooled {
  conn: RelayConnection;
  /** Messages sent on it before this one: a reused connection may have been dropped meanwhile. */
  sent: number;
  idleTimer?: NodeJS.Timeout;
  dead: boolean;
  /** LMTP: the reply to the end of DATA for each recipient of the message being sent. */
  lmtpReplies: Map<string, string>;
}

/** A caller waiting for a busy pool's next free connection. */
interface Waiter {
  /** A connection handed over, 'slot' when one closed (connect a new one), undefined: give up. */
  resolve(handed: Pooled | 'slot' | undefined): void;
  timer: NodeJS.Timeout;
}

/**
 * Connections to one next hop: at most `max` open, which is also the number of attempts
 * in flight to it. Idle ones are reused (no RSET needed after a completed transaction)
 * and closed after `idleMs` unused or on any connection-level error.
 *
 * When all `max` are in use, a caller waits for the next one to come free only while the
 * next hop is making progress (a transaction finished within `handoverMs`), at most `max`
 * callers at once and for at most `handoverMs`: a healthy but saturated next hop hands its
 * connections over within milliseconds. Otherwise (a next hop that hangs, or stalls) the
 * caller is told "busy" at once and gives its queue slot back.
 */
class HopPool {
  private readonly idle: Pooled[] = [];
  private readonly waiters: Waiter[] = [];
  private open = 0;
  private closed = false;
  /** When a transaction on one of its connections last finished. */
  private lastDoneAt = -Infinity;

  constructor(
    /** A new connection; `plain`: without STARTTLS whatever the policy. */
    private readonly create: (plain: boolean) => Promise<RelayConnection>,
    private readonly max: number,
    private readonly idleMs: number,
    private readonly lmtp: boolean,
    private readonly handoverMs: number,
    /** After a failed TLS handshake: whether to try the next hop once more in plaintext. */
    private readonly plaintextAfter?: (err: SmtpError) => boolean,
  ) {}

  get limit(): number {
    return this.max;
  }

  /** A ready connection, or undefined when the next hop is busy; rejects when a new one cannot connect. */
  async acquire(): Promise<Pooled | undefined> {
    for (;;) {
      const p = this.idle.pop();
      if (!p) break;
      clearTimeout(p.idleTimer);
      if (!p.dead) return p;
    }
    if (this.closed) return undefined;
    if (this.open < this.max) return this.connect();
    const progressing = Date.now() - this.lastDoneAt < this.handoverMs;
    if (!progressing || this.waiters.length >= this.max) return undefined;
    const handed = await new Promise<Pooled | 'slot' | undefined>((resolve) => {
      const w: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i !== -1) this.waiters.splice(i, 1);
          resolve(undefined);
        }, this.handoverMs),
      };
      this.waiters.push(w);
    });
    return handed === 'slot' ? this.acquire() : handed;
  }

  private nextWaiter(): Waiter | undefined {
    const w = this.waiters.shift();
    if (w) clearTimeout(w.timer);
    return w;
  }

  /**
   * A new connection in a slot of its own. A TLS handshake that fails may be tried once
   * more in plaintext (`plaintextAfter`) in the same slot, so the limit holds throughout.
   */
  private async connect(): Promise<Pooled> {
    this.open++;
    let plain = false;
    for (;;) {
      try {
        return await this.session(plain);
      } catch (e) {
        const err = e as SmtpError;
        if (!plain && err.duringTls && this.plaintextAfter?.(err)) {
          plain = true;
          continue;
        }
        this.open--;
        this.nextWaiter()?.resolve('slot');
        throw err;
      }
    }
  }

  /** One connection set up to a ready session; it counts against the limit once it is. */
  private async session(plain: boolean): Promise<Pooled> {
    const conn = await this.create(plain);
    // dead until ready: the slot is connect()'s until then
    const p: Pooled = { conn, sent: 0, dead: true, lmtpReplies: new Map() };
    if (this.lmtp) captureLmtpReplies(conn, p.lmtpReplies);
    conn.on('end', () => this.gone(p));
    conn.on('error', () => this.gone(p));
    return new Promise((resolve, reject) => {
      let settled = false;
      // A failed connect is reported as an 'error' event, not always to the callback.
      const fail = (err: SmtpError) => {
        if (settled) return;
        settled = true;
        // a failed handshake reaches us as a plain socket error (ESOCKET)
        if ((conn as unknown as { upgrading?: boolean }).upgrading || /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)/.test(err.originalCode ?? '')) err.duringTls = true;
        conn.close();
        reject(err);
      };
      conn.once('error', fail);
      conn.connect((err) => {
        if (err) return fail(err);
        settled = true;
        conn.removeListener('error', fail);
        p.dead = false;
        resolve(p);
      });
    });
  }

  /** The connection no longer counts against the limit (closed, failed or discarded). */
  private gone(p: Pooled): void {
    if (p.dead) return;
    p.dead = true;
    this.open--;
    const i = this.idle.indexOf(p);
    if (i !== -1) this.idle.splice(i, 1);
    clearTimeout(p.idleTimer);
    this.nextWaiter()?.resolve('slot'); // a slot is free: let a waiter connect
  }

  /** Back to the pool; `reusable: false` closes it. */
  release(p: Pooled, reusable: boolean): void {
    if (!reusable || p.dead || this.closed) {
      this.discard(p);
      return;
    }
    p.sent++;
    this.lastDoneAt = Date.now();
    const waiter = this.nextWaiter();
    if (waiter) return waiter.resolve(p);
    p.idleTimer = setTimeout(() => this.discard(p), this.idleMs);
    p.idleTimer.unref();
    this.idle.push(p);
  }

  discard(p: Pooled): void {
    if (p.dead) return;
    this.gone(p);
    p.conn.quit();
    p.conn.close();
  }

  close(): void {
    this.closed = true;
    for (const p of this.idle.splice(0)) this.discard(p);
    for (let w = this.nextWaiter(); w; w = this.nextWaiter()) w.resolve(undefined);
  }
}

/**
 * LMTP answers the end of DATA once per recipient; nodemailer keeps only the refusals.
 * The accepting replies are kept too, so each delivered recipient's record holds its own.
 */
function captureLmtpReplies(conn: SMTPConnection, into: Map<string, string>): void {
  type LmtpStreamAction = (this: SMTPConnection, recipient: string, final: boolean, str: string, callback: unknown) => void;
  const c = conn as unknown as { _actionLMTPStream?: LmtpStreamAction };
  const original = c._actionLMTPStream;
  if (typeof original !== 'function') return;
  c._actionLMTPStream = function (recipient, final, str, callback) {
    into.set(recipient, str.replace(/[\r\n]+/g, ' '));
    return original.call(this, recipient, final, str, callback);
  };
}

/** A TCP connection within `timeoutMs`, or an error with a `code` (ETIMEDOUT, ECONNREFUSED, ...). */
function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no TCP connection to ${host}:${port} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** How a TLS policy maps onto nodemailer's options. */
function tlsOptions(hop: HopTls): Record<string, unknown> {
  const tls = { rejectUnauthorized: hop.tlsVerify };
  switch (hop.tls) {
    case 'none':
      return { ignoreTLS: true };
    case 'opportunistic':
      // a refused STARTTLS goes on in plaintext, as MTAs do between each other
      return { opportunisticTLS: true, tls };
    case 'required':
      return { requireTLS: true, tls };
  }
}

/** A session that could not be set up for TLS reasons: always temporary (the next hop may be fixed). */
function tlsFailure(hop: NetworkHop, err: SmtpError): string | undefined {
  // nodemailer: ETLS for a refused STARTTLS or a failed handshake; ECONNECTION when EHLO failed under requireTLS
  if (err.code !== 'ETLS' && !err.duringTls && !(hop.tls === 'required' && /STARTTLS/.test(err.message))) return undefined;
  const detail = (err.response ?? err.message).replace(/[\r\n]+/g, ' ');
  if (err.response && !err.duringTls) return `451 4.7.4 TLS is required for ${hop.url}, but it did not accept STARTTLS: ${detail}`;
  return `451 4.7.5 TLS with ${hop.url} failed${hop.tlsVerify ? ' (certificate verification on)' : ''}: ${detail}`;
}

type NetworkHop = Extract<NextHop, { kind: 'smtp' | 'lmtp' }>;

/** A certificate that did not pass the checks `tlsVerify` asks for (chain, host name). */
function isVerificationFailure(err: SmtpError): boolean {
  const code = err.originalCode ?? err.code ?? '';
  return /^(CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/.test(code) || /certificate|Hostname\/IP does not match/i.test(err.message);
}

/**
 * SMTP and LMTP next hops on nodemailer's protocol client (SMTPConnection): a small pool
 * of reused connections per next hop, an explicit envelope from the stored addresses,
 * and the spooled bytes streamed as they are (only dot-stuffed). nodemailer's Mailer
 * layer is skipped on purpose: it builds a MIME tree for every message, which cost a
 * relay about a millisecond of CPU per message for nothing.
 */
export class SmtpTransport implements NextHopTransport {
  readonly kind: 'smtp' | 'lmtp';
  private readonly pools = new Map<string, HopPool>();

  constructor(
    kind: 'smtp' | 'lmtp',
    private readonly o: SmtpTransportOptions,
  ) {
    this.kind = kind;
  }

  private pool(hop: NetworkHop): HopPool {
    let p = this.pools.get(hop.url);
    if (!p) {
      const lmtp = hop.kind === 'lmtp';
      const setup = this.o.greetingTimeoutMs ?? 60_000;
      const connectMs = this.o.connectTimeoutMs ?? 30_000;
      const options: SMTPConnection.Options = {
        host: hop.host,
        port: hop.port,
        secure: false,
        lmtp,
        name: this.o.hostname,
        // The TCP connect is ours (openSocket, connectTimeout): nodemailer's connection
        // deadline then covers only the session set-up (greeting, EHLO/LHLO, STARTTLS).
        connectionTimeout: setup,
        greetingTimeout: setup,
        socketTimeout: this.o.timeoutMs,
        ...tlsOptions(hop),
        logger: false,
      };
      const create = async (plain: boolean) =>
        new RelayConnection({ ...options, ...(plain ? tlsOptions({ tls: 'none', tlsVerify: false }) : {}), connection: await openSocket(hop.host, hop.port, connectMs) });
      p = new HopPool(create, this.o.maxConnections ?? 10, this.o.idleMs ?? 30_000, lmtp, this.o.handoverMs ?? 1000, (err) => this.plaintextAfter(hop, err));
      this.pools.set(hop.url, p);
    }
    return p;
  }

  /**
   * Postfix's `may` (TLS_README, "Opportunistic TLS"): when the handshake fails, the
   * transaction is retried with TLS disabled, so mail reaches a next hop whose TLS does
   * not interoperate. Only under `opportunistic`, and not when the certificate failed a
   * verification the route asked for (`tlsVerify: true`): that defers.
   */
  private plaintextAfter(hop: NetworkHop, err: SmtpError): boolean {
    if (hop.tls !== 'opportunistic' || (hop.tlsVerify && isVerificationFailure(err))) return false;
    const reason = (err.response ?? err.message).replace(/[\r\n]+/g, ' ');
    this.o.logger?.warn({ nexthop: hop.url, reason }, 'smtp: TLS handshake failed; retrying in plaintext');
    return true;
  }

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult | HopBusy> {
    if (hop.kind !== 'smtp' && hop.kind !== 'lmtp') throw new TypeError(`SmtpTransport cannot deliver to ${hop.url}`);
    const pool = this.pool(hop);
    // One retry, only when a reused connection turned out dead before a byte was sent.
    for (let attempt = 0; ; attempt++) {
      let p: Pooled | undefined;
      try {
        p = await pool.acquire();
      } catch (e) {
        const err = e as SmtpError;
        return allRecipients(req, 'deferred', tlsFailure(hop, err) ?? replyOf(err));
      }
      if (!p) return hopBusy(req, `451 4.4.5 ${hop.url} has ${pool.limit} attempts in flight (queue.perNexthopConcurrency): not attempted`);
      if (hop.tls === 'required' && !p.conn.secure) {
        pool.discard(p);
        return allRecipients(req, 'deferred', `451 4.7.4 TLS is required for ${hop.url}, but the session is not encrypted`);
      }
      p.lmtpReplies.clear();
      let prepared;
      try {
        prepared = await prepareSend(p.conn, req, hop.kind === 'lmtp', hop.host);
      } catch (e) {
        pool.release(p, true);
        return allRecipients(req, 'deferred', `451 4.3.0 could not read the message: ${(e as Error).message}`);
      }
      if (prepared.kind === 'refuse') {
        pool.release(p, true);
        return allRecipients(req, 'failed', prepared.reply);
      }
      const message = prepared.message();
      // The round's deadline: the connection is dropped and the group deferred (a closed
      // SMTPConnection never calls back a pending send, so the abort rejects it here).
      let abort = () => {};
      const aborted = new Promise<never>((_, reject) => {
        abort = () => {
          reject(Object.assign(new Error('attempt deadline passed'), { code: 'EDEADLINE' }));
          p.conn.close();
        };
      });
      req.signal?.addEventListener('abort', abort, { once: true });
      try {
        if (req.signal?.aborted) abort();
        const info = await Promise.race([send(p.conn, prepared.envelope, message), aborted]);
        pool.release(p, true);
        return this.fromInfo(hop, req, info, p.lmtpReplies, prepared.successDsn);
      } catch (e) {
        const err = e as SmtpError;
        const untouched = (message as Readable & { readableDidRead?: boolean }).readableDidRead === false;
        if (p.sent > 0 && untouched && !err.responseCode && attempt === 0 && !req.signal?.aborted) {
          pool.discard(p);
          continue;
        }
        if (connectionSurvives(err) && !p.dead) {
          const kept = p;
          kept.conn.reset((resetErr) => pool.release(kept, !resetErr));
        } else {
          pool.discard(p);
        }
        return this.fromError(hop, req, err, p.lmtpReplies, prepared.successDsn);
      } finally {
        req.signal?.removeEventListener('abort', abort);
        p.conn.relay = undefined;
        message.destroy();
      }
    }
  }

  /**
   * Each recipient's outcome after the message went through: refused at RCPT (or, over
   * LMTP, after DATA) with its own reply, else delivered with the DATA reply (LMTP: its
   * own). The overall reply is the DATA reply only when every recipient got the message.
   */
  private fromInfo(hop: NetworkHop, req: DeliveryRequest, info: SendInfo, lmtpReplies: ReadonlyMap<string, string>, successDsn: SuccessDsn): DeliveryResult {
    const reply = (info.response ?? '250 ok').replace(/[\r\n]+/g, ' ');
    const failed = new Map<string, SmtpError>();
    for (const e of info.rejectedErrors ?? []) if (e.recipient) failed.set(e.recipient, e);
    const rejected = new Set(info.rejected ?? []);
    const recipients: RecipientResult[] = req.recipients.map((rcpt) => {
      const e = failed.get(rcpt);
      if (e) return { rcpt, outcome: outcomeOf(e.responseCode), reply: replyOf(e) };
      if (rejected.has(rcpt)) return { rcpt, outcome: 'deferred', reply: '451 4.4.0 rejected without a reply' };
      return { rcpt, outcome: 'delivered', reply: lmtpReplies.get(rcpt) ?? reply };
    });
    const all = recipients.every((r) => r.outcome === 'delivered');
    return { reply: all ? reply : summaryReply(hop.url, recipients), recipients, successDsn };
  }

  /**
   * Each recipient's outcome when the send failed. An LMTP hop that hung up (or ran past
   * the deadline) after answering the end of DATA for some recipients has delivered
   * those it said 2xx to (RFC 2033 4.2): they keep their own reply, never retried.
   */
  private fromError(hop: NetworkHop, req: DeliveryRequest, err: SmtpError, lmtpReplies: ReadonlyMap<string, string>, successDsn: SuccessDsn): DeliveryResult {
    const answered = req.recipients.filter((rcpt) => lmtpReplies.has(rcpt));
    if (answered.length) {
      const byRcpt = new Map((err.rejectedErrors ?? []).map((r) => [r.recipient, r]));
      const recipients: RecipientResult[] = req.recipients.map((rcpt) => {
        const reply = lmtpReplies.get(rcpt);
        if (reply !== undefined) return { rcpt, outcome: outcomeOf(Number(reply.slice(0, 3))), reply };
        const r = byRcpt.get(rcpt);
        return r ? { rcpt, outcome: outcomeOf(r.responseCode), reply: replyOf(r) } : { rcpt, outcome: 'deferred', reply: replyOf(err) };
      });
      return { reply: summaryReply(hop.url, recipients), recipients, successDsn };
    }
    if (err.rejectedErrors?.length) {
      const byRcpt = new Map(err.rejectedErrors.map((r) => [r.recipient, r]));
      return {
        reply: replyOf(err),
        recipients: req.recipients.map((rcpt) => {
          const r = byRcpt.get(rcpt);
          return r ? { rcpt, outcome: outcomeOf(r.responseCode), reply: replyOf(r) } : { rcpt, outcome: outcomeOf(err.responseCode), reply: replyOf(err) };
        }),
      };
    }
    // No reply code: connection refused, timeout, TLS failure... all temporary.
    return allRecipients(req, err.responseCode ? outcomeOf(err.responseCode) : 'deferred', replyOf(err));
  }

  async close(): Promise<void> {
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }
}

function send(conn: RelayConnection, envelope: Envelope, message: Readable): Promise<SendInfo> {
  return new Promise((resolve, reject) => {
    conn.send(envelope, message, (err, info) => (err ? reject(err) : resolve(info as SendInfo)));
  });
}
