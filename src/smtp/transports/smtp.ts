import nodemailer, { type Transporter, type TransportOptions, type SendMailOptions } from 'nodemailer';
import type { NextHop } from '../../config/schema.js';
import { allRecipients, outcomeOf, type DeliveryRequest, type DeliveryResult, type NextHopTransport, type RecipientResult } from './transport.js';

export interface SmtpTransportOptions {
  /** Our EHLO/LHLO name. */
  hostname: string;
  /** Socket inactivity limit for one attempt (queue.attemptTimeout). */
  timeoutMs: number;
  /** Connections kept per next hop. */
  maxConnections?: number;
}

interface NodemailerError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  rejectedErrors?: NodemailerError[];
  recipient?: string;
}

interface SentInfo {
  accepted?: unknown[];
  rejected?: unknown[];
  rejectedErrors?: NodemailerError[];
  response?: string;
}

function addr(a: unknown): string {
  return typeof a === 'string' ? a : ((a as { address?: string })?.address ?? String(a));
}

function replyOf(err: NodemailerError): string {
  if (err.response) return err.response;
  return `451 4.4.1 ${err.code ?? 'ERROR'} ${err.message}`.replace(/[\r\n]+/g, ' ');
}

/**
 * SMTP and LMTP next hops through nodemailer: one pool of connections per next hop, an
 * explicit envelope, and the spooled bytes sent as `raw` so nothing rewrites them.
 */
export class SmtpTransport implements NextHopTransport {
  readonly kind: 'smtp' | 'lmtp';
  private readonly pools = new Map<string, Transporter>();

  constructor(
    kind: 'smtp' | 'lmtp',
    private readonly o: SmtpTransportOptions,
  ) {
    this.kind = kind;
  }

  private pool(hop: Extract<NextHop, { kind: 'smtp' | 'lmtp' }>): Transporter {
    let t = this.pools.get(hop.url);
    if (!t) {
      t = nodemailer.createTransport({
        pool: true,
        host: hop.host,
        port: hop.port,
        secure: false,
        lmtp: hop.kind === 'lmtp',
        name: this.o.hostname,
        maxConnections: this.o.maxConnections ?? 5,
        maxMessages: Infinity,
        connectionTimeout: Math.min(30_000, this.o.timeoutMs),
        greetingTimeout: Math.min(30_000, this.o.timeoutMs),
        socketTimeout: this.o.timeoutMs,
        // Opportunistic STARTTLS, as MTAs do between each other: an unverifiable
        // certificate still beats plaintext.
        tls: { rejectUnauthorized: false },
        logger: false,
      } as TransportOptions);
      this.pools.set(hop.url, t);
    }
    return t;
  }

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult> {
    if (hop.kind !== 'smtp' && hop.kind !== 'lmtp') throw new TypeError(`SmtpTransport cannot deliver to ${hop.url}`);
    const message = req.openMessage();
    try {
      const info = (await this.pool(hop).sendMail({
        envelope: { from: req.envelopeFrom, to: req.recipients },
        raw: message,
      } as SendMailOptions)) as SentInfo;
      const reply = (info.response ?? '250 ok').replace(/[\r\n]+/g, ' ');
      const failed = new Map<string, NodemailerError>();
      for (const e of info.rejectedErrors ?? []) if (e.recipient) failed.set(e.recipient, e);
      const rejected = new Set((info.rejected ?? []).map(addr));
      const recipients: RecipientResult[] = req.recipients.map((rcpt) => {
        const e = failed.get(rcpt);
        if (e) return { rcpt, outcome: outcomeOf(e.responseCode), reply: replyOf(e) };
        if (rejected.has(rcpt)) return { rcpt, outcome: 'deferred', reply: '451 4.4.0 rejected without a reply' };
        return { rcpt, outcome: 'delivered', reply };
      });
      return { reply, recipients };
    } catch (e) {
      const err = e as NodemailerError;
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
    } finally {
      message.destroy();
    }
  }

  async close(): Promise<void> {
    for (const t of this.pools.values()) t.close();
    this.pools.clear();
  }
}
