// Message-bags (RFC 753 section 3.6): LIST( message, ... ) where each message
// is LIST( tid, command-list, document-list ) and each command, document
// header and document body is either carried (content=0) or shared from an
// earlier message in the same bag by its tid (content=1).
import { createHash } from 'node:crypto';
import { readBagBytes, readBagEntries, type BagEntry } from './bag-decode.js';
import { ElementDecoder, toBuffer } from './element-decode.js';
import { encodeElement, type EncodableElement } from './element-encode.js';
import { containsEncrypt } from './encrypt.js';
import { ImpError, ImpErrorCode } from './errors.js';
import { DEFAULT_MAX_DEPTH, MAX_BAG_OCTETS, type DecodeLimits } from './limits.js';
import { commandElement, formatTid, readCommand, readTid, tidElement, tidKey, tidNumber } from './message.js';
import { expectType, fault, fields, indexValue, locate, proplistOf, significantItems } from './structure.js';
import type { Element, ImpCommand, ImpDocument, ImpMessage, ListElement, SharedPortions, Tid } from './types.js';

export interface EncodeBagOptions {
  /**
   * `auto` (default): share every command, header and body identical to one an
   * earlier message carried, referring to the first carrier, unless the portion
   * is no larger than the 14-octet tid that would replace it. `none`: carry
   * everything. `preserve`: share exactly what each message's `shared` field
   * says (as decoded), so a decoded bag re-encodes to the same bytes.
   */
  sharing?: 'auto' | 'none' | 'preserve';
}

export type DecodeBagOptions = DecodeLimits;

type Portion = 'command' | 'header' | 'body';
const PORTIONS: Portion[] = ['command', 'header', 'body'];

const list = (items: EncodableElement[]): ListElement => ({ type: 'list', items: items as Element[] });
const CONTENT_CARRIED: Element = { type: 'index', value: 0 };
const CONTENT_SHARED: Element = { type: 'index', value: 1 };
const NO_DOCUMENT: ListElement = { type: 'list', items: [] };
/** LIST( INDEX, INTEGER ): 6 + 3 + 5 octets. */
const TID_OCTETS = 14;

export { containsEncrypt };

/** One message as an element tree, every portion carried (content=0). */
export function messageElement(msg: ImpMessage): ListElement {
  const doc = msg.document;
  return list([
    tidElement(msg.tid),
    list([CONTENT_CARRIED, commandElement(msg.command)]),
    doc ? list([list([CONTENT_CARRIED, doc.header]), list([CONTENT_CARRIED, doc.body])]) : NO_DOCUMENT,
  ]);
}

interface Carried {
  tid: Tid;
  bytes: Buffer;
}

/**
 * Map key for portion bytes: a hash of every octet (FNV-1a for small portions,
 * SHA-1 for large ones, where native hashing is faster) plus the length.
 * Candidates under one key are then compared byte for byte, so a collision
 * costs a memcmp, never a wrong reference.
 */
function portionKey(bytes: Buffer): number | string {
  if (bytes.length > 4096) return createHash('sha1').update(bytes).digest('base64');
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h >>> 0) + bytes.length * 0x100000000;
}

const LABELS = ['command', 'document.header', 'document.body'];

/** Encoder state for one bag: the portions seen so far, for sharing. */
class BagEncoder {
  private readonly seen = new Set<number>();
  // auto: carriers of each distinct portion, by content key. preserve: every earlier message's portion, by tid.
  private readonly byContent = PORTIONS.map(() => new Map<number | string, Carried[]>());
  private readonly byTid = PORTIONS.map(() => new Map<number, Buffer>());

  constructor(private readonly sharing: 'auto' | 'none' | 'preserve') {}

  message(msg: ImpMessage, i: number): Element {
    const key = tidNumber(msg.tid);
    if (this.seen.has(key))
      throw new ImpError(ImpErrorCode.MESSAGE, `tid ${formatTid(msg.tid)} is used by an earlier message; tids must be unique in a bag`, {
        path: `message[${i}].tid`,
      });
    this.seen.add(key);
    const doc = msg.document;
    return list([
      tidElement(msg.tid),
      this.portion(msg, i, 0, commandElement(msg.command)),
      doc ? list([this.portion(msg, i, 1, doc.header), this.portion(msg, i, 2, doc.body)]) : NO_DOCUMENT,
    ]);
  }

  /** LIST( content, portion-or-tid ) for portion `kind` (0 command, 1 header, 2 body) of message `i`. */
  private portion(msg: ImpMessage, i: number, kind: number, el: Element): ListElement {
    let bytes: Buffer;
    try {
      bytes = encodeElement(el);
    } catch (err) {
      throw err instanceof ImpError ? err.withPathPrefix(`message[${i}].${LABELS[kind]}`) : err;
    }
    const sharing = this.sharing;
    const encrypted = sharing !== 'none' && containsEncrypt(el);
    // A reference is a 14-octet tid; sharing anything not larger would grow the bag.
    if (sharing === 'auto' && !encrypted && bytes.length > TID_OCTETS) {
      const k = portionKey(bytes);
      const candidates = this.byContent[kind]!.get(k);
      if (candidates) {
        for (const c of candidates) if (c.bytes.equals(bytes)) return list([CONTENT_SHARED, tidElement(c.tid)]);
        candidates.push({ tid: msg.tid, bytes });
      } else this.byContent[kind]!.set(k, [{ tid: msg.tid, bytes }]);
    } else if (sharing === 'preserve') {
      const ref = msg.shared?.[PORTIONS[kind]!];
      const byTid = this.byTid[kind]!;
      byTid.set(tidNumber(msg.tid), bytes);
      if (ref) {
        const earlier = tidNumber(ref) === tidNumber(msg.tid) ? undefined : byTid.get(tidNumber(ref));
        if (!earlier || !earlier.equals(bytes) || encrypted)
          throw new ImpError(
            ImpErrorCode.SHARE_REF,
            !earlier
              ? `shared ${PORTIONS[kind]} refers to tid ${formatTid(ref)}, which is not an earlier message carrying one`
              : encrypted
                ? `an encrypted ${PORTIONS[kind]} cannot be shared`
                : `shared ${PORTIONS[kind]} differs from the one in tid ${formatTid(ref)}`,
            { path: `message[${i}].${LABELS[kind]}` },
          );
        return list([CONTENT_SHARED, tidElement(ref)]);
      }
    }
    return list([CONTENT_CARRIED, { type: 'encoded', bytes } as unknown as Element]);
  }
}

/** Encodes messages as a bag; see EncodeBagOptions for how portions are shared. */
export function encodeBag(messages: readonly ImpMessage[], opts: EncodeBagOptions = {}): Buffer {
  const encoder = new BagEncoder(opts.sharing ?? 'auto');
  const out: Element[] = new Array(messages.length);
  for (let i = 0; i < messages.length; i++) out[i] = encoder.message(messages[i]!, i);
  try {
    return encodeElement(list(out));
  } catch (err) {
    throw err instanceof ImpError ? err.withPathPrefix('bag') : err;
  }
}

/** A decoder over a bare bag, once its size and its first octet (a LIST) are checked. */
function bagDecoder(input: Uint8Array, opts: DecodeBagOptions): ElementDecoder {
  const buf = toBuffer(input);
  const max = opts.maxBagBytes ?? MAX_BAG_OCTETS;
  if (buf.length > max)
    throw new ImpError(ImpErrorCode.TOO_LARGE, `bag of ${buf.length} octets exceeds the limit of ${max}`, { offset: 0 });
  if (buf.length > 0 && buf[0] !== 7)
    throw new ImpError(ImpErrorCode.MESSAGE, `a message-bag is a LIST (code 7); found code ${buf[0]}`, { offset: 0, path: 'bag' });
  return new ElementDecoder(buf, opts.maxDepth ?? DEFAULT_MAX_DEPTH);
}

/** Decodes a bare bag (not a shipping unit), resolving every share reference. */
export function decodeBag(input: Uint8Array, opts: DecodeBagOptions = {}): ImpMessage[] {
  return readBagBytes(bagDecoder(input, opts));
}

export type { BagEntry };

/**
 * Decodes a bare bag message by message (the acceptor's view): each entry is a
 * message or the ImpError that message has, so one bad message does not cost the
 * others. Throws only when the bag cannot be framed (see readBagEntries).
 */
export function decodeBagEntries(input: Uint8Array, opts: DecodeBagOptions = {}): BagEntry[] {
  return readBagEntries(bagDecoder(input, opts));
}

type Resolved = { carried: Element; from?: undefined; ref?: undefined } | { carried?: undefined; from: ImpMessage; ref: Element };

/** Reads a (content, payload) pair: the carried payload, or the earlier message a reference points at. */
function readContent(el: Element, path: string, kind: Portion, byTid: Map<string, ImpMessage>): Resolved {
  const [c, payload] = fields(el, path, CONTENT_FIELDS[kind]);
  const value = indexValue(c!, `${path}.content`);
  if (value === 0) return { carried: payload! };
  if (value !== 1) fault(c!, `${path}.content`, `content ${value} is neither 0 (carried) nor 1 (shared)`);
  const ref = readTid(payload!, `${path}.tid`);
  const from = byTid.get(tidKey(ref));
  if (!from) fault(payload!, `${path}.tid`, `shares the ${kind} of tid ${formatTid(ref)}, which is not earlier in this bag`, ImpErrorCode.SHARE_REF);
  return { from, ref: payload! };
}

const CONTENT_FIELDS: Record<Portion, string[]> = {
  command: ['content', 'command'],
  header: ['content', 'document-header'],
  body: ['content', 'document-body'],
};

/** The shared header or body of an earlier message; encrypted ones cannot be shared. */
function sharedDocumentPart(r: Resolved, kind: 'header' | 'body', path: string): Element {
  const doc = r.from!.document;
  if (!doc) fault(r.ref!, path, `shares the ${kind} of a message with no document`, ImpErrorCode.SHARE_REF);
  const value: Element = doc[kind];
  if (containsEncrypt(value)) fault(r.ref!, path, `shares an encrypted ${kind}; encrypted portions cannot be shared`, ImpErrorCode.SHARE_REF);
  return value;
}

/**
 * Reads messages out of a decoded bag element. Structure errors are thrown as
 * internal faults; decodeBag and bagMessages turn them into located ImpErrors.
 */
function readBag(root: Element): ImpMessage[] {
  const items = significantItems(expectType(root, 'list', 'bag'));
  const byTid = new Map<string, ImpMessage>();
  const messages: ImpMessage[] = new Array(items.length);

  for (let i = 0; i < items.length; i++) {
    const path = `message[${i}]`;
    const [tidEl, commandList, documentList] = fields(items[i]!, path, MESSAGE_FIELDS);
    const tid = readTid(tidEl!, `${path}.tid`);
    const key = tidKey(tid);
    if (byTid.has(key)) fault(tidEl!, `${path}.tid`, `tid ${formatTid(tid)} is used by an earlier message; tids must be unique in a bag`);
    let shared: SharedPortions | undefined;

    const cmd = readContent(commandList!, `${path}.commandList`, 'command', byTid);
    let command: ImpCommand;
    if (cmd.from) {
      command = cmd.from.command;
      (shared ??= {}).command = readTid(cmd.ref, '');
      const c = command;
      if (containsEncrypt(c.mailbox) || containsEncrypt(c.arguments) || containsEncrypt(c.errorList))
        fault(cmd.ref, `${path}.commandList.tid`, `shares an encrypted command; encrypted portions cannot be shared`, ImpErrorCode.SHARE_REF);
    } else {
      command = readCommand(cmd.carried, `${path}.command`);
    }

    let document: ImpDocument | undefined;
    const docItems = significantItems(expectType(documentList!, 'list', `${path}.documentList`));
    if (docItems.length === 2) {
      const h = readContent(docItems[0]!, `${path}.documentList.headerList`, 'header', byTid);
      const b = readContent(docItems[1]!, `${path}.documentList.bodyList`, 'body', byTid);
      let header: Element;
      let body: Element;
      if (h.from) {
        header = sharedDocumentPart(h, 'header', `${path}.documentList.headerList.tid`);
        (shared ??= {}).header = readTid(h.ref, '');
      } else header = proplistOf(h.carried, `${path}.document.header`);
      if (b.from) {
        body = sharedDocumentPart(b, 'body', `${path}.documentList.bodyList.tid`);
        (shared ??= {}).body = readTid(b.ref, '');
      } else body = expectType(b.carried, 'list', `${path}.document.body`);
      document = { header: header as ImpDocument['header'], body: body as ImpDocument['body'] };
    } else if (docItems.length !== 0) {
      fault(documentList!, `${path}.documentList`, `document-list must be LIST( ) or LIST( header-list, body-list ), found ${docItems.length} items`);
    }

    const msg: ImpMessage = document ? { tid, command, document } : { tid, command };
    if (shared) msg.shared = shared;
    byTid.set(key, msg);
    messages[i] = msg;
  }
  return messages;
}

const MESSAGE_FIELDS = ['tid', 'command-list', 'document-list'];

/**
 * Reads messages from a bag element tree (e.g. one parsed from notation).
 * Error offsets are those the tree would have once encoded.
 */
export function bagMessages(root: Element): ImpMessage[] {
  try {
    return readBag(root);
  } catch (err) {
    throw locate(err, root, 0);
  }
}
