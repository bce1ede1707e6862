// MAIL FROM / RCPT TO addresses and parameters exactly as the client wrote them, and the
// rules mailbag applies to them (see docs/smtp.md, "Parameters and DSN").
//
// smtp-server hands the application an address with its domain turned into UTF-8
// (punycode.toUnicode) and parameter values already decoded from xtext, so neither the
// written address nor a malformed xtext value can be seen there. The listener keeps the
// command's own text (see inbound.ts) and these functions work on that.
import type { DsnNotify, MessageParams, RecipientParams } from '../store/queue-store.js';
import { SmtpReplyError } from './reply.js';

/** The address and parameters of a MAIL FROM or RCPT TO command, as written. */
export interface WrittenCommand {
  /** Between the angle brackets, a source route (`@a,@b:`) removed (RFC 5321 4.1.2). */
  address: string;
  /** Parameter keyword (upper case) -> raw value, or true for a bare keyword. */
  params: Map<string, string | true>;
}

/** Splits `MAIL FROM:<a@b> K=V K2` the way smtp-server does, without decoding anything. */
export function writtenCommand(command: string): WrittenCommand | undefined {
  const colon = command.indexOf(':');
  if (colon === -1) return undefined;
  const parts = command.slice(colon + 1).trim().split(/\s+/);
  const path = parts.shift() ?? '';
  if (!/^<[^<>]*>$/.test(path)) return undefined;
  const address = path.slice(1, -1).replace(/^@[^\s,:@]+(?:,@[^\s,:@]+)*:/, '');
  const params = new Map<string, string | true>();
  for (const p of parts) {
    const eq = p.indexOf('=');
    const key = (eq === -1 ? p : p.slice(0, eq)).toUpperCase();
    if (key) params.set(key, eq === -1 ? true : p.slice(eq + 1));
  }
  return { address, params };
}

// RFC 3461 section 4: xtext = *( xchar / hexchar ), xchar = "!".."~" except "+" and "=",
// hexchar = "+" and two upper-case hex digits.
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/;
// RFC 6533 section 3: with SMTPUTF8 an ORCPT of type utf-8 may carry UTF-8 as it is.
const UTF8_XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2}|[^\x00-\x7f])*$/u;
const ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/;

export function isXtext(s: string): boolean {
  return XTEXT.test(s);
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * xtext's `+XX` are octets: `+C3+BC` is the UTF-8 of `ü`, one character, and nodemailer
 * encodes it back to the same octets when it is relayed. Raw UTF-8 (an ORCPT of type
 * utf-8 under SMTPUTF8) counts as its own octets. Octets that are not UTF-8 keep one
 * character each (Latin-1), so nothing is lost.
 */
export function decodeXtext(s: string): string {
  if (!s.includes('+')) return s;
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of s.matchAll(/\+([0-9A-F]{2})/g)) {
    parts.push(Buffer.from(s.slice(last, m.index), 'utf8'), Buffer.from([parseInt(m[1]!, 16)]));
    last = m.index + m[0].length;
  }
  parts.push(Buffer.from(s.slice(last), 'utf8'));
  const octets = Buffer.concat(parts);
  try {
    return STRICT_UTF8.decode(octets);
  } catch {
    return s.replace(/\+([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
}

function syntax(text: string): SmtpReplyError {
  return new SmtpReplyError(501, '5.5.4', text, 'ERR_MAILBAG_PARAM_SYNTAX');
}

function nonAscii(s: string): boolean {
  return /[^\x00-\x7f]/.test(s);
}

/**
 * The MAIL FROM parameters to store, or a 501 5.5.4 for a malformed ENVID. BODY, SIZE,
 * SMTPUTF8, RET and NOTIFY syntax are smtp-server's checks (they run before this).
 */
export function mailParams(cmd: WrittenCommand): MessageParams {
  const p = cmd.params;
  const envid = p.get('ENVID');
  if (typeof envid === 'string') {
    // RFC 3461 4.4: xtext, at most 100 characters
    if (!envid || !isXtext(envid)) throw syntax('ENVID must be xtext (RFC 3461 section 4)');
    if (envid.length > 100) throw syntax('ENVID is longer than 100 characters (RFC 3461 section 4.4)');
  }
  if (p.get('SMTPUTF8') === undefined && nonAscii(cmd.address)) {
    throw new SmtpReplyError(553, '5.6.7', 'A non-ASCII address needs the SMTPUTF8 parameter (RFC 6531)', 'ERR_MAILBAG_NEEDS_SMTPUTF8');
  }
  const body = p.get('BODY');
  const ret = p.get('RET');
  const size = p.get('SIZE');
  return {
    bodyType: typeof body === 'string' ? (body.toLowerCase() === '8bitmime' ? '8bitmime' : '7bit') : undefined,
    smtpUtf8: p.get('SMTPUTF8') === true,
    declaredSize: typeof size === 'string' && /^\d{1,15}$/.test(size) ? Number(size) : undefined,
    dsnRet: typeof ret === 'string' ? (ret.toUpperCase() === 'FULL' ? 'FULL' : 'HDRS') : undefined,
    dsnEnvid: typeof envid === 'string' ? decodeXtext(envid) : undefined,
  };
}

/** The RCPT TO parameters to store, or a 5xx for a malformed ORCPT / a UTF-8 address without SMTPUTF8. */
export function recipientParams(cmd: WrittenCommand, smtpUtf8: boolean): RecipientParams {
  const p = cmd.params;
  if (!smtpUtf8 && nonAscii(cmd.address)) {
    throw new SmtpReplyError(553, '5.6.7', 'A non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM (RFC 6531)', 'ERR_MAILBAG_NEEDS_SMTPUTF8');
  }
  const orcpt = p.get('ORCPT');
  let decoded: string | undefined;
  if (orcpt !== undefined) {
    // RFC 3461 4.2: ORCPT=addr-type ";" xtext, at most 500 characters
    const semi = typeof orcpt === 'string' ? orcpt.indexOf(';') : -1;
    if (typeof orcpt !== 'string' || semi <= 0) throw syntax('ORCPT must be addr-type;xtext (RFC 3461 section 4.2)');
    const type = orcpt.slice(0, semi);
    const value = orcpt.slice(semi + 1);
    const utf8 = smtpUtf8 && type.toLowerCase() === 'utf-8';
    if (!ATOM.test(type) || !value || !(utf8 ? UTF8_XTEXT : XTEXT).test(value)) throw syntax('ORCPT must be addr-type;xtext (RFC 3461 section 4.2)');
    if (orcpt.length > 500) throw syntax('ORCPT is longer than 500 characters (RFC 3461 section 4.2)');
    decoded = `${type};${decodeXtext(value)}`;
  }
  const notify = p.get('NOTIFY');
  return {
    notify: typeof notify === 'string' ? (notify.toUpperCase().split(',') as DsnNotify[]) : undefined,
    orcpt: decoded,
  };
}

/**
 * Local parts that route onwards by themselves: the percent hack (`user%host@relay`) and
 * UUCP bang paths (`host!user@relay`) would have the next hop relay the mail somewhere
 * mailbag's relay policy never checked. mailbag refuses them.
 */
export function refuseSourceRoutedLocalPart(address: string): void {
  const at = address.lastIndexOf('@');
  const local = at === -1 ? address : address.slice(0, at);
  if (local.includes('%') || local.includes('!')) {
    throw new SmtpReplyError(550, '5.7.1', `Percent-hack and bang-path addresses are not accepted: <${address}>`, 'ERR_MAILBAG_SOURCE_ROUTE');
  }
}

/**
 * Where `RCPT TO:<postmaster>` (no domain, RFC 5321 4.5.1) goes: postmaster at the first
 * `smtp.localDomains` entry that is a domain rather than a `*.` pattern.
 */
export function postmasterAddress(localDomains: readonly string[]): string | undefined {
  const domain = localDomains.find((d) => !d.startsWith('*'));
  return domain ? `postmaster@${domain}` : undefined;
}
