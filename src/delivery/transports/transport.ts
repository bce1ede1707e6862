import type { Readable } from 'node:stream';
import type { NextHop } from '../../config/schema.js';
import type { ImpHop, MessageParams, RecipientParams } from '../../store/queue-store.js';
import type { AttemptSignal } from '../deadline.js';

export type RecipientOutcome = 'delivered' | 'deferred' | 'failed';

export interface RecipientResult {
  rcpt: string;
  outcome: RecipientOutcome;
  /** The next hop's reply (or mailbag's own, e.g. `451 4.4.1 connection refused`). */
  reply: string;
  /** Maildir: the file name the message was delivered as. */
  deliveredAs?: string;
  /**
   * A failure someone else reports to the sender (IMP: the ACKNOWLEDGE was passed back
   * to the originating MPM, which bounces it): no bounce from here. Says who.
   */
  reportedBy?: string;
  /** IMP: the DELIVER shipped for this recipient and its ACKNOWLEDGE (recorded with the attempt). */
  imp?: ImpHop;
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
  /**
   * Aborted when the attempt round's deadline passes: stop, and resolve the unfinished
   * recipients as deferred. The queue waits a bounded time for that before it counts
   * them deferred itself.
   */
  signal?: AttemptSignal;
}

export interface DeliveryResult {
  /** The attempt's overall reply, for the attempt record. */
  reply: string;
  recipients: RecipientResult[];
  /** For delivered recipients; absent means `delivered` (final delivery). */
  successDsn?: SuccessDsn | undefined;
}

/**
 * The next hop already has as many attempts in flight as it may (queue.perNexthopConcurrency)
 * and none came free in time: nothing was tried, so this is not an attempt. The queue
 * releases the recipients and looks again soon, so a hanging next hop never holds the
 * queue's slots.
 */
export interface HopBusy {
  readonly busy: true;
  reply: string;
  recipients: string[];
}

export function hopBusy(req: DeliveryRequest, reply: string): HopBusy {
  return { busy: true, reply, recipients: [...req.recipients] };
}

export function isHopBusy(r: DeliveryResult | HopBusy): r is HopBusy {
  return 'busy' in r && r.busy;
}

/**
 * A kind of next hop (`smtp`, `lmtp`, `maildir`; `imp` later). Implementations never
 * throw for delivery problems: every recipient comes back with an outcome, or the whole
 * group comes back as `HopBusy` (not attempted).
 */
export interface NextHopTransport {
  readonly kind: NextHop['kind'];
  deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult | HopBusy>;
  close(): Promise<void>;
}

/** `451 4.2.0 ...` -> `451 4.2.0`; a reply without a usable code gets its outcome's generic one. */
function statusOf(r: RecipientResult): string {
  const full = /^\d{3} \d\.\d{1,3}\.\d{1,3}(?= |$)/.exec(r.reply)?.[0];
  if (full && outcomeOf(Number(full.slice(0, 3))) === r.outcome) return full;
  return r.outcome === 'deferred' ? '451 4.0.0' : r.outcome === 'failed' ? '550 5.0.0' : '250 2.0.0';
}

/** The most an attempt's summary reply holds: a long recipient list is cut, with a count of the rest. */
const MAX_SUMMARY = 2000;

/**
 * An attempt's overall reply when its recipients fared differently: counts, then each
 * recipient's reply. It is 2xx only when every recipient was delivered; otherwise it has
 * the code of the first deferred (else failed) recipient, so a log line or `queue show`
 * never reads as if the whole group had landed.
 */
export function summaryReply(url: string, results: readonly RecipientResult[]): string {
  const count = (o: RecipientOutcome) => results.filter((r) => r.outcome === o).length;
  const [delivered, deferred, failed] = [count('delivered'), count('deferred'), count('failed')];
  const worst = results.find((r) => r.outcome === 'deferred') ?? results.find((r) => r.outcome === 'failed');
  const code = worst ? statusOf(worst) : '250 2.0.0';
  const counts = [`${delivered} of ${results.length} delivered`, deferred ? `${deferred} deferred` : '', failed ? `${failed} failed` : ''].filter(Boolean).join(', ');
  let text = `${code} ${url}: ${counts}`;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const part = `${i === 0 ? ': ' : '; '}<${r.rcpt}> ${r.reply}`;
    if (text.length + part.length > MAX_SUMMARY) return `${text}; ... ${results.length - i} more`;
    text += part;
  }
  return text;
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
