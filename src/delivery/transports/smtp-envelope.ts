// The envelope towards an SMTP/LMTP next hop: what the client asked for in MAIL FROM and
// RCPT TO (BODY, SMTPUTF8, SIZE, DSN's RET/ENVID/NOTIFY/ORCPT) is passed on when the next
// hop advertises the extension, and what cannot be passed on is handled as the RFCs say:
// 8-bit mail to a hop without 8BITMIME is converted to 7-bit MIME or returned with 5.6.3
// (RFC 6152), mail that needs SMTPUTF8 to a hop without it is returned with 5.6.7
// (RFC 6531), a message over the hop's SIZE limit with 5.3.4 (RFC 1870).
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { encodeXText } from 'nodemailer/lib/shared';
import { Readable } from 'node:stream';
import { downgradeTo7bit, hasEightBit, hasEightBitHeaders } from '../../mime/downgrade.js';
import type { RecipientParams } from '../../store/queue-store.js';
import type { DeliveryRequest, SuccessDsn } from './transport.js';

/** nodemailer internals this subclass reads or overrides (nodemailer 10.x). */
interface Internals {
  _supportedExtensions?: string[];
  _maxAllowedSize?: number;
  _recipientQueue?: string[];
  _sendCommand(str: string, logStr?: string): void;
}

/**
 * nodemailer's SMTPConnection with per-recipient DSN parameters (nodemailer takes one
 * NOTIFY/ORCPT for the whole envelope) and SMTPUTF8 whenever the client used it
 * (nodemailer adds it only for non-ASCII addresses).
 */
export class RelayConnection extends SMTPConnection {
  /** Parameters for the transaction being sent; cleared after it. */
  relay: { smtpUtf8: boolean; recipients: Readonly<Record<string, RecipientParams>> } | undefined;

  /** Extensions the next hop advertised in its EHLO/LHLO reply. */
  get extensions(): readonly string[] {
    return (this as unknown as Internals)._supportedExtensions ?? [];
  }

  /** The next hop's SIZE limit (0: none advertised). */
  get sizeLimit(): number {
    return (this as unknown as Internals)._maxAllowedSize ?? 0;
  }

  /** Called by nodemailer for each RCPT TO, right after queueing that recipient. */
  _getDsnRcptToArgs(): string {
    const queue = (this as unknown as Internals)._recipientQueue ?? [];
    const rcpt = queue[queue.length - 1];
    const p = rcpt === undefined ? undefined : this.relay?.recipients[rcpt];
    if (!p || !this.extensions.includes('DSN')) return '';
    const args: string[] = [];
    if (p.notify) args.push(`NOTIFY=${p.notify.join(',')}`);
    if (p.orcpt) args.push(`ORCPT=${encodeXText(p.orcpt)}`);
    return args.length ? ` ${args.join(' ')}` : '';
  }

  _sendCommand(str: string, logStr?: string): void {
    let line = str;
    if (this.relay?.smtpUtf8 && line.startsWith('MAIL FROM:') && !/ SMTPUTF8(?: |$)/.test(line)) line += ' SMTPUTF8';
    (SMTPConnection.prototype as unknown as Internals)._sendCommand.call(this, line, logStr);
  }
}

/** The envelope and message to send, or the reason every recipient fails at this next hop. */
export type PreparedSend =
  | { kind: 'send'; envelope: Envelope; message: () => Readable; successDsn: SuccessDsn }
  | { kind: 'refuse'; reply: string };

export interface Envelope {
  from: string;
  to: string[];
  size: number;
  use8BitMime: boolean;
  dsn?: { ret?: string; envid?: string };
}

function nonAscii(s: string): boolean {
  return /[^\x00-\x7f]/.test(s);
}

/** Scans the message for a byte over 0x7f without holding it in memory. */
async function streamHasEightBit(stream: Readable): Promise<boolean> {
  try {
    for await (const c of stream as AsyncIterable<Buffer>) if (hasEightBit(c)) return true;
    return false;
  } finally {
    stream.destroy();
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}

/**
 * Decides, once the next hop's extensions are known, what goes out: the parameters it
 * supports, the spooled bytes or a 7-bit conversion of them, or a refusal (`5xx` reply)
 * for every recipient when the message cannot go to this hop without breaking an RFC.
 */
export async function prepareSend(conn: RelayConnection, req: DeliveryRequest, lmtp: boolean, host: string): Promise<PreparedSend> {
  const ext = conn.extensions;
  const params = req.params?.message ?? {};
  let message = (): Readable => req.openMessage();
  let size = req.size;
  let bytes: Buffer | undefined;
  const body = async () => (bytes ??= await readAll(req.openMessage()));

  if (conn.sizeLimit && size > conn.sizeLimit) {
    return { kind: 'refuse', reply: `552 5.3.4 Message size ${size} exceeds the limit ${conn.sizeLimit} of ${host}` };
  }
  const utf8Address = nonAscii(req.envelopeFrom) || req.recipients.some(nonAscii);
  let smtpUtf8 = !!params.smtpUtf8 || utf8Address;
  if (smtpUtf8 && !ext.includes('SMTPUTF8')) {
    // RFC 6531 3.2: only mail that really needs it is refused (as Postfix does): UTF-8 in
    // an envelope address or a header; otherwise it goes out as plain ASCII mail.
    const needed = utf8Address || hasEightBitHeaders(await body());
    if (needed) return { kind: 'refuse', reply: `550 5.6.7 SMTPUTF8 is required, but was not offered by ${host}` };
    smtpUtf8 = false;
  }
  let use8BitMime = params.bodyType === '8bitmime';
  if (!ext.includes('8BITMIME') && (bytes ? hasEightBit(bytes) : await streamHasEightBit(req.openMessage()))) {
    // Converted whenever the bytes are 8-bit, declared or not: never a silent violation.
    const result = downgradeTo7bit(await body());
    if (result.kind === 'impossible') {
      return { kind: 'refuse', reply: `554 5.6.3 Conversion to 7-bit MIME impossible (${result.reason}); ${host} does not offer 8BITMIME` };
    }
    if (result.kind === 'converted') {
      const converted = result.bytes;
      message = () => Readable.from([converted]);
      size = converted.length;
    }
  }
  if (!ext.includes('8BITMIME')) use8BitMime = false;
  if (conn.sizeLimit && size > conn.sizeLimit) {
    return { kind: 'refuse', reply: `552 5.3.4 Message size ${size} (converted to 7-bit) exceeds the limit ${conn.sizeLimit} of ${host}` };
  }
  conn.relay = { smtpUtf8, recipients: req.params?.recipients ?? {} };
  const dsn = ext.includes('DSN');
  const envelope: Envelope = { from: req.envelopeFrom, to: req.recipients, size, use8BitMime };
  if (dsn && (params.dsnRet || params.dsnEnvid)) {
    envelope.dsn = {};
    if (params.dsnRet) envelope.dsn.ret = params.dsnRet;
    if (params.dsnEnvid) envelope.dsn.envid = params.dsnEnvid;
  }
  return { kind: 'send', envelope, message, successDsn: dsn ? 'passed-on' : lmtp ? 'delivered' : 'relayed' };
}
