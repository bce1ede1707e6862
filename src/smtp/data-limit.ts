import { Transform, type TransformCallback } from 'node:stream';
import { SmtpReplyError } from './reply.js';

/**
 * Fails the DATA stream as soon as it passes `max` octets, so an oversize message is
 * never written to disk beyond the limit (smtp-server then answers 552 5.3.4 itself,
 * being configured with `size` and `rejectOversized`).
 */
export class ByteLimit extends Transform {
  bytes = 0;
  constructor(readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.max > 0 && this.bytes > this.max) {
      return done(new SmtpReplyError(552, '5.3.4', `Message exceeds fixed maximum message size ${this.max}`, 'ERR_MAILBAG_TOO_BIG'));
    }
    done(null, chunk);
  }
}
