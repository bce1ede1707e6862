// RFC 3464 delivery status notifications ("bounces"). Pure: builds the bytes of a
// complete RFC 5322 message; the delivery queue decides when and where to send it.
//
// Layout (RFC 3462 multipart/report; report-type=delivery-status):
//   1. text/plain            what happened, for a human
//   2. message/delivery-status  per-message fields, then one block per recipient
//   3. text/rfc822-headers   the original message's header section, as received, or
//      message/rfc822         the whole original message (RET=FULL on a failure; message/global
//                             when its header section is 8-bit)
//
// The DSN is 7-bit whenever it can be. Original headers are attached byte for byte,
// so when they carry 8-bit bytes (RFC 6532 UTF-8 headers, raw Latin-1...) the part and
// the enclosing multipart are declared 8bit instead of being re-encoded. Envelope
// addresses with non-ASCII characters use the RFC 6533 `utf-8` address type in the
// machine-readable part.
import { randomBytes } from 'node:crypto';
import { mimeBoundary } from '../mime/boundary.js';
import { rfc5322Date } from '../mime/date.js';
import { foldLine } from '../mime/fold.js';

export interface BounceRecipient {
  address: string;
  /** RFC 3464 2.3.3; `delivered` and `relayed` are success notifications (NOTIFY=SUCCESS). */
  action: 'failed' | 'delayed' | 'delivered' | 'relayed';
  /** RFC 3463 enhanced status code, e.g. `5.1.1`. */
  status: string;
  /** e.g. `smtp; 550 5.1.1 no such user`. */
  diagnosticCode?: string;
  /** Host name of the next hop that gave the reply, if any. */
  remoteMta?: string;
  lastAttemptAt?: Date;
  /** For `delayed`: when the queue gives up. */
  willRetryUntil?: Date;
  /** ORCPT from RCPT TO (RFC 3461), `addr-type;address`, decoded from xtext. */
  originalRecipient?: string;
}

export interface BounceInput {
  /** This gateway's host name (Reporting-MTA, From: MAILER-DAEMON@...). */
  reportingMta: string;
  qid: string;
  /** The envelope sender the report goes to. Never the null sender. */
  envelopeFrom: string;
  arrivalDate: Date;
  recipients: BounceRecipient[];
  /** The original message's header section (without the body). */
  originalHeaders: Buffer;
  /** The whole original message, to return instead of its headers (RET=FULL). */
  originalMessage?: Buffer | undefined;
  /** Shown in the text when the message was too large to return whole. */
  notReturnedBytes?: number | undefined;
  /** ENVID from MAIL FROM (RFC 3461), when the client gave one. */
  envelopeId?: string;
  now?: Date;
}

export class BounceError extends Error {
  readonly code: 'ERR_BOUNCE_NULL_SENDER' | 'ERR_BOUNCE_NO_RECIPIENTS' | 'ERR_BOUNCE_BAD_STATUS' | 'ERR_BOUNCE_BAD_INPUT';
  constructor(code: BounceError['code'], message: string) {
    super(message);
    this.name = 'BounceError';
    this.code = code;
  }
}

const CRLF = '\r\n';
const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

export const SUBJECT_FAILED = 'Undelivered Mail Returned to Sender';
export const SUBJECT_DELAYED = 'Delayed Mail (still being retried)';
export const SUBJECT_SUCCESS = 'Successful Mail Delivery Report';

const SUCCESS = new Set<BounceRecipient['action']>(['delivered', 'relayed']);

export function buildDeliveryStatusNotification(input: BounceInput): Buffer {
  validate(input);
  const now = input.now ?? new Date();
  const mta = oneLine(input.reportingMta);
  const anyFailed = input.recipients.some((r) => r.action === 'failed');
  const anyDelayed = input.recipients.some((r) => r.action === 'delayed');
  const kind = anyFailed ? 'Undelivered' : anyDelayed ? 'Delayed' : 'Delivered';
  const full = input.originalMessage;
  const returned = full ?? normaliseHeaderSection(input.originalHeaders);
  const returnedEightBit = hasEightBit(returned);
  const eightBit = returnedEightBit || !isAscii(input.envelopeFrom);
  const returnedPart = full
    ? [`Content-Description: ${kind} Message`, `Content-Type: message/${hasEightBit(normaliseHeaderSection(full)) ? 'global' : 'rfc822'}`]
    : [`Content-Description: ${kind} Message Headers`, 'Content-Type: text/rfc822-headers'];

  const boundary = mimeBoundary([returned], { tag: safeIdPart(input.qid) });
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${mta}>`,
    `To: <${oneLine(input.envelopeFrom)}>`,
    `Subject: ${anyFailed ? SUBJECT_FAILED : anyDelayed ? SUBJECT_DELAYED : SUBJECT_SUCCESS}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${now.getTime().toString(36)}.${randomBytes(6).toString('hex')}.${safeIdPart(input.qid)}@${mta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF}\tboundary="${boundary}"`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
  ];

  const parts = [
    head.join(CRLF),
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    humanText(input, mta, anyFailed ? 'failed' : anyDelayed ? 'delayed' : 'success'),
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    'Content-Transfer-Encoding: 7bit',
    '',
    deliveryStatus(input, mta),
    '',
    `--${boundary}`,
    ...returnedPart,
    `Content-Transfer-Encoding: ${returnedEightBit ? '8bit' : '7bit'}`,
    '',
    '',
  ].join(CRLF);

  return Buffer.concat([
    Buffer.from(parts, 'utf8'),
    returned,
    Buffer.from(`${returned.length && !returned.subarray(-2).equals(Buffer.from(CRLF)) ? CRLF : ''}${CRLF}--${boundary}--${CRLF}`, 'ascii'),
  ]);
}

function validate(input: BounceInput): void {
  if (input.envelopeFrom === '' || input.envelopeFrom === '<>') {
    throw new BounceError('ERR_BOUNCE_NULL_SENDER', 'a bounce is never sent to the null sender');
  }
  if (input.recipients.length === 0) {
    throw new BounceError('ERR_BOUNCE_NO_RECIPIENTS', 'a bounce needs at least one recipient to report on');
  }
  for (const r of input.recipients) {
    if (!STATUS.test(r.status)) {
      throw new BounceError('ERR_BOUNCE_BAD_STATUS', `recipient ${r.address}: status ${JSON.stringify(r.status)} is not an RFC 3463 code`);
    }
    const cls = r.status[0];
    if ((r.action === 'failed' && cls !== '5') || (r.action === 'delayed' && cls !== '4') || (SUCCESS.has(r.action) && cls !== '2')) {
      throw new BounceError('ERR_BOUNCE_BAD_STATUS', `recipient ${r.address}: action ${r.action} does not match status ${r.status}`);
    }
  }
  if (!input.reportingMta || !input.qid) {
    throw new BounceError('ERR_BOUNCE_BAD_INPUT', 'reportingMta and qid are required');
  }
}

function humanText(input: BounceInput, mta: string, kind: 'failed' | 'delayed' | 'success'): string {
  const lines = [`This is the mail system at host ${mta}.`, ''];
  if (kind === 'failed') {
    lines.push(
      "I'm sorry to have to inform you that your message could not",
      'be delivered to one or more recipients. It is attached below.',
    );
  } else if (kind === 'delayed') {
    lines.push(
      '####################################################################',
      '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #',
      '####################################################################',
      '',
      'Your message could not be delivered for some time. The mail system',
      'will keep trying to deliver it.',
    );
  } else {
    lines.push(
      'Your message was successfully delivered to the destination(s) listed',
      'below, as you asked (NOTIFY=SUCCESS). A destination marked "relayed"',
      'was handed to a system that does not report delivery status, so you',
      'will get no further notice from there.',
    );
  }
  if (input.notReturnedBytes !== undefined) {
    lines.push('', `The message (${input.notReturnedBytes} octets) is too large to return whole; its headers are attached.`);
  }
  lines.push('', `Queue ID: ${asciiText(input.qid)}`, '');
  const what = { failed: 'delivery failed', delayed: 'delivery delayed', delivered: 'delivered', relayed: 'relayed (no further status from there)' };
  for (const r of input.recipients) {
    const why = r.diagnosticCode ? `: ${asciiText(r.diagnosticCode)}` : '';
    const via = r.remoteMta ? ` (host ${asciiText(r.remoteMta)})` : '';
    lines.push(`<${asciiText(r.address)}>: ${what[r.action]}${via}${why}`);
    if (r.willRetryUntil) lines.push(`    will retry until ${rfc5322Date(r.willRetryUntil)}`);
  }
  return lines.join(CRLF);
}

function deliveryStatus(input: BounceInput, mta: string): string {
  const message = [`Reporting-MTA: dns; ${mta}`, `X-Mailbag-Queue-ID: ${asciiText(input.qid)}`];
  message.push(`X-Mailbag-Sender: ${addressField(input.envelopeFrom)}`);
  if (input.envelopeId) message.push(`Original-Envelope-Id: ${asciiText(input.envelopeId)}`);
  message.push(`Arrival-Date: ${rfc5322Date(input.arrivalDate)}`);

  const blocks = [message.join(CRLF)];
  for (const r of input.recipients) {
    const f: string[] = [];
    if (r.originalRecipient) f.push(foldLine(`Original-Recipient: ${originalRecipient(r.originalRecipient)}`));
    f.push(`Final-Recipient: ${addressField(r.address)}`, `Action: ${r.action}`, `Status: ${r.status}`);
    if (r.remoteMta) f.push(`Remote-MTA: dns; ${asciiText(r.remoteMta)}`);
    if (r.diagnosticCode) f.push(foldLine(`Diagnostic-Code: ${diagnostic(r.diagnosticCode)}`));
    if (r.lastAttemptAt) f.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttemptAt)}`);
    if (r.willRetryUntil) f.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
    blocks.push(f.join(CRLF));
  }
  return blocks.join(CRLF + CRLF) + CRLF;
}

/** `rfc822; a@b`, or RFC 6533 `utf-8; ...` with `\x{HHHH}` escapes for non-ASCII mailboxes. */
function addressField(address: string): string {
  const a = oneLine(address);
  if (isAscii(a)) return `rfc822; ${a}`;
  return `utf-8; ${utf8AddrXtext(a)}`;
}

/** ORCPT `type;address` as the Original-Recipient field's `type; address` (RFC 3464 2.3.1). */
function originalRecipient(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  const type = oneLine(orcpt.slice(0, semi)).toLowerCase();
  const value = oneLine(orcpt.slice(semi + 1));
  if (isAscii(value)) return `${type}; ${value}`;
  return `utf-8; ${utf8AddrXtext(value)}`;
}

/** RFC 6533 section 3 utf-8-addr-xtext: non-ASCII, `\`, `+`, `=` and controls as \x{HEX}. */
function utf8AddrXtext(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x21 || cp > 0x7e || ch === '\\' || ch === '+' || ch === '=') out += `\\x{${cp.toString(16).toUpperCase()}}`;
    else out += ch;
  }
  return out;
}

/** Diagnostic-Code: `type; text`; a bare reply gets the `smtp;` type. */
function diagnostic(code: string): string {
  const text = asciiText(code);
  return /^[A-Za-z][A-Za-z0-9-]*;/.test(text) ? text : `smtp; ${text}`;
}

/** One line of printable ASCII: CR/LF and controls become spaces, non-ASCII becomes \x{HEX}. */
function asciiText(s: string): string {
  let out = '';
  for (const ch of oneLine(s)) {
    const cp = ch.codePointAt(0)!;
    if (cp > 0x7e) out += `\\x{${cp.toString(16).toUpperCase()}}`;
    else out += ch;
  }
  return out;
}

/** Header values must not smuggle line breaks or controls into the report. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
}

/**
 * The original header section with CRLF line ends, no trailing blank line, and
 * a final CRLF, so the closing boundary starts on its own line.
 */
function normaliseHeaderSection(headers: Buffer): Buffer {
  let text = headers.toString('latin1'); // byte-preserving
  text = text.replace(/\r?\n|\r/g, CRLF);
  const blank = text.indexOf(CRLF + CRLF);
  if (blank !== -1) text = text.slice(0, blank + 2);
  if (text.startsWith(CRLF)) text = '';
  if (text.length > 0 && !text.endsWith(CRLF)) text += CRLF;
  return Buffer.from(text, 'latin1');
}

function safeIdPart(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]/g, '_');
}

function hasEightBit(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i]! > 0x7f) return true;
  return false;
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}
