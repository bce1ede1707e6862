import { rfc5322Date } from '../mime/date.js';

export interface ReceivedInfo {
  helo: string;
  clientHostname?: string | undefined;
  clientAddress: string;
  by: string;
  /** ESMTP, ESMTPS, ESMTPA, ESMTPSA (RFC 3848). */
  protocol: string;
  qid: string;
  /** Named only when the message has exactly one recipient (privacy of Bcc). */
  recipient?: string | undefined;
  date: Date;
}

const UNSAFE = /[\x00-\x20\x7f()<>[\];]/;
const UNSAFE_ALL = /[\x00-\x20\x7f()<>[\];]/g;

/** Strips what could break the header or inject a new one. */
function clean(s: string): string {
  // most values are clean: one test, no new string
  if (s.length <= 255 && !UNSAFE.test(s)) return s || 'unknown';
  return s.replace(UNSAFE_ALL, '').slice(0, 255) || 'unknown';
}

/** The trace header mailbag prepends: the only change it makes to the message bytes. */
export function receivedHeader(r: ReceivedInfo): Buffer {
  const from = `from ${clean(r.helo)} (${r.clientHostname ? clean(r.clientHostname) + ' ' : ''}[${clean(r.clientAddress)}])`;
  const forPart = r.recipient ? `\r\n\tfor <${clean(r.recipient)}>` : '';
  return Buffer.from(
    `Received: ${from}\r\n\tby ${clean(r.by)} (mailbag) with ${r.protocol} id ${r.qid}${forPart};\r\n\t${rfc5322Date(r.date)}\r\n`,
    'utf8',
  );
}
