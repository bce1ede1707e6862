// Content-Transfer-Encoding bodies (RFC 2045 section 6) written with nodemailer's own
// encoders, so mailbag carries no hand-written quoted-printable or base64.
import * as base64 from 'nodemailer/lib/base64';
import * as qp from 'nodemailer/lib/qp';

/** RFC 2045 6.7/6.8: encoded lines are at most 76 characters. */
const LINE = 76;
/** Base64 is encoded in slices of whole lines (57 octets = 76 characters each). */
const BASE64_SLICE = 57 * 1024;

/**
 * Quoted-printable of CRLF text: each line is encoded on its own (so whitespace before a
 * line break is encoded and CRLF stays a hard break) and soft-wrapped at 76 characters.
 * No final line ending is added beyond what the text has.
 */
export function quotedPrintableLines(text: Buffer): Buffer {
  const out: Buffer[] = [];
  let start = 0;
  for (;;) {
    const end = text.indexOf('\r\n', start);
    const line = text.subarray(start, end === -1 ? text.length : end);
    out.push(Buffer.from(qp.wrap(qp.encode(line), LINE), 'latin1'));
    if (end === -1) break;
    out.push(CRLF);
    start = end + 2;
  }
  return Buffer.concat(out);
}

/** Base64 in CRLF-terminated lines of 76 characters (the last line ends in CRLF too). */
export function base64Lines(data: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += BASE64_SLICE) {
    const slice = data.subarray(i, Math.min(i + BASE64_SLICE, data.length));
    out.push(Buffer.from(base64.wrap(base64.encode(slice), LINE), 'latin1'), CRLF);
  }
  return Buffer.concat(out);
}

const CRLF = Buffer.from('\r\n');
