/**
 * An SMTP reply carried as an error: smtp-server sends `responseCode` and `message`;
 * the enhanced status code (RFC 3463) leads the message text so the gateway's
 * connection hook can put it where it belongs (see inbound.ts).
 */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly enhancedCode: string;
  constructor(
    responseCode: number,
    enhancedCode: string,
    text: string,
    readonly code = 'ERR_MAILBAG_SMTP_REPLY',
  ) {
    super(`${enhancedCode} ${text}`);
    this.name = 'SmtpReplyError';
    this.responseCode = responseCode;
    this.enhancedCode = enhancedCode;
  }
}

/** `5.7.1 text` -> ['5.7.1', 'text'] */
export function splitEnhancedCode(message: string): [string, string] | undefined {
  const m = /^([245]\.\d{1,3}\.\d{1,3}) ([\s\S]*)$/.exec(message);
  return m ? [m[1]!, m[2]!] : undefined;
}
