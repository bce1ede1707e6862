import { SmtpReplyError } from './reply.js';

/**
 * The 552 5.3.4 for a message past `max` octets: the DATA path fails as soon as the
 * count passes it, so an oversize message is never written to disk beyond the limit
 * (smtp-server then answers 552 5.3.4 itself, being configured with `size` and
 * `rejectOversized`).
 */
export function tooBig(max: number): SmtpReplyError {
  return new SmtpReplyError(552, '5.3.4', `Message exceeds fixed maximum message size ${max}`, 'ERR_MAILBAG_TOO_BIG');
}
