import { SmtpReplyError } from './reply.js';

export type BareNewlinePolicy = 'reject' | 'normalise';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

/**
 * Guards the DATA stream against SMTP smuggling. smtp-server has already removed
 * dot-stuffing and ends DATA only at CRLF.CRLF, so `\n.\n`, `\n.\r\n`, `\r\n.\n` and
 * `\r.\r` arrive here as message content. A next hop that treats any of them as the
 * end of data would see a second, injected transaction. Every line ending in the
 * content must therefore be CRLF: `reject` fails the stream with 550 5.5.2 on the
 * first bare CR or bare LF (Postfix smtpd_forbid_bare_newline), `normalise` turns each
 * into CRLF so the next hop sees one message.
 *
 * It works on the chunks of one message, in order, without a stream around it (the
 * listener's DATA path calls it per chunk): `pass` returns the chunk to write (the
 * same buffer unless `normalise` changed it) or throws the 550 5.5.2 of `reject`;
 * `end` returns what a CR at the very end becomes.
 */
export class BareNewlineScanner {
  /** A CR ended the previous chunk; whether it is bare depends on the next byte. */
  private pendingCr = false;
  found = 0;

  constructor(readonly policy: BareNewlinePolicy) {}

  pass(chunk: Buffer): Buffer {
    if (this.policy === 'reject') {
      if (this.hasBare(chunk)) throw this.rejection();
      return chunk;
    }
    return this.normalise(chunk);
  }

  end(): Buffer | undefined {
    if (!this.pendingCr) return undefined;
    this.pendingCr = false;
    this.found++;
    if (this.policy === 'reject') throw this.rejection();
    return CRLF;
  }

  private rejection(): SmtpReplyError {
    return new SmtpReplyError(550, '5.5.2', 'Message contains bare CR or LF characters (SMTP smuggling protection)', 'ERR_MAILBAG_BARE_NEWLINE');
  }

  private hasBare(chunk: Buffer): boolean {
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] !== LF) return true;
      i = 1;
    }
    const n = chunk.length;
    while (i < n) {
      const cr = chunk.indexOf(CR, i);
      const lf = chunk.indexOf(LF, i);
      if (lf !== -1 && (cr === -1 || lf < cr)) return true; // LF with no CR before it
      if (cr === -1) return false;
      if (cr === n - 1) {
        this.pendingCr = true;
        return false;
      }
      if (chunk[cr + 1] !== LF) return true;
      i = cr + 2;
    }
    return false;
  }

  private normalise(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let start = 0;
    let i = 0;
    const n = chunk.length;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] === LF) {
        parts.push(CRLF);
        start = i = 1;
      } else {
        parts.push(CRLF);
        this.found++;
      }
    }
    while (i < n) {
      const b = chunk[i]!;
      if (b === CR) {
        if (i === n - 1) {
          parts.push(chunk.subarray(start, i));
          this.pendingCr = true;
          start = i = n;
          break;
        }
        if (chunk[i + 1] === LF) {
          i += 2;
          continue;
        }
        parts.push(chunk.subarray(start, i), CRLF); // bare CR
        this.found++;
        start = i = i + 1;
      } else if (b === LF) {
        parts.push(chunk.subarray(start, i), CRLF); // bare LF
        this.found++;
        start = i = i + 1;
      } else {
        // skip ahead to the next line-ending byte
        const cr = chunk.indexOf(CR, i);
        const lf = chunk.indexOf(LF, i);
        const next = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
        i = next === -1 ? n : next;
      }
    }
    if (start < n) parts.push(chunk.subarray(start));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
