// smtp-server holds every new connection for a fixed 100 ms before its banner so that
// clients that talk first ("early talkers", a spam-bot trait) are caught. That caps a
// session that reconnects per message at about ten messages a second. mailbag makes
// the delay configurable (smtp.greetingDelay) with a small patch to the installed
// package, applied by `patch-package` on every `npm install` / `npm ci`
// (patches/smtp-server+VERSION.patch): SMTPServer then honours an `earlyTalkerDelay`
// option (ms; default 100; 0 greets at once). See docs/operations.md.
//
// If the patch did not apply (install run with --ignore-scripts, or smtp-server was
// upgraded without refreshing the patch), smtp-server silently ignores the option.
// The gateway calls checkGreetingDelay() at start-up so that never goes unnoticed.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

export const SMTP_SERVER_DEFAULT_GREETING_DELAY_MS = 100;

export class GreetingDelayError extends Error {
  readonly code = 'ERR_GREETING_DELAY_UNSUPPORTED';
  constructor(message: string) {
    super(message);
    this.name = 'GreetingDelayError';
  }
}

/** True when the installed smtp-server reads the `earlyTalkerDelay` option. */
export function smtpServerHonoursGreetingDelay(): boolean {
  return Function.prototype.toString.call(SMTPConnection.prototype.init).includes('earlyTalkerDelay');
}

/**
 * Throws when a non-default delay is configured but the installed smtp-server would
 * ignore it (the patch is missing); the default needs no patch.
 */
export function checkGreetingDelay(delayMs: number): void {
  if (delayMs === SMTP_SERVER_DEFAULT_GREETING_DELAY_MS || smtpServerHonoursGreetingDelay()) return;
  throw new GreetingDelayError(
    `smtp.greetingDelay is ${delayMs} ms but the installed smtp-server ignores it (always ${SMTP_SERVER_DEFAULT_GREETING_DELAY_MS} ms): ` +
      'its patch is not applied; run `npx patch-package` (or reinstall without --ignore-scripts)',
  );
}
