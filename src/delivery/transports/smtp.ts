import type { Readable } from 'node:stream';
import type { NextHop } from '../../config/schema.js';
import { prepareSend, RelayConnection, type Envelope } from './smtp-envelope.js';
import { allRecipients, outcomeOf, type DeliveryRequest, type DeliveryResult, type NextHopTransport, type RecipientResult, type SuccessDsn } from './transport.js';

export interface SmtpTransportOptions {
  /** Our EHLO/LHLO name. */
  hostname: string;
  /** Socket inactivity limit for one attempt (queue.attemptTimeout). */
  timeoutMs: number;
  /** Connections kept per next hop. */
  maxConnections?: number;
  /** An idle pooled connection is closed after this long. */
  idleMs?: number;
}

interface SmtpError extends Error {
  code?: string;
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
}

/**
 * Connections to one next hop: up to `max` open, idle ones reused (no RSET needed after
 * a completed transaction), closed after `idleMs` unused or on any connection-level error.
 */
class HopPool {
  private readonly idle: Pooled[] = [];
  private open = 0;
  private readonly waiters: ((p: Pooled | undefined) => void)[] = [];
  private closed = false;

  constructor(
    private readonly create: () => RelayConnection,
    private readonly max: number,
    private readonly idleMs: number,
  ) {}

  /** A ready connection; rejects when a new one cannot connect. */
  async acquire(): Promise<Pooled> {
    for (;;) {
      const p = this.idle.pop();
      if (!p) break;
      clearTimeout(p.idleTimer);
      if (!p.dead) return p;
    }
    if (this.open < this.max) return this.connect();
    const handed = await new Promise<Pooled | undefined>((r) => this.waiters.push(r));
    return handed ?? this.acquire();
  }

  private connect(): Promise<Pooled> {
    this.open++;
    const conn = this.create();
    const p: Pooled = { conn, sent: 0, dead: false };
    const gone = () => {
      if (p.dead) return;
      p.dead = true;
      this.open--;
      const i = this.idle.indexOf(p);
      if (i !== -1) this.idle.splice(i, 1);
      clearTimeout(p.idleTimer);
      this.waiters.shift()?.(undefined); // a slot is free: let a waiter connect
    };
    conn.on('end', gone);
    conn.on('error', gone);
    return new Promise((resolve, reject) => {
      let settled = false;
      // A failed connect is reported as an 'error' event, not always to the callback.
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        gone();
        conn.close();
        reject(err);
      };
      conn.once('error', fail);
      conn.connect((err) => {
        if (err) return fail(err);
        settled = true;
        conn.removeListener('error', fail);
        resolve(p);
      });
    });
  }

  /** Back to the pool (or straight to a waiter); `reusable: false` closes it. */
  release(p: Pooled, reusable: boolean): void {
    if (!reusable || p.dead || this.closed) {
      this.discard(p);
      return;
    }
    p.sent++;
    const waiter = this.waiters.shift();
    if (waiter) return waiter(p);
    p.idleTimer = setTimeout(() => this.discard(p), this.idleMs);
    p.idleTimer.unref();
    this.idle.push(p);
  }

  discard(p: Pooled): void {
    if (!p.dead) {
      p.conn.quit();
      p.conn.close();
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.idle.splice(0)) this.discard(p);
    for (const w of this.waiters.splice(0)) w(undefined);
  }
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

  private pool(hop: Extract<NextHop, { kind: 'smtp' | 'lmtp' }>): HopPool {
    let p = this.pools.get(hop.url);
    if (!p) {
      const options = {
        host: hop.host,
        port: hop.port,
        secure: false,
        lmtp: hop.kind === 'lmtp',
        name: this.o.hostname,
        connectionTimeout: Math.min(30_000, this.o.timeoutMs),
        greetingTimeout: Math.min(30_000, this.o.timeoutMs),
        socketTimeout: this.o.timeoutMs,
        // Opportunistic STARTTLS, as MTAs do between each other: an unverifiable
        // certificate still beats plaintext.
        tls: { rejectUnauthorized: false },
        logger: false,
      };
      p = new HopPool(() => new RelayConnection(options), this.o.maxConnections ?? 10, this.o.idleMs ?? 30_000);
      this.pools.set(hop.url, p);
    }
    return p;
  }

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult> {
    if (hop.kind !== 'smtp' && hop.kind !== 'lmtp') throw new TypeError(`SmtpTransport cannot deliver to ${hop.url}`);
    const pool = this.pool(hop);
    // One retry, only when a reused connection turned out dead before a byte was sent.
    for (let attempt = 0; ; attempt++) {
      let p: Pooled;
      try {
        p = await pool.acquire();
      } catch (e) {
        return allRecipients(req, 'deferred', replyOf(e as SmtpError));
      }
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
      try {
        const info = await send(p.conn, prepared.envelope, message);
        pool.release(p, true);
        return this.fromInfo(req, info, prepared.successDsn);
      } catch (e) {
        const err = e as SmtpError;
        const untouched = (message as Readable & { readableDidRead?: boolean }).readableDidRead === false;
        if (p.sent > 0 && untouched && !err.responseCode && attempt === 0) {
          pool.discard(p);
          continue;
        }
        if (connectionSurvives(err) && !p.dead) {
          p.conn.reset((resetErr) => pool.release(p, !resetErr));
        } else {
          pool.discard(p);
        }
        return this.fromError(req, err);
      } finally {
        p.conn.relay = undefined;
        message.destroy();
      }
    }
  }

  private fromInfo(req: DeliveryRequest, info: SendInfo, successDsn: SuccessDsn): DeliveryResult {
    const reply = (info.response ?? '250 ok').replace(/[\r\n]+/g, ' ');
    const failed = new Map<string, SmtpError>();
    for (const e of info.rejectedErrors ?? []) if (e.recipient) failed.set(e.recipient, e);
    const rejected = new Set(info.rejected ?? []);
    const recipients: RecipientResult[] = req.recipients.map((rcpt) => {
      const e = failed.get(rcpt);
      if (e) return { rcpt, outcome: outcomeOf(e.responseCode), reply: replyOf(e) };
      if (rejected.has(rcpt)) return { rcpt, outcome: 'deferred', reply: '451 4.4.0 rejected without a reply' };
      return { rcpt, outcome: 'delivered', reply };
    });
    return { reply, recipients, successDsn };
  }

  private fromError(req: DeliveryRequest, err: SmtpError): DeliveryResult {
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
