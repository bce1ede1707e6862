// RFC 753 -> MIME. A document in our carriage (marker pair MAILBAG-MIME) is rebuilt
// to its exact original bytes; any other DELIVER document (RFC 753 Example 1 style)
// becomes a fresh RFC 5322/MIME message from its header objects and body elements.
import type { Element, ImpDocument, ImpMessage, ListElement, ProplistElement } from '../types.js';
import {
  END_OF_HEADER, ENVELOPE_FROM_NAME, FRAME, MARKER_NAME, MARKER_VERSION, elementBytes, structureError,
} from './carriage.js';
import { rawHeaderBytes } from './header.js';
import { foreignDocumentToMime } from './foreign.js';

export interface MimeFromImp {
  /** The RFC 5322/MIME message. */
  raw: Buffer;
  /** The envelope recipient, from the mailbox's USER and HOST. */
  recipient: string;
  /** The envelope sender when the document carries one (our carriage's ENVELOPE-FROM). */
  envelopeFrom?: string;
}

/** Converts a DELIVER message to MIME. `path` names the message in errors (e.g. `message[2]`). */
export function impMessageToMime(msg: ImpMessage, path = 'message'): MimeFromImp {
  const cmd = msg.command;
  if (cmd.operation.toUpperCase() !== 'DELIVER') {
    structureError(`${path}.command.operation`, `expected DELIVER, found ${JSON.stringify(cmd.operation)}`);
  }
  const recipient = mailboxAddress(cmd.mailbox, `${path}.command.mailbox`);
  const doc = msg.document ?? { header: { type: 'proplist', pairs: [] }, body: { type: 'list', items: [] } };
  const markerAt = doc.header.pairs.findIndex((p) => p.name === MARKER_NAME);
  const envelopeFrom = envelopeSender(doc.header, markerAt, `${path}.document.header`);
  const raw = markerAt === -1 ? foreignDocumentToMime(doc, envelopeFrom) : carriageToMime(doc, markerAt, `${path}.document`);
  const result: MimeFromImp = { raw, recipient };
  if (envelopeFrom !== undefined) result.envelopeFrom = envelopeFrom;
  return result;
}

function pairValue(pl: ProplistElement, name: string, path: string, end = pl.pairs.length): Buffer | undefined {
  for (let i = 0; i < end; i++) {
    const p = pl.pairs[i]!;
    if (p.name.toUpperCase() === name) return elementBytes(p.value, `${path}.pairs[${i}].value`);
  }
  return undefined;
}

/**
 * Envelope addresses end up in SMTP commands and in the From written for a document
 * without one: control characters (line breaks above all) and angle brackets would
 * break out of them.
 */
const UNSAFE_IN_ADDRESS = /[\x00-\x1f\x7f<>]/;

function envelopeAddress(value: Buffer, path: string, what: string): string {
  const s = value.toString('utf8');
  const bad = UNSAFE_IN_ADDRESS.exec(s);
  if (bad) structureError(path, `${what} holds ${JSON.stringify(bad[0])}, which no envelope address may hold`);
  return s;
}

/** USER@HOST (USER alone when there is no HOST). */
export function mailboxAddress(mailbox: ProplistElement, path: string): string {
  const user = pairValue(mailbox, 'USER', path);
  if (user === undefined) structureError(path, 'mailbox has no USER pair');
  const host = pairValue(mailbox, 'HOST', path);
  const local = envelopeAddress(user, path, 'USER');
  return host === undefined ? local : `${local}@${envelopeAddress(host, path, 'HOST')}`;
}

function envelopeSender(header: ProplistElement, markerAt: number, path: string): string | undefined {
  const value = pairValue(header, ENVELOPE_FROM_NAME, path, markerAt === -1 ? header.pairs.length : markerAt);
  return value === undefined ? undefined : envelopeAddress(value, path, ENVELOPE_FROM_NAME);
}

/** Exact bytes of a document in our carriage. */
function carriageToMime(doc: ImpDocument, markerAt: number, path: string): Buffer {
  const marker = doc.header.pairs[markerAt]!;
  const version = elementBytes(marker.value, `${path}.header.pairs[${markerAt}].value`).toString('latin1');
  if (version !== MARKER_VERSION) structureError(`${path}.header.pairs[${markerAt}]`, `unsupported ${MARKER_NAME} version ${JSON.stringify(version)}`);
  const out: Buffer[] = [];
  rawHeaderBytes(doc.header, markerAt + 1, `${path}.header`, out);
  contentBytes(doc.body.items, 0, `${path}.body`, out);
  return Buffer.concat(out);
}

/** An entity's content: TEXT/BITSTR chunks, or one LIST (multipart frame or encapsulated message). */
function contentBytes(items: Element[], from: number, path: string, out: Buffer[]): void {
  const first = items[from];
  if (first?.type === 'list') {
    if (items.length !== from + 1) structureError(`${path}[${from + 1}]`, 'nothing may follow a multipart or message LIST');
    const head = first.items[0];
    if (head?.type === 'proplist' && head.pairs.some((p) => p.name === FRAME)) multipartBytes(first, `${path}[${from}]`, out);
    else entityBytes(first, `${path}[${from}]`, out);
    return;
  }
  for (let i = from; i < items.length; i++) out.push(elementBytes(items[i], `${path}[${i}]`));
}

/** LIST(header PROPLIST, ...content) */
function entityBytes(list: ListElement, path: string, out: Buffer[]): void {
  const header = list.items[0];
  if (header?.type !== 'proplist') structureError(`${path}[0]`, `expected the part's header PROPLIST, found ${header ? header.type.toUpperCase() : 'nothing'}`);
  if (!header.pairs.some((p) => p.name === END_OF_HEADER)) structureError(`${path}[0]`, `part header has no ${END_OF_HEADER} pair`);
  rawHeaderBytes(header, 0, `${path}[0]`, out);
  contentBytes(list.items, 1, path, out);
}

/** LIST(frame, LIST(preamble), {delimiter, part}*, [close, LIST(epilogue)]) */
function multipartBytes(list: ListElement, path: string, out: Buffer[]): void {
  const frame = list.items[0] as ProplistElement;
  const closed = frame.pairs.find((p) => p.name === FRAME)!.value;
  if (closed.type !== 'boolean') structureError(`${path}[0]`, `${FRAME} must be a BOOLEAN`);
  const items = list.items;
  const leafList = (i: number) => {
    const el = items[i];
    if (el?.type !== 'list') structureError(`${path}[${i}]`, `expected a LIST of TEXT/BITSTR, found ${el ? el.type.toUpperCase() : 'nothing'}`);
    el.items.forEach((c, j) => out.push(elementBytes(c, `${path}[${i}][${j}]`)));
  };
  leafList(1);
  const tail = closed.value ? 2 : 0;
  if ((items.length - 2 - tail) % 2 !== 0 || items.length < 2 + tail) structureError(path, `multipart LIST has ${items.length} items, which does not fit its frame`);
  let i = 2;
  for (; i < items.length - tail; i += 2) {
    out.push(elementBytes(items[i], `${path}[${i}]`));
    const part = items[i + 1];
    if (part?.type !== 'list') structureError(`${path}[${i + 1}]`, 'expected a part LIST');
    entityBytes(part, `${path}[${i + 1}]`, out);
  }
  if (closed.value) {
    out.push(elementBytes(items[i], `${path}[${i}]`));
    leafList(i + 1);
  }
}

