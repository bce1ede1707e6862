import type { Readable } from 'node:stream';
import type { NextHop } from '../../config/schema.js';
import type { MessageParams, RecipientParams } from '../../store/queue-store.js';

export type RecipientOutcome = 'delivered' | 'deferred' | 'failed';

export interface RecipientResult {
  rcpt: string;
  outcome: RecipientOutcome;
  /** The next hop's reply (or mailbag's own, e.g. `451 4.4.1 connection refused`). */
  reply: string;
  /** Maildir: the file name the message was delivered as. */
  deliveredAs?: string;
}

/** What the client asked for in MAIL FROM / RCPT TO, to pass on where the next hop supports it. */
export interface RelayParams {
  message: MessageParams;
  /** By recipient address. */
  recipients: Readonly<Record<string, RecipientParams>>;
}

/**
 * Who reports a successful delivery to the sender (RFC 3461 section 4): the next hop took
 * the DSN request over (`passed-on`), or mailbag sends a `delivered` (final delivery) or
 * `relayed` (the next hop does not do DSN) notification when NOTIFY asked for SUCCESS.
 */
export type SuccessDsn = 'delivered' | 'relayed' | 'passed-on';

/** One attempt: a message to the recipients that share one next hop. */
export interface DeliveryRequest {
  qid: string;
  envelopeFrom: string;
  recipients: string[];
  receivedAt: number;
  size: number;
  /** MAIL FROM / RCPT TO parameters (absent: none given). */
  params?: RelayParams | undefined;
  /**
   * Opens the spooled message, from the start each time: once per recipient batch or per
   * recipient, and before that for a scan when the next hop lacks 8BITMIME or SMTPUTF8.
   */
  openMessage(): Readable;
  /** Maildir exactly-once: the name this recipient's delivery was already intended as. */
  intendedName(rcpt: string): string | undefined;
  /** Maildir exactly-once: durably records the name before the file becomes visible. */
  recordIntent(rcpt: string, name: string): void;
}

export interface DeliveryResult {
  /** The attempt's overall reply, for the attempt record. */
  reply: string;
  recipients: RecipientResult[];
  /** For delivered recipients; absent means `delivered` (final delivery). */
  successDsn?: SuccessDsn | undefined;
}

/**
 * A kind of next hop (`smtp`, `lmtp`, `maildir`; `imp` later). Implementations never
 * throw for delivery problems: every recipient comes back with an outcome.
 */
export interface NextHopTransport {
  readonly kind: NextHop['kind'];
  deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult>;
  close(): Promise<void>;
}

/** Every recipient gets the same outcome (connection failure, 5xx to MAIL FROM, ...). */
export function allRecipients(req: DeliveryRequest, outcome: RecipientOutcome, reply: string): DeliveryResult {
  return { reply, recipients: req.recipients.map((rcpt) => ({ rcpt, outcome, reply })) };
}

/** 2xx delivered, 4xx deferred, 5xx failed; anything unparseable is treated as temporary. */
export function outcomeOf(code: number | undefined): RecipientOutcome {
  if (code === undefined || !Number.isFinite(code)) return 'deferred';
  if (code >= 200 && code < 300) return 'delivered';
  if (code >= 500 && code < 600) return 'failed';
  return 'deferred';
}
