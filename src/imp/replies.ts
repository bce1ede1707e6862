// Reply messages of RFC 753 section 3.4 as an MPM sends them (Example 2 view 3), and
// reading any reply back. Pure: shared by the acceptor (which builds them) and the
// shipper (which reads them). docs/imp.md, "MPM acceptor", says why each field is so.
import { ErrorClass, type ImpMessage, type ListElement, type ProplistElement, type Tid } from './types.js';
import { MAX_STAMP_HOPS } from './limits.js';
import {
  acknowledgeCommand,
  canceledCommand,
  normalizeIhn,
  readArguments,
  readCommandError,
  responseCommand,
  type CommandError,
} from './message.js';
import { textElement } from './text.js';

/** The error-strings of section 3.4's table, spelled as the RFC spells them. */
export const ImpErrorString = {
  NO_ERRORS: 'No Errors',
  NOT_IMPLEMENTED: 'Command not implemented',
  COMMAND_UNRECOGNIZED: 'Syntax error, command unrecognized',
  ARGUMENTS: 'Syntax error, in arguments',
  TRY_AGAIN: 'Server error, try again later',
  NO_SERVICE: 'No service available',
} as const;

/** The reason of an ACKNOWLEDGE yes, as in Example 2. */
export const REASON_OK = 'OK';

/** The tid named in replies to a message whose own tid could not be read. */
export const NO_TID: Tid = { tn: 0, ihn: 0 };

/** The request a reply answers: its tid and stamp (the stamp may be unknown for a bad message). */
export interface ReplyTo {
  tid: Tid;
  stamp: readonly number[];
}

/** Who is replying: this MPM's ihn and the tid it gives the reply message. */
export interface Replier {
  ihn: number;
  replyTid: Tid;
}

/**
 * The mailbox of a reply: the MPM that originated the request (the ihn of its tid),
 * USER "*MPM*", as Example 2 view 3 addresses the ACKNOWLEDGE.
 */
export function mpmMailbox(originIhn: number): ProplistElement {
  return {
    type: 'proplist',
    pairs: [
      { name: 'IA', value: { type: 'integer', value: normalizeIhn(originIhn) } },
      { name: 'USER', value: textElement('*MPM*') },
    ],
  };
}

/**
 * The trail of a reply: the request's stamp with this MPM's ihn added (Example 2 view 3).
 * A stamp longer than MAX_STAMP_HOPS (a request refused for it) keeps only its first
 * MAX_STAMP_HOPS ihns, the originating MPM first, so a reply stays small and encodable.
 */
export function replyTrail(request: ReplyTo, ihn: number): number[] {
  const stamp = request.stamp.length > MAX_STAMP_HOPS ? request.stamp.slice(0, MAX_STAMP_HOPS) : request.stamp;
  return [...stamp.map(normalizeIhn), normalizeIhn(ihn)];
}

function base(request: ReplyTo, by: Replier, error: CommandError | undefined) {
  return {
    mailbox: mpmMailbox(request.tid.ihn),
    stamp: [by.ihn],
    tid: request.tid,
    trail: replyTrail(request, by.ihn),
    ...(error ? { error } : {}),
  };
}

/** ACKNOWLEDGE (reply to DELIVER); a message without a document, as Example 2 view 3. */
export function acknowledgeMessage(
  request: ReplyTo,
  by: Replier,
  o: { answer: boolean; reasons: string[]; howDelivered: string[]; error?: CommandError },
): ImpMessage {
  const command = acknowledgeCommand({ ...base(request, by, o.error), answer: o.answer, reasons: o.reasons, howDelivered: o.howDelivered });
  return { tid: by.replyTid, command };
}

/** RESPONSE (reply to PROBE): yes with the address PROPLIST, or no with reasons. */
export function responseMessage(
  request: ReplyTo,
  by: Replier,
  o: ({ answer: true; address: ProplistElement } | { answer: false; reasons: string[] }) & { error?: CommandError },
): ImpMessage {
  const b = base(request, by, o.error);
  const command = o.answer ? responseCommand({ ...b, answer: true, address: o.address }) : responseCommand({ ...b, answer: false, reasons: o.reasons });
  return { tid: by.replyTid, command };
}

/** CANCELED (reply to CANCEL, type 4). */
export function canceledMessage(request: ReplyTo, by: Replier, o: { answer: boolean; error?: CommandError }): ImpMessage {
  const command = canceledCommand({ ...base(request, by, o.error), answer: o.answer });
  return { tid: by.replyTid, command };
}

/**
 * The reply to a request this MPM does not implement: the request's operation name
 * with the reply type (2 for a request, 4 for an alarm), arguments
 * LIST( tid, trail, FALSE ) (the leading arguments every reply of section 3.4 has),
 * error-list ( 2, "Command not implemented" ).
 */
export function notImplementedMessage(request: ReplyTo & { operation: string; type: number }, by: Replier): ImpMessage {
  const b = base(request, by, undefined);
  const args: ListElement = {
    type: 'list',
    items: [
      { type: 'list', items: [{ type: 'index', value: request.tid.tn }, { type: 'integer', value: normalizeIhn(request.tid.ihn) }] },
      { type: 'list', items: b.trail.map((v) => ({ type: 'integer', value: v })) },
      { type: 'boolean', value: false },
    ],
  };
  return {
    tid: by.replyTid,
    command: {
      mailbox: b.mailbox,
      stamp: b.stamp.map(normalizeIhn),
      type: request.type === 3 ? 4 : 2,
      operation: request.operation,
      arguments: args,
      errorList: {
        type: 'list',
        items: [{ type: 'index', value: ErrorClass.RESOURCES_UNAVAILABLE }, textElement(ImpErrorString.NOT_IMPLEMENTED)],
      },
    },
  };
}

/** A reply read back: what a shipper needs to settle the transaction it answers. */
export interface ReadReply {
  operation: string;
  /** tid of the request answered ({0,0} when the request's tid could not be read). */
  tid: Tid;
  trail: number[];
  answer: boolean;
  /** ACKNOWLEDGE and RESPONSE no: the reasons. */
  reasons: string[];
  /** ACKNOWLEDGE: how-delivered. */
  howDelivered: string[];
  /** RESPONSE yes: the address. */
  address?: ProplistElement;
  /** The error-list; class 0 for none. */
  error: CommandError;
  /**
   * Whether a failed request may be tried again later: class 2 (resources
   * unavailable) and 4 (MPM error, recoverable) are transient; everything else final.
   */
  transient: boolean;
}

/**
 * Reads a reply (type 2 or 4) of any operation. Known replies are read with their
 * section 3.4 structure (throws ERR_IMP_MESSAGE when they do not have it); others
 * (a "Command not implemented" echo) by their leading tid, trail and answer.
 */
export function readReply(msg: ImpMessage): ReadReply {
  const error = readCommandError(msg.command) ?? { errorClass: ErrorClass.OK, errorString: ImpErrorString.NO_ERRORS };
  const transient = error.errorClass === ErrorClass.RESOURCES_UNAVAILABLE || error.errorClass === ErrorClass.MPM_RECOVERABLE;
  const args = readArguments(msg.command);
  switch (args.operation) {
    case 'ACKNOWLEDGE':
      return { operation: args.operation, tid: args.tid, trail: args.trail, answer: args.answer, reasons: args.reasons, howDelivered: args.howDelivered, error, transient };
    case 'RESPONSE':
      return args.answer
        ? { operation: args.operation, tid: args.tid, trail: args.trail, answer: true, reasons: [], howDelivered: [], address: args.address, error, transient }
        : { operation: args.operation, tid: args.tid, trail: args.trail, answer: false, reasons: args.reasons, howDelivered: [], error, transient };
    case 'CANCELED':
      return { operation: args.operation, tid: args.tid, trail: args.trail, answer: args.answer, reasons: [], howDelivered: [], error, transient };
    default: {
      const items = msg.command.arguments.items.filter((i) => i.type !== 'nop' && i.type !== 'pad');
      const tidEl = items[0];
      const trailEl = items[1];
      const answerEl = items[2];
      const tid =
        tidEl?.type === 'list' && tidEl.items[0]?.type === 'index' && tidEl.items[1]?.type === 'integer'
          ? { tn: tidEl.items[0].value, ihn: tidEl.items[1].value }
          : NO_TID;
      const trail = trailEl?.type === 'list' ? trailEl.items.flatMap((i) => (i.type === 'integer' ? [i.value] : [])) : [];
      return {
        operation: msg.command.operation.toUpperCase(),
        tid,
        trail,
        answer: answerEl?.type === 'boolean' ? answerEl.value : false,
        reasons: error.errorClass === ErrorClass.OK ? [] : [error.errorString],
        howDelivered: [],
        error,
        transient,
      };
    }
  }
}

/**
 * The MPM a reply is addressed to: the IA of its mailbox (Example 2 views 3 and 4
 * address the ACKNOWLEDGE to the originating MPM so), else the ihn of the tid it answers.
 */
export function replyAddressee(msg: ImpMessage, answered: Tid): number {
  const ia = msg.command.mailbox.pairs.find((p) => p.name.toUpperCase() === 'IA')?.value;
  return normalizeIhn(ia?.type === 'integer' ? ia.value : answered.ihn);
}

/**
 * An ACKNOWLEDGE that is the destination's word on the message, not one hop's: answer
 * no that is not "try again later" (class 2 or 4), or answer yes delivered some other way
 * than only "FORWARD" (accepted for forwarding: a relay's own per-hop answer).
 */
export function isEndToEndAnswer(ack: { answer: boolean; howDelivered: readonly string[]; transient: boolean }): boolean {
  if (!ack.answer) return !ack.transient;
  return !(ack.howDelivered.length > 0 && ack.howDelivered.every((h) => h.trim().toUpperCase() === 'FORWARD'));
}

/**
 * A reply passed back by a relay (Example 2 view 4): the same message with the relay's
 * ihn added to its stamp; tid, mailbox, arguments (trail included) and error-list unchanged.
 */
export function passedBackReply(msg: ImpMessage, ihn: number): ImpMessage {
  return { tid: msg.tid, command: { ...msg.command, stamp: [...msg.command.stamp.map(normalizeIhn), normalizeIhn(ihn)] } };
}
