// What an ACKNOWLEDGE (RFC 753 section 3.4) means for one recipient of the delivery
// queue: answer yes -> delivered; answer no -> failed with its reason (a bounce follows
// from the queue), unless the reply's error-list says the failure is temporary
// (class 2 "resources unavailable", 4 "MPM error, recoverable"): then deferred.
import type { RecipientResult } from '../../delivery/transports/transport.js';
import type { CommandError } from '../message.js';

export interface Acknowledgement {
  answer: boolean;
  reasons: string[];
  howDelivered: string[];
  trail: number[];
  error: CommandError | undefined;
}

/** Error classes that say "try again later" (section 3.4's table: 2 and 4). */
const TEMPORARY_CLASSES = new Set([2, 4]);

/** Enhanced status codes (RFC 3463) for the reasons RFC 753 names; anything else is 5.0.0. */
function permanentStatus(reasons: readonly string[]): string {
  const text = reasons.join(' ').toLowerCase();
  if (text.includes('loop')) return '554 5.4.6';
  if (/no such (user|mailbox)|mailbox doesn't exist|mailbox does not exist/.test(text)) return '550 5.1.1';
  if (/no such (host|network)/.test(text)) return '550 5.1.2';
  if (text.includes('ambiguous')) return '550 5.1.4';
  if (/too large|size/.test(text)) return '552 5.3.4';
  return '550 5.0.0';
}

/** TEXT on the wire is 7-bit and may hold line breaks: one log- and DSN-safe line. */
function oneLine(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
}

/** `IMP ACKNOWLEDGE yes (OK; ACCEPT) trail 1,2,3` with the SMTP-style code the queue reads. */
export function acknowledgementResult(rcpt: string, ack: Acknowledgement): RecipientResult {
  const reasons = ack.reasons.map(oneLine).filter(Boolean);
  const trail = ack.trail.map((ihn) => String(ihn >>> 0)).join(',');
  const error = ack.error && ack.error.errorClass !== 0 ? ` [error ${ack.error.errorClass}: ${oneLine(ack.error.errorString)}]` : '';
  if (ack.answer) {
    const how = ack.howDelivered.map(oneLine).join(', ');
    return { rcpt, outcome: 'delivered', reply: `250 2.0.0 IMP ACKNOWLEDGE yes (${reasons.join('; ') || 'ok'}${how ? `; ${how}` : ''}) trail ${trail}` };
  }
  const why = reasons.join('; ') || 'no reason given';
  if (ack.error && TEMPORARY_CLASSES.has(ack.error.errorClass)) {
    return { rcpt, outcome: 'deferred', reply: `451 4.3.0 IMP ACKNOWLEDGE no: ${why}${error} trail ${trail}` };
  }
  return { rcpt, outcome: 'failed', reply: `${permanentStatus(reasons)} IMP ACKNOWLEDGE no: ${why}${error} trail ${trail}` };
}
