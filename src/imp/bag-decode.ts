// Byte-level message-bag reader: walks the structural LISTs of a bag (bag,
// message, tid, command-list, document-list, ...) straight from the octets
// and hands only the payload portions (mailbox, arguments, error-list,
// header, body) to the element decoder. No element objects are built for the
// scaffolding, and every structure error carries its exact offset.
// bagMessages (bag.ts) reads the same structure from an element tree; tests
// check that the two agree.
import { ElementDecoder } from './element-decode.js';
import { ImpError, ImpErrorCode } from './errors.js';
import { containsEncrypt } from './encrypt.js';
import { formatTid, tidNumber } from './message.js';
import { significantItems } from './structure.js';
import { textValue } from './text.js';
import type { Element, ImpCommand, ImpDocument, ImpMessage, ListElement, ProplistElement, SharedPortions, Tid } from './types.js';

const NAME = ['NOP', 'PAD', 'BOOLEAN', 'INDEX', 'INTEGER', 'BITSTR', 'TEXT', 'LIST', 'PROPLIST', 'ENCRYPT'];

/** An open structural LIST: items left to read and where it ends (a class, so every instance has one shape). */
class OpenList {
  /** For (content, payload) lists: the content value. */
  content = 0;
  at = 0;
  end = 0;
  left = 0;
  constructor(readonly depth: number) {}
}

class BagReader {
  readonly b: Buffer;
  /** Index of the message being read; -1 outside messages. Paths are built only when an error is thrown. */
  message = -1;
  /**
   * One OpenList per depth, reused: the structure is walked depth-first and a
   * list is always closed before the next one at its depth opens.
   */
  private readonly lists: OpenList[] = [];
  constructor(readonly d: ElementDecoder) {
    this.b = d.buf;
  }

  /** `path` is relative to the current message (e.g. `.command.type`), or absolute outside one. */
  fail(at: number, path: string, message: string, code: ImpErrorCode = ImpErrorCode.MESSAGE): never {
    const full = this.message < 0 ? path : `message[${this.message}]${path}`;
    throw new ImpError(code, message, { offset: at, path: full });
  }

  /** Opens the LIST at d.pos (ending by `end`), with the element decoder's checks. */
  open(end: number, depth: number, path: string, what: string, suffix = ''): OpenList {
    const d = this.d;
    const b = this.b;
    const at = d.pos;
    if (at < end && b[at] === 7 && at + 6 <= end) {
      const n = (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
      const count = (b[at + 4]! << 8) | b[at + 5]!;
      if (at + 4 + n <= end && depth <= d.maxDepth && n >= 2 && count <= n - 2) {
        d.pos = at + 6;
        const l = (this.lists[depth] ??= new OpenList(depth));
        l.at = at;
        l.end = at + 4 + n;
        l.left = count;
        l.content = 0;
        return l;
      }
    }
    // Not a well-formed LIST header: let the element decoder report exactly what is wrong.
    const el = d.element(end, depth);
    return this.fail(at, path + suffix, `expected ${what} (a LIST), found ${NAME[ElementCode(el)]}`);
  }

  /** Moves to the next significant item (skipping NOP and PAD); false when the list has no more. */
  next(l: OpenList): boolean {
    const d = this.d;
    const b = this.b;
    while (l.left > 0) {
      if (d.pos >= l.end)
        this.fail(l.at, '', `LIST item count says more items than its octet count holds`, ImpErrorCode.ITEM_COUNT);
      const code = b[d.pos];
      if (code !== 0 && code !== 1) return true;
      d.element(l.end, l.depth + 1);
      l.left--;
    }
    return false;
  }

  /** Checks that a list has no significant items left and ends where its count says. */
  close(l: OpenList, path: string, expected: string, suffix = ''): void {
    if (this.next(l)) this.fail(l.at, path + suffix, `expected ${expected}, found more items`);
    if (this.d.pos !== l.end)
      this.fail(l.at, path + suffix, `LIST's items end at offset ${this.d.pos} but its octet count ends it at ${l.end}`, ImpErrorCode.ITEM_COUNT);
  }

  /** The next significant item must exist. */
  need(l: OpenList, path: string, expected: string, index: number, suffix = ''): void {
    if (!this.next(l)) this.fail(l.at, path + suffix, `expected ${expected}, found ${index} items`);
  }

  /** Decodes one item of `l` with the element decoder. */
  item(l: OpenList): Element {
    l.left--;
    return this.d.element(l.end, l.depth + 1);
  }

  index(l: OpenList, path: string, suffix = ''): number {
    const d = this.d;
    const b = this.b;
    const at = d.pos;
    if (b[at] === 3 && at + 3 <= l.end) {
      d.pos = at + 3;
      l.left--;
      return (b[at + 1]! << 8) | b[at + 2]!;
    }
    const el = this.item(l);
    return this.fail(at, path + suffix, `expected INDEX, found ${NAME[ElementCode(el)]}`);
  }

  integer(l: OpenList, path: string, suffix = ''): number {
    const d = this.d;
    const b = this.b;
    const at = d.pos;
    if (b[at] === 4 && at + 5 <= l.end) {
      d.pos = at + 5;
      l.left--;
      return (b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!;
    }
    const el = this.item(l);
    return this.fail(at, path + suffix, `expected INTEGER, found ${NAME[ElementCode(el)]}`);
  }

  typed<T extends Element['type']>(l: OpenList, type: T, path: string, suffix = ''): Extract<Element, { type: T }> {
    const at = this.d.pos;
    const el = this.item(l);
    if (el.type !== type) this.fail(at, path + suffix, `expected ${type.toUpperCase()}, found ${NAME[ElementCode(el)]}`);
    return el as Extract<Element, { type: T }>;
  }

  /** tid := LIST( tn INDEX, ihn INTEGER ), read as item of `parent`. */
  tid(parent: OpenList, path: string): Tid {
    const l = this.open(parent.end, parent.depth + 1, path, 'tid');
    this.need(l, path, 'LIST( tn, ihn )', 0);
    const tn = this.index(l, path, '.tn');
    this.need(l, path, 'LIST( tn, ihn )', 1);
    const ihn = this.integer(l, path, '.ihn');
    this.close(l, path, 'LIST( tn, ihn )');
    parent.left--;
    return { tn, ihn };
  }

  /** Opens a (content, payload) list; returns content (0 or 1) with d.pos at the payload. */
  content(parent: OpenList, path: string, what: string): OpenList {
    const l = this.open(parent.end, parent.depth + 1, path, what);
    this.need(l, path, `LIST( content, ${what} )`, 0);
    const at = this.d.pos;
    const content = this.index(l, path, '.content');
    if (content > 1) this.fail(at, path + '.content', `content ${content} is neither 0 (carried) nor 1 (shared)`);
    this.need(l, path, `LIST( content, ${what} )`, 1);
    l.content = content;
    return l;
  }

  command(parent: OpenList, path: string): ImpCommand {
    const l = this.open(parent.end, parent.depth + 1, path, 'command');
    const shape = 'LIST( mailbox, stamp, type, operation, arguments, error-list )';
    this.need(l, path, shape, 0);
    const mailbox = this.typed(l, 'proplist', path, '.mailbox') as ProplistElement;
    this.need(l, path, shape, 1);
    const stampList = this.open(l.end, l.depth + 1, path, 'stamp', '.stamp');
    const stamp: number[] = [];
    while (this.next(stampList)) stamp.push(this.integer(stampList, path, '.stamp'));
    this.close(stampList, path, 'LIST( INTEGER, ... )', '.stamp');
    l.left--;
    this.need(l, path, shape, 2);
    const typeAt = this.d.pos;
    const type = this.index(l, path, '.type');
    if (type < 1 || type > 4) this.fail(typeAt, path + '.type', `command type ${type} is not 1..4`);
    this.need(l, path, shape, 3);
    const operation = textValue(this.typed(l, 'text', path, '.operation'));
    this.need(l, path, shape, 4);
    const args = this.typed(l, 'list', path, '.arguments') as ListElement;
    this.need(l, path, shape, 5);
    const errAt = this.d.pos;
    const errorList = this.typed(l, 'list', path, '.errorList') as ListElement;
    const errs = significantItems(errorList);
    if (errs.length !== 0) {
      if (errs.length !== 2) this.fail(errAt, path + '.errorList', `error-list must be LIST( ) or LIST( error-class, error-string )`);
      if (errs[0]!.type !== 'index') this.fail(errAt, path + '.errorList.errorClass', `expected INDEX, found ${errs[0]!.type.toUpperCase()}`);
      if (errs[1]!.type !== 'text') this.fail(errAt, path + '.errorList.errorString', `expected TEXT, found ${errs[1]!.type.toUpperCase()}`);
    }
    this.close(l, path, shape);
    parent.left--;
    return { mailbox, stamp, type, operation, arguments: args, errorList };
  }
}

function ElementCode(el: Element): number {
  return NAME.indexOf(el.type.toUpperCase());
}

/** Reads every message of the bag in `d.buf`, resolving share references. */
export function readBagBytes(d: ElementDecoder): ImpMessage[] {
  const messages: ImpMessage[] = [];
  walkBag(d, false, (entry) => {
    messages.push(entry.message!);
  });
  return messages;
}

/**
 * One message of a bag read message by message: the message, or why it is not one
 * (with its tid, operation and stamp when those could be read before the fault).
 */
export interface BagEntry {
  index: number;
  message?: ImpMessage;
  error?: ImpError;
  tid?: Tid;
  operation?: string;
  type?: number;
  stamp?: number[];
}

/**
 * Reads a bag message by message: a message that does not have RFC 753's structure
 * becomes an entry with its error and the rest are still read. A message that shares
 * a portion of a bad message is itself an error (SHARE_REF). Throws only when the bag
 * itself cannot be framed: not a LIST, a message item whose own count overruns the
 * bag, or octets after the bag.
 */
export function readBagEntries(d: ElementDecoder): BagEntry[] {
  const entries: BagEntry[] = [];
  walkBag(d, true, (entry) => {
    entries.push(entry);
  });
  return entries;
}

/**
 * Whether a portion holds an ENCRYPT element, walked once per portion: a portion is
 * shared by reference (the same object), and walking it again for every message that
 * shares it would cost its size times the messages.
 */
class EncryptedPortions {
  private readonly known = new WeakMap<Element, boolean>();
  has(el: Element): boolean {
    let v = this.known.get(el);
    if (v === undefined) this.known.set(el, (v = containsEncrypt(el)));
    return v;
  }
}

function walkBag(d: ElementDecoder, tolerant: boolean, emit: (entry: BagEntry) => void): void {
  const r: BagReader = new BagReader(d);
  d.pos = 0;
  const bag = r.open(d.buf.length, 1, 'bag', 'message-bag');
  const encrypted = new EncryptedPortions();
  const byTid = new Map<number, ImpMessage>();
  const seenTids = new Set<number>();
  let i = 0;

  while (r.next(bag)) {
    const start = d.pos;
    const partial: BagEntry = { index: i };
    if (!tolerant) {
      emit({ index: i, message: readOne(r, d, bag, byTid, seenTids, encrypted, i, partial) });
    } else {
      // The item's own element header frames it; anything wrong inside stays inside.
      const itemEnd = itemEndAt(d.buf, start, bag.end);
      if (itemEnd === undefined) {
        r.message = i;
        r.fail(start, '', 'message item overruns the bag (its count runs past the end of the bag)', ImpErrorCode.COUNT_OVERRUN);
      }
      try {
        partial.message = readOne(r, d, bag, byTid, seenTids, encrypted, i, partial);
      } catch (err) {
        if (!(err instanceof ImpError)) throw err;
        partial.error = err;
        d.pos = itemEnd;
        bag.left--;
      }
      emit(partial);
    }
    i++;
  }
  r.message = -1;
  r.close(bag, 'bag', 'LIST( message, ... )');
}

/** Where the element starting at `at` ends, from its code and count; undefined when it cannot be framed inside `end`. */
function itemEndAt(b: Buffer, at: number, end: number): number | undefined {
  const code = b[at];
  let stop: number;
  if (code === 0) stop = at + 1;
  else if (code === 2) stop = at + 2;
  else if (code === 3) stop = at + 3;
  else if (code === 4) stop = at + 5;
  else if (code === 5) {
    if (at + 4 > end) return undefined;
    const bits = (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
    stop = at + 4 + Math.ceil(bits / 8);
  } else if (code !== undefined && code <= 9) {
    if (at + 4 > end) return undefined;
    stop = at + 4 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
  } else return undefined;
  return stop <= end ? stop : undefined;
}

function readOne(
  r: BagReader,
  d: ElementDecoder,
  bag: OpenList,
  byTid: Map<number, ImpMessage>,
  seenTids: Set<number>,
  encrypted: EncryptedPortions,
  i: number,
  partial: BagEntry,
): ImpMessage {
  {
    const path = '';
    r.message = i;
    const shape = 'LIST( tid, command-list, document-list )';
    const m = r.open(bag.end, 2, path, 'message');
    r.need(m, path, shape, 0);
    const tidAt = d.pos;
    const tid = r.tid(m, '.tid');
    const key = tidNumber(tid);
    if (seenTids.has(key)) r.fail(tidAt, '.tid', `tid ${formatTid(tid)} is used by an earlier message; tids must be unique in a bag`);
    seenTids.add(key);
    partial.tid = tid;
    let shared: SharedPortions | undefined;

    // command-list
    r.need(m, path, shape, 1);
    const cl = r.content(m, '.commandList', 'command');
    let command: ImpCommand;
    if (cl.content === 1) {
      const at = d.pos;
      const ref = r.tid(cl, '.commandList.tid');
      const from = byTid.get(tidNumber(ref));
      if (!from) r.fail(at, '.commandList.tid', `shares the command of tid ${formatTid(ref)}, which is not earlier in this bag`, ImpErrorCode.SHARE_REF);
      command = from.command;
      if (encrypted.has(command.mailbox) || encrypted.has(command.arguments) || encrypted.has(command.errorList))
        r.fail(at, '.commandList.tid', `shares an encrypted command; encrypted portions cannot be shared`, ImpErrorCode.SHARE_REF);
      (shared ??= {}).command = ref;
    } else {
      command = r.command(cl, '.command');
    }
    partial.operation = command.operation;
    partial.type = command.type;
    partial.stamp = command.stamp;
    r.close(cl, '.commandList', 'LIST( content, command )');
    m.left--;
    // document-list
    r.need(m, path, shape, 2);
    const dl = r.open(m.end, 3, '.documentList', 'document-list');
    let document: ImpDocument | undefined;
    if (r.next(dl)) {
      const parts: [ProplistElement | undefined, ListElement | undefined] = [undefined, undefined];
      for (let k = 0; k < 2; k++) {
        const kind = k === 0 ? 'header' : 'body';
        const label = k === 0 ? '.documentList.headerList' : '.documentList.bodyList';
        if (k === 1) r.need(dl, '.documentList', 'LIST( header-list, body-list )', 1);
        const c = r.content(dl, label, `document-${kind}`);
        if (c.content === 1) {
          const at = d.pos;
          const ref = r.tid(c, label + '.tid');
          const from = byTid.get(tidNumber(ref));
          if (!from) r.fail(at, label + '.tid', `shares the ${kind} of tid ${formatTid(ref)}, which is not earlier in this bag`, ImpErrorCode.SHARE_REF);
          if (!from.document) r.fail(at, label + '.tid', `shares the ${kind} of a message with no document`, ImpErrorCode.SHARE_REF);
          const value = from.document[kind];
          if (encrypted.has(value)) r.fail(at, label + '.tid', `shares an encrypted ${kind}; encrypted portions cannot be shared`, ImpErrorCode.SHARE_REF);
          (parts as Element[])[k] = value;
          (shared ??= {})[kind] = ref;
        } else {
          (parts as Element[])[k] = r.typed(c, k === 0 ? 'proplist' : 'list', k === 0 ? '.document.header' : '.document.body');
        }
        r.close(c, label, `LIST( content, document-${kind} )`);
        dl.left--;
      }
      document = { header: parts[0]!, body: parts[1]! };
    }
    r.close(dl, '.documentList', document ? 'LIST( header-list, body-list )' : 'LIST( ) or LIST( header-list, body-list )');
    m.left--;
    r.close(m, path, shape);
    bag.left--;

    const msg: ImpMessage = document ? { tid, command, document } : { tid, command };
    if (shared) msg.shared = shared;
    byTid.set(key, msg);
    return msg;
  }
}
