// Message objects (RFC 753 sections 3.3-3.5) to and from element trees:
// tid, command, document, plus builders and argument readers for the six
// commands of section 3.4.
import { ImpError, ImpErrorCode } from './errors.js';
import {
  booleanValue,
  expectType,
  fault,
  fields,
  indexValue,
  integerValue,
  proplistOf,
  significantItems,
  StructureFault,
  withPathErrors,
} from './structure.js';
import { textElement, textValue } from './text.js';
import type { Element, ImpCommand, ListElement, ProplistElement, PropPair, Tid } from './types.js';

const list = (items: Element[]): ListElement => ({ type: 'list', items });
const index = (value: number): Element => ({ type: 'index', value });
const integer = (value: number): Element => ({ type: 'integer', value });
const boolean = (value: boolean): Element => ({ type: 'boolean', value });

// ---- tid -------------------------------------------------------------------

export function tidElement(tid: Tid): ListElement {
  return list([index(tid.tn), integer(tid.ihn)]);
}

export function readTid(el: Element, path: string): Tid {
  const [tn, ihn] = fields(el, path, ['tn', 'ihn']);
  return { tn: indexValue(tn!, `${path}.tn`), ihn: integerValue(ihn!, `${path}.ihn`) };
}

/** ihn as signed 32-bit (how it travels); accepts 0..2^32-1 too. */
export function normalizeIhn(ihn: number): number {
  return ihn | 0;
}

export function tidKey(tid: Tid): string {
  return `${tid.tn}:${tid.ihn | 0}`;
}

/** A tid as one exact number (tn * 2^32 + unsigned ihn): a cheap Map key. */
export function tidNumber(tid: Tid): number {
  return tid.tn * 0x100000000 + (tid.ihn >>> 0);
}

export function formatTid(tid: Tid): string {
  return `( ${tid.tn}, ${tid.ihn | 0} )`;
}

// ---- property lists ----------------------------------------------------------

/** A PROPLIST from a record: numbers become INTEGER, strings TEXT, elements stay as they are. */
export function proplist(record: Record<string, string | number | Element>): ProplistElement {
  const pairs: PropPair[] = [];
  for (const [name, v] of Object.entries(record)) {
    pairs.push({ name, value: typeof v === 'number' ? integer(v) : typeof v === 'string' ? textElement(v) : v });
  }
  return { type: 'proplist', pairs };
}

/** The value of the first pair named `name` (case-insensitive), or undefined. */
export function proplistGet(pl: ProplistElement, name: string): Element | undefined {
  const want = name.toUpperCase();
  return pl.pairs.find((p) => p.name.toUpperCase() === want)?.value;
}

// ---- command -----------------------------------------------------------------

export function commandElement(cmd: ImpCommand): ListElement {
  return list([
    cmd.mailbox,
    list(cmd.stamp.map(integer)),
    index(cmd.type),
    textElement(cmd.operation),
    cmd.arguments,
    cmd.errorList,
  ]);
}

const COMMAND_FIELDS = ['mailbox', 'stamp', 'type', 'operation', 'arguments', 'error-list'];

export function readCommand(el: Element, path: string): ImpCommand {
  const [mailbox, stamp, type, operation, args, errorList] = fields(el, path, COMMAND_FIELDS);
  const stampItems = significantItems(expectType(stamp!, 'list', `${path}.stamp`));
  const stampValues = new Array<number>(stampItems.length);
  for (let i = 0; i < stampItems.length; i++) stampValues[i] = integerValue(stampItems[i]!, `${path}.stamp[${i}]`);
  const typeValue = indexValue(type!, `${path}.type`);
  if (typeValue < 1 || typeValue > 4) fault(type!, `${path}.type`, `command type ${typeValue} is not 1..4`);
  const errs = expectType(errorList!, 'list', `${path}.errorList`);
  const errItems = significantItems(errs);
  if (errItems.length !== 0) {
    if (errItems.length !== 2) fault(errs, `${path}.errorList`, `error-list must be LIST( ) or LIST( error-class, error-string )`);
    indexValue(errItems[0]!, `${path}.errorList.errorClass`);
    expectType(errItems[1]!, 'text', `${path}.errorList.errorString`);
  }
  return {
    mailbox: proplistOf(mailbox!, `${path}.mailbox`),
    stamp: stampValues,
    type: typeValue,
    operation: textValue(expectType(operation!, 'text', `${path}.operation`)),
    arguments: expectType(args!, 'list', `${path}.arguments`),
    errorList: errs,
  };
}

export interface CommandError {
  errorClass: number;
  errorString: string;
}

/** The error-list of a reply; undefined for an empty one (requests). */
export function readCommandError(cmd: ImpCommand): CommandError | undefined {
  return withPathErrors(() => {
    const items = significantItems(cmd.errorList);
    if (items.length === 0) return undefined;
    if (items.length !== 2) fault(cmd.errorList, 'command.errorList', 'error-list must be LIST( ) or LIST( error-class, error-string )');
    return {
      errorClass: indexValue(items[0]!, 'command.errorList.errorClass'),
      errorString: textValue(items[1]!, 'command.errorList.errorString'),
    };
  });
}

function errorListElement(err: CommandError | undefined): ListElement {
  return err ? list([index(err.errorClass), textElement(err.errorString)]) : list([]);
}

// ---- the six commands of section 3.4 --------------------------------------------

interface CommandBase {
  mailbox: ProplistElement;
  /** ihns of the MPMs that handled the message so far. */
  stamp: number[];
}
interface ReplyBase extends CommandBase {
  /** tid of the originating message. */
  tid: Tid;
  /** The stamp of the originating message. */
  trail: number[];
  /** Defaults to class 0, "No Errors" (as RFC 753 Example 2). */
  error?: CommandError;
}

const NO_ERRORS: CommandError = { errorClass: 0, errorString: 'No Errors' };
const texts = (xs: string[]): ListElement => list(xs.map(textElement));
const ints = (xs: number[]): ListElement => list(xs.map(integer));

/** DELIVER (type 1): arguments LIST( LIST( TEXT, ... ) ) of options (REGULAR, FORWARD, GENDEL). */
export function deliverCommand(o: CommandBase & { options?: string[] }): ImpCommand {
  return command(o, 1, 'DELIVER', [texts(o.options ?? ['REGULAR'])], undefined);
}

/** ACKNOWLEDGE (type 2): LIST( tid, trail, answer, LIST( reason ), LIST( how-delivered ) ). */
export function acknowledgeCommand(o: ReplyBase & { answer: boolean; reasons: string[]; howDelivered: string[] }): ImpCommand {
  return command(
    o,
    2,
    'ACKNOWLEDGE',
    [tidElement(o.tid), ints(o.trail), boolean(o.answer), texts(o.reasons), texts(o.howDelivered)],
    o.error ?? NO_ERRORS,
  );
}

/** PROBE (type 1): no arguments. */
export function probeCommand(o: CommandBase): ImpCommand {
  return command(o, 1, 'PROBE', [], undefined);
}

/** RESPONSE (type 2): LIST( tid, trail, TRUE, address ) or LIST( tid, trail, FALSE, LIST( reason ) ). */
export function responseCommand(
  o: ReplyBase & ({ answer: true; address: ProplistElement } | { answer: false; reasons: string[] }),
): ImpCommand {
  const last = o.answer ? o.address : texts(o.reasons);
  return command(o, 2, 'RESPONSE', [tidElement(o.tid), ints(o.trail), boolean(o.answer), last], o.error ?? NO_ERRORS);
}

/** CANCEL (type 3): LIST( tid ) of the transaction to abort. */
export function cancelCommand(o: CommandBase & { tid: Tid }): ImpCommand {
  return command(o, 3, 'CANCEL', [tidElement(o.tid)], undefined);
}

/** CANCELED (type 4): LIST( tid, trail, answer ). */
export function canceledCommand(o: ReplyBase & { answer: boolean }): ImpCommand {
  return command(o, 4, 'CANCELED', [tidElement(o.tid), ints(o.trail), boolean(o.answer)], o.error ?? NO_ERRORS);
}

function command(o: CommandBase, type: number, operation: string, args: Element[], err: CommandError | undefined): ImpCommand {
  return { mailbox: o.mailbox, stamp: o.stamp.map(normalizeIhn), type, operation, arguments: list(args), errorList: errorListElement(err) };
}

export type CommandArguments =
  | { operation: 'DELIVER'; options: string[] }
  | { operation: 'ACKNOWLEDGE'; tid: Tid; trail: number[]; answer: boolean; reasons: string[]; howDelivered: string[] }
  | { operation: 'PROBE' }
  | { operation: 'RESPONSE'; tid: Tid; trail: number[]; answer: true; address: ProplistElement }
  | { operation: 'RESPONSE'; tid: Tid; trail: number[]; answer: false; reasons: string[] }
  | { operation: 'CANCEL'; tid: Tid }
  | { operation: 'CANCELED'; tid: Tid; trail: number[]; answer: boolean }
  | { operation: 'OTHER'; name: string; arguments: ListElement };

function textList(el: Element, path: string): string[] {
  return significantItems(expectType(el, 'list', path)).map((t, i) => textValue(t, `${path}[${i}]`));
}
function intList(el: Element, path: string): number[] {
  return significantItems(expectType(el, 'list', path)).map((t, i) => integerValue(t, `${path}[${i}]`));
}

/**
 * Reads a command's arguments per section 3.4 (operation names are case
 * independent). Unknown operations come back as OTHER with the raw LIST.
 * Throws ERR_IMP_MESSAGE (with the argument path) when a known command's
 * arguments do not have its structure.
 */
export function readArguments(cmd: ImpCommand): CommandArguments {
  const op = cmd.operation.toUpperCase();
  const p = 'command.arguments';
  try {
    switch (op) {
      case 'DELIVER': {
        const [options] = fields(cmd.arguments, p, ['options']);
        return { operation: op, options: textList(options!, `${p}.options`) };
      }
      case 'ACKNOWLEDGE': {
        const [tid, trail, answer, reasons, how] = fields(cmd.arguments, p, ['tid', 'trail', 'answer', 'reasons', 'how-delivered']);
        return {
          operation: op,
          tid: readTid(tid!, `${p}.tid`),
          trail: intList(trail!, `${p}.trail`),
          answer: booleanValue(answer!, `${p}.answer`),
          reasons: textList(reasons!, `${p}.reasons`),
          howDelivered: textList(how!, `${p}.howDelivered`),
        };
      }
      case 'PROBE':
        fields(cmd.arguments, p, []);
        return { operation: op };
      case 'RESPONSE': {
        const [tid, trail, answer, last] = fields(cmd.arguments, p, ['tid', 'trail', 'answer', 'address-or-reasons']);
        const base = { operation: op, tid: readTid(tid!, `${p}.tid`), trail: intList(trail!, `${p}.trail`) } as const;
        return booleanValue(answer!, `${p}.answer`)
          ? { ...base, answer: true, address: proplistOf(last!, `${p}.address`) }
          : { ...base, answer: false, reasons: textList(last!, `${p}.reasons`) };
      }
      case 'CANCEL': {
        const [tid] = fields(cmd.arguments, p, ['tid']);
        return { operation: op, tid: readTid(tid!, `${p}.tid`) };
      }
      case 'CANCELED': {
        const [tid, trail, answer] = fields(cmd.arguments, p, ['tid', 'trail', 'answer']);
        return {
          operation: op,
          tid: readTid(tid!, `${p}.tid`),
          trail: intList(trail!, `${p}.trail`),
          answer: booleanValue(answer!, `${p}.answer`),
        };
      }
      default:
        return { operation: 'OTHER', name: cmd.operation, arguments: cmd.arguments };
    }
  } catch (err) {
    if (err instanceof StructureFault) throw new ImpError(ImpErrorCode.MESSAGE, `${op} arguments: ${err.message}`, { path: err.path });
    throw err;
  }
}
