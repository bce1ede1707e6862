// The Message-Bag Processor (RFC 753 section 3.7): splits a bag into its messages and
// answers each one. DELIVERs are spooled through the durable accept path (the same one
// SMTP uses) and answered yes only once their commit resolved; PROBE and CANCEL are
// answered from the recipient policy and the store. Replies come back in bag order.
import type { Logger } from 'pino';
import type { AcceptPath, IncomingMessage } from '../delivery/accept.js';
import { removeFile } from '../delivery/spool.js';
import { rfc5322Date } from '../mime/date.js';
import {
  acknowledgeMessage,
  canceledMessage,
  ErrorClass,
  ImpErrorString,
  isImpError,
  MAX_OPERATION_OCTETS,
  MAX_STAMP_HOPS,
  NO_TID,
  notImplementedMessage,
  readArguments,
  REASON_OK,
  responseMessage,
  type BagEntry,
  type ImpMessage,
  type Replier,
  type ReplyTo,
  type Tid,
} from '../imp/index.js';
import { impMessageToMime, mailboxAddress, recipientMailbox } from '../imp/mime/index.js';
import { previousMailbagQid } from '../store/correlation-keys.js';
import type { Store } from '../store/store.js';
import type { ImpRecipientPolicy, MessageKind } from './recipient-policy.js';

export interface BagProcessorOptions {
  ihn: number;
  /** Our hostname, for the Received: line. */
  hostname: string;
  accept: AcceptPath;
  store: Store;
  policy: ImpRecipientPolicy;
  maxMessagesPerBag: number;
  /**
   * Octets the DELIVERs of one bag may make this MPM spool, all copies together (each
   * DELIVER is its own spool copy, though a bag may carry its document once for all of
   * them). Each DELIVER past it gets a class 2 reply; the first one spooled always fits.
   */
  maxBagSpoolBytes: number;
  acceptConcurrency: number;
  logger: Logger;
  /** Reply tids: this MPM's own transaction numbers. */
  nextReplyTid(): Tid;
  events?: ImpProcessorEvents;
  /**
   * Replies (type 2 and 4) go here and get no reply; absent: the `reply` event only. A
   * reply it cannot record fails the bag (the acceptor answers class 4 and closes), so
   * the MPM that sent it keeps it and tries again.
   */
  replies?: { handle(msg: ImpMessage, peer: string): Promise<void> };
}

export interface ImpProcessorEvents {
  /** A DELIVER was committed (the queue can start on it). */
  accepted?(qid: string, kind: MessageKind): void;
  /** A message was answered; `answer` as in its reply. */
  answered?(operation: string, answer: boolean, errorClass: number): void;
  /** A reply (type 2 or 4) arrived: it is not answered; whoever awaits it may use it. */
  reply?(msg: ImpMessage, peer: string): void;
}

export interface Peer {
  address: string;
}

const REQUEST_OPERATIONS = new Set(['DELIVER', 'PROBE', 'CANCEL']);

/** The reply to one message, or undefined for a message that gets none (a reply). */
type Answer = ImpMessage | undefined;

/** What the DELIVERs of one bag have asked to spool so far (reserved before spooling). */
interface SpoolBudget {
  reserved: number;
  copies: number;
  refused: number;
}

export class BagProcessor {
  constructor(private readonly o: BagProcessorOptions) {}

  /** Counts a reply by the request's operation: one of section 3.4's, else OTHER (a peer's names are not metric labels). */
  private answered(operation: string, answer: boolean, errorClass: number): void {
    this.o.events?.answered?.(REQUEST_OPERATIONS.has(operation) ? operation : 'OTHER', answer, errorClass);
  }

  private replier(): Replier {
    return { ihn: this.o.ihn, replyTid: this.o.nextReplyTid() };
  }

  /**
   * Answers every entry of a bag, in order. Never throws for one message's trouble; it
   * throws (after the bag) only when a reply it was handed could not be recorded.
   */
  async process(entries: readonly BagEntry[], peer: Peer): Promise<ImpMessage[]> {
    const answers: Answer[] = new Array(entries.length);
    const unrecorded: Error[] = [];
    const budget: SpoolBudget = { reserved: 0, copies: 0, refused: 0 };
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const i = next++;
        const entry = entries[i]!;
        const type = entry.message?.command.type;
        if (entry.message && (type === 2 || type === 4) && entry.index < this.o.maxMessagesPerBag) {
          this.o.events?.reply?.(entry.message, peer.address);
          await this.o.replies?.handle(entry.message, peer.address).catch((err: Error) => {
            this.o.logger.error({ err, peer: peer.address, index: i }, 'imp: a reply could not be recorded');
            unrecorded.push(err);
          });
          continue;
        }
        try {
          answers[i] = await this.answer(entry, peer, budget);
        } catch (err) {
          // A fault of ours: this message is answered "try again later", the others as usual.
          this.o.logger.error({ err, peer: peer.address, index: i }, 'imp: internal error on a message');
          const request: ReplyTo = { tid: entry.tid ?? NO_TID, stamp: entry.stamp ?? [] };
          answers[i] = this.refusal(request, (entry.operation ?? '').toUpperCase(), {
            errorClass: ErrorClass.MPM_RECOVERABLE,
            errorString: `${ImpErrorString.TRY_AGAIN}: ${clip((err as Error).message)}`,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.acceptConcurrency, entries.length) }, worker));
    if (budget.refused) {
      this.o.logger.warn(
        { peer: peer.address, spooled: budget.copies, octets: budget.reserved, refused: budget.refused, limit: this.o.maxBagSpoolBytes },
        'imp: bag spool limit reached',
      );
    }
    if (unrecorded.length) throw unrecorded[0]!;
    return answers.filter((a): a is ImpMessage => a !== undefined);
  }

  private async answer(entry: BagEntry, peer: Peer, budget: SpoolBudget): Promise<Answer> {
    const request: ReplyTo = { tid: entry.tid ?? NO_TID, stamp: entry.stamp ?? [] };
    const operation = (entry.operation ?? '').toUpperCase();
    if (entry.index >= this.o.maxMessagesPerBag) {
      return this.refusal(request, operation, {
        errorClass: ErrorClass.RESOURCES_UNAVAILABLE,
        errorString: `Resources unavailable: a bag may hold ${this.o.maxMessagesPerBag} messages; this is message ${entry.index + 1}`,
      });
    }
    if (entry.error || !entry.message) {
      const err = entry.error;
      const what = entry.operation === undefined ? ImpErrorString.COMMAND_UNRECOGNIZED : ImpErrorString.ARGUMENTS;
      const detail = err ? `${err.path ?? `message[${entry.index}]`}: ${clip(err.reason)}` : 'unreadable message';
      this.o.logger.info({ peer: peer.address, index: entry.index, err: err?.message }, 'imp: malformed message');
      return this.refusal(request, operation, { errorClass: ErrorClass.USER_ERROR, errorString: `${what}: ${detail}` });
    }
    const msg = entry.message;
    const type = msg.command.type;
    if (msg.command.operation.length > MAX_OPERATION_OCTETS) {
      const detail = `message[${entry.index}].command.operation: an operation name of ${msg.command.operation.length} octets; this MPM reads at most ${MAX_OPERATION_OCTETS}`;
      this.o.logger.info({ peer: peer.address, index: entry.index, err: detail }, 'imp: malformed message');
      return this.refusal(request, '', { errorClass: ErrorClass.USER_ERROR, errorString: `${ImpErrorString.COMMAND_UNRECOGNIZED}: ${detail}` });
    }
    if (msg.command.stamp.length > MAX_STAMP_HOPS) return this.tooManyHops(msg, operation, request, peer);
    if (type === 1 && operation === 'DELIVER') return this.deliver(msg, entry.index, peer, request, budget);
    if (type === 1 && operation === 'PROBE') return this.probe(msg, entry.index, request);
    if (type === 3 && operation === 'CANCEL') return this.cancel(msg, entry.index, request);
    this.answered(operation, false, ErrorClass.RESOURCES_UNAVAILABLE);
    return notImplementedMessage({ ...request, operation: msg.command.operation, type }, this.replier());
  }

  /**
   * The reply to a message that cannot be carried out: the reply its operation has
   * (ACKNOWLEDGE for DELIVER and for anything whose operation could not be read,
   * RESPONSE for PROBE, CANCELED for CANCEL) with answer no and the error-list.
   */
  private refusal(request: ReplyTo, operation: string, error: { errorClass: number; errorString: string }): ImpMessage {
    this.answered(operation || 'DELIVER', false, error.errorClass);
    if (operation === 'PROBE') return responseMessage(request, this.replier(), { answer: false, reasons: [error.errorString], error });
    if (operation === 'CANCEL') return canceledMessage(request, this.replier(), { answer: false, error });
    return acknowledgeMessage(request, this.replier(), { answer: false, reasons: [error.errorString], howDelivered: [], error });
  }

  /**
   * A request whose stamp holds more ihns than MAX_STAMP_HOPS: answered no before anything
   * is spooled (as a routing loop is: an answer, not an error), its trail cut to fit.
   */
  private tooManyHops(msg: ImpMessage, operation: string, request: ReplyTo, peer: Peer): ImpMessage {
    const reason = `too many hops: the stamp holds ${msg.command.stamp.length} ihns, this MPM takes at most ${MAX_STAMP_HOPS}`;
    this.o.logger.warn({ peer: peer.address, tid: msg.tid, hops: msg.command.stamp.length }, 'imp: too many hops');
    if (operation === 'DELIVER') return this.ack(request, false, [reason], []);
    this.answered(operation, false, ErrorClass.OK);
    if (operation === 'PROBE') return responseMessage(request, this.replier(), { answer: false, reasons: [reason] });
    if (operation === 'CANCEL') {
      // CANCELED names the transaction to be canceled when the CANCEL could say which.
      let target = request.tid;
      try {
        const args = readArguments(msg.command);
        if (args.operation === 'CANCEL') target = args.tid;
      } catch (err) {
        if (!isImpError(err)) throw err;
      }
      return canceledMessage({ tid: target, stamp: request.stamp }, this.replier(), { answer: false });
    }
    return notImplementedMessage({ ...request, operation: msg.command.operation, type: msg.command.type }, this.replier());
  }

  private ack(request: ReplyTo, answer: boolean, reasons: string[], howDelivered: string[], error?: { errorClass: number; errorString: string }): ImpMessage {
    this.answered('DELIVER', answer, error?.errorClass ?? ErrorClass.OK);
    return acknowledgeMessage(request, this.replier(), { answer, reasons: reasons.map(clip), howDelivered, ...(error ? { error } : {}) });
  }

  private async deliver(msg: ImpMessage, index: number, peer: Peer, request: ReplyTo, budget: SpoolBudget): Promise<ImpMessage> {
    const ihn = this.o.ihn | 0;
    // Stamp first: a message that has been here before is in a routing loop (section 3.7).
    if (msg.command.stamp.some((s) => (s | 0) === ihn)) {
      this.o.logger.warn({ peer: peer.address, tid: msg.tid, stamp: msg.command.stamp }, 'imp: routing loop');
      return this.ack(request, false, [`routing loop: this MPM (ihn ${ihn}) is already in the stamp ${msg.command.stamp.join(', ')}`], []);
    }
    let mime: ReturnType<typeof impMessageToMime>;
    try {
      readArguments(msg.command);
      mime = impMessageToMime(msg, `message[${index}]`);
    } catch (err) {
      if (!isImpError(err)) throw err;
      const detail = `${ImpErrorString.ARGUMENTS}: ${err.path ?? `message[${index}]`}: ${clip(err.reason)}`;
      return this.ack(request, false, [detail], [], { errorClass: ErrorClass.USER_ERROR, errorString: detail });
    }
    const verdict = this.o.policy.classify(mime.recipient, peer.address);
    if (!verdict.ok) return this.ack(request, false, [verdict.reason], []);
    // Reserved before the first await, so the DELIVERs past the limit are the last ones of
    // the bag whatever the concurrency; nothing is opened for them.
    if (budget.copies > 0 && budget.reserved + mime.raw.length > this.o.maxBagSpoolBytes) {
      budget.refused++;
      const detail = `Resources unavailable: this bag's DELIVERs would make this MPM spool more than ${this.o.maxBagSpoolBytes} octets (imp.maxBagSpoolBytes); ship this message in another bag`;
      return this.ack(request, false, [detail], [], { errorClass: ErrorClass.RESOURCES_UNAVAILABLE, errorString: detail });
    }
    budget.reserved += mime.raw.length;
    budget.copies++;

    let incoming: IncomingMessage | undefined;
    try {
      incoming = await this.o.accept.open({
        sender: mime.envelopeFrom ?? senderOf(msg),
        recipients: [{ address: mime.recipient }],
        client: { address: peer.address, helo: `ihn ${msg.tid.ihn}` },
      });
      const { writer, qid } = incoming;
      writer.write(receivedLine(peer.address, msg, this.o.hostname, qid, mime.recipient, new Date(incoming.receivedAt)));
      await new Promise<void>((resolve, reject) => {
        writer.once('error', reject);
        writer.once('finish', resolve);
        writer.end(mime.raw);
      });
      // A forward from another mailbag links back to the qid it had there (its Received field).
      const previous = previousMailbagQid(mime.raw);
      const done = await this.o.accept.commit(incoming, {
        imp: { tid: msg.tid, stamp: msg.command.stamp, peer: peer.address },
        ...(previous ? { origin: { qid: previous, kind: 'imp' as const } } : {}),
      });
      incoming = undefined;
      this.o.logger.info({ qid: done.qid, peer: peer.address, tid: msg.tid, rcpt: mime.recipient, kind: verdict.kind, size: done.size }, 'imp: accepted');
      this.o.events?.accepted?.(done.qid, verdict.kind);
      return this.ack(request, true, [REASON_OK], [verdict.kind === 'foreign' ? 'FORWARD' : 'ACCEPT']);
    } catch (err) {
      if (incoming) await this.o.accept.abort(incoming).catch(() => undefined);
      this.o.logger.error({ err, peer: peer.address, tid: msg.tid }, 'imp: could not accept a message');
      const detail = `${ImpErrorString.TRY_AGAIN}: ${clip((err as Error).message)}`;
      return this.ack(request, false, [detail], [], { errorClass: ErrorClass.MPM_RECOVERABLE, errorString: detail });
    }
  }

  private probe(msg: ImpMessage, index: number, request: ReplyTo): ImpMessage {
    let address: string;
    try {
      readArguments(msg.command);
      address = mailboxAddress(msg.command.mailbox, `message[${index}].command.mailbox`);
    } catch (err) {
      if (!isImpError(err)) throw err;
      const detail = `${ImpErrorString.ARGUMENTS}: ${err.path ?? `message[${index}]`}: ${clip(err.reason)}`;
      this.answered('PROBE', false, ErrorClass.USER_ERROR);
      return responseMessage(request, this.replier(), { answer: false, reasons: [detail], error: { errorClass: ErrorClass.USER_ERROR, errorString: detail } });
    }
    const local = this.o.policy.isLocal(address);
    const verdict = local ? this.o.policy.classify(address, '') : undefined;
    if (verdict?.ok) {
      this.answered('PROBE', true, ErrorClass.OK);
      return responseMessage(request, this.replier(), { answer: true, address: recipientMailbox(address) });
    }
    this.answered('PROBE', false, ErrorClass.OK);
    const reason = !local ? 'no such host' : verdict && !verdict.ok && verdict.reason === 'no such user' ? "Mailbox doesn't exist" : verdict && !verdict.ok ? verdict.reason : "Mailbox doesn't exist";
    return responseMessage(request, this.replier(), { answer: false, reasons: [clip(reason)] });
  }

  private async cancel(msg: ImpMessage, index: number, request: ReplyTo): Promise<ImpMessage> {
    let target: Tid;
    try {
      const args = readArguments(msg.command);
      if (args.operation !== 'CANCEL') throw new Error('unreachable');
      target = args.tid;
    } catch (err) {
      if (!isImpError(err)) throw err;
      const detail = `${ImpErrorString.ARGUMENTS}: ${err.path ?? `message[${index}]`}: ${clip(err.reason)}`;
      this.answered('CANCEL', false, ErrorClass.USER_ERROR);
      return canceledMessage(request, this.replier(), { answer: false, error: { errorClass: ErrorClass.USER_ERROR, errorString: detail } });
    }
    // Only the MPM that originated a transaction (the ihn of its tid) may cancel it.
    let withdrawn = 0;
    let blocked = false;
    if ((target.ihn | 0) === (msg.tid.ihn | 0)) {
      for (const row of this.o.store.queue.impMessagesByTid(target)) {
        if (row.state !== 'queued') continue;
        const r = this.o.store.queue.withdraw(row.qid);
        if (r.inFlight) blocked = true;
        withdrawn += r.deleted;
        if (r.finished) for (const path of r.finished.spoolFiles) await removeFile(path);
        if (r.deleted) this.o.logger.info({ qid: row.qid, tid: target }, 'imp: canceled by CANCEL');
      }
    }
    const answer = withdrawn > 0 && !blocked;
    this.answered('CANCEL', answer, ErrorClass.OK);
    // CANCELED names the transaction canceled; its trail is the CANCEL's stamp (section 3.4).
    return canceledMessage({ tid: target, stamp: request.stamp }, this.replier(), { answer });
  }
}

/**
 * Error text for a reply (TEXT: 7-bit). A reason may quote the request (a value it could
 * not read, octets of a BITSTR among them), and a reply goes back once per message, while
 * messages may share the portion quoted: short, and 8-bit characters as `?`.
 */
const MAX_ERROR_DETAIL = 400;
function clip(text: string): string {
  const short = text.length <= MAX_ERROR_DETAIL ? text : `${text.slice(0, MAX_ERROR_DETAIL - 3)}...`;
  return short.replace(/[^\x00-\x7f]/g, '?');
}

/** The envelope sender of a document without our carriage: the address in its FROM, if it has one. */
function senderOf(msg: ImpMessage): string {
  const from = msg.document?.header.pairs.find((p) => p.name.toUpperCase() === 'FROM')?.value;
  if (from?.type !== 'text') return '';
  const text = Buffer.from(from.data).toString('latin1');
  const m = /<([^<>@\s]+@[^<>@\s]+)>/.exec(text) ?? /^\s*([^<>@\s]+@[^<>@\s]+)\s*$/.exec(text);
  return m?.[1] ?? '';
}

function receivedLine(peer: string, msg: ImpMessage, by: string, qid: string, rcpt: string, date: Date): Buffer {
  const clean = (s: string) => s.replace(/[^\x21-\x7e ]/g, '?');
  return Buffer.from(
    `Received: from ihn ${msg.tid.ihn | 0} ([${clean(peer)}])\r\n\tby ${clean(by)} (mailbag) with IMP id ${qid}\r\n\tfor <${clean(rcpt)}>; ${rfc5322Date(date)}\r\n`,
    'utf8',
  );
}
