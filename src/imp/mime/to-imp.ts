// MIME -> RFC 753: one DELIVER message per envelope recipient, all sharing one
// document whose header presents the RFC 753 recommended objects and carries every
// raw header field, and whose body is an IMP-native tree of the MIME structure.
import { parseMimeTree, type MimeNode } from '../../mime/tree.js';
import type { Element, ImpDocument, ImpMessage, ListElement, PropPair, ProplistElement } from '../types.js';
import { MAX_COUNT24 } from '../limits.js';
import { ImpError, ImpErrorCode } from '../errors.js';
import { deliverCommand } from '../message.js';
import {
  ENVELOPE_FROM_NAME, FRAME, MARKER_NAME, MARKER_VERSION, MAX_BITSTR_WHOLE_OCTETS, MAX_VALUE_PAYLOAD, bytesElement, chunkElements, is7bit,
} from './carriage.js';
import { rawHeaderPairs } from './header.js';
import { presentableValue } from './presentable.js';
import { rfc5322ToImpDate } from './date.js';
import type { TidAllocator } from './tid-allocator.js';

/** MIME nesting deeper than this is carried as a leaf, keeping the element tree within the decoder's depth limit. */
export const MAX_MIME_DEPTH = 24;

export interface MimeDocumentOptions {
  /** SMTP reverse-path (without angle brackets; empty string for the null sender). */
  envelopeFrom?: string;
}

export interface MimeToImpOptions extends MimeDocumentOptions {
  /** Envelope recipients, one DELIVER message each. At least one. */
  recipients: string[];
  /** This gateway's internet host number: the stamp. */
  ihn: number;
  /** Source of the messages' tids. */
  tids: TidAllocator;
}

/** Header fields presented to plain RFC 753 readers, in this order (first occurrence of each). */
const PRESENTED: [field: string, pair: string][] = [
  ['date', 'DATE'], ['sender', 'SENDER'], ['from', 'FROM'], ['reply-to', 'REPLY-TO'], ['to', 'TO'], ['cc', 'CC'], ['subject', 'SUBJECT'],
];

/** Converts one RFC 5322/MIME message into DELIVER messages sharing one document. */
export function mimeToImpMessages(raw: Buffer, opts: MimeToImpOptions): ImpMessage[] {
  if (opts.recipients.length === 0) throw new ImpError(ImpErrorCode.MESSAGE, 'a DELIVER needs at least one recipient', { path: 'recipients' });
  const document = mimeToImpDocument(raw, opts);
  // One document object for all: the bag encoder finds the identical portions and shares them.
  return opts.recipients.map((rcpt) => ({
    tid: opts.tids.allocate(),
    command: deliverCommand({ mailbox: recipientMailbox(rcpt), stamp: [opts.ihn], options: ['REGULAR'] }),
    document,
  }));
}

/** The document (header PROPLIST + body LIST) for a MIME message. */
export function mimeToImpDocument(raw: Buffer, opts: MimeDocumentOptions = {}): ImpDocument {
  // Every raw octet is carried, so a message this large cannot fit a bag whatever we do.
  if (raw.length > MAX_COUNT24) {
    throw new ImpError(ImpErrorCode.TOO_LARGE, `message of ${raw.length} octets is too large for an IMP message bag (at most ${MAX_COUNT24} octets)`);
  }
  const root = parseMimeTree(raw, { maxDepth: MAX_MIME_DEPTH });
  const presented: PropPair[] = [];
  for (const [field, name] of PRESENTED) {
    const f = root.header.find((h) => h.name !== null && h.name.toLowerCase() === field);
    if (!f) continue;
    let value = presentableValue(f.raw.subarray(f.raw.indexOf(0x3a) + 1));
    if (field === 'date') {
      const date = rfc5322ToImpDate(value);
      if (date === undefined) continue; // unparsable: only the raw Date field carries it
      value = date;
    }
    // A presentation copy only: the raw section below holds the exact value.
    presented.push({ name, value: { type: 'text', data: Buffer.from(value.slice(0, MAX_VALUE_PAYLOAD), 'latin1') } });
  }
  if (opts.envelopeFrom !== undefined) {
    const from = Buffer.from(opts.envelopeFrom.replace(/^<(.*)>$/, '$1'), 'utf8');
    presented.push({ name: ENVELOPE_FROM_NAME, value: bytesElement(from) });
  }
  presented.push({ name: MARKER_NAME, value: { type: 'text', data: Buffer.from(MARKER_VERSION) } });
  return {
    header: rawHeaderPairs(root.header, root.headerEnd, presented),
    body: { type: 'list', items: entityContent(root) },
  };
}

/** The body of an entity as elements: leaf chunks, or one LIST for a multipart or encapsulated message. */
function entityContent(node: MimeNode): Element[] {
  const body = node.body;
  if (body.kind === 'leaf') {
    const text = is7bit(body.data);
    return chunkElements(body.data, text ? MAX_COUNT24 - 8 : MAX_BITSTR_WHOLE_OCTETS, text);
  }
  if (body.kind === 'message') return [entityList(body.node)];
  const frame: PropPair[] = [{ name: 'MULTIPART', value: { type: 'text', data: Buffer.from(body.subtype, 'latin1') } }];
  const boundary = Buffer.from(body.boundary, 'utf8');
  if (is7bit(boundary) && boundary.length <= MAX_VALUE_PAYLOAD) frame.push({ name: 'BOUNDARY', value: { type: 'text', data: boundary } });
  frame.push({ name: FRAME, value: { type: 'boolean', value: body.closeDelimiter !== null } });
  const items: Element[] = [{ type: 'proplist', pairs: frame }, leafList(body.preamble)];
  for (const part of body.parts) items.push(bytesElement(part.delimiter), entityList(part.node));
  if (body.closeDelimiter !== null) items.push(bytesElement(body.closeDelimiter), leafList(body.epilogue));
  return [{ type: 'list', items }];
}

/** A part or encapsulated message: LIST(header PROPLIST, ...content). */
function entityList(node: MimeNode): ListElement {
  return { type: 'list', items: [rawHeaderPairs(node.header, node.headerEnd), ...entityContent(node)] };
}

function leafList(data: Buffer): ListElement {
  return { type: 'list', items: chunkElements(data, MAX_BITSTR_WHOLE_OCTETS) };
}

/**
 * Mailbox PROPLIST for an envelope address: USER (local part) and HOST (domain), TEXT
 * when ASCII and BITSTR holding UTF-8 otherwise (SMTPUTF8), plus IA for an IPv4 literal.
 */
export function recipientMailbox(address: string): ProplistElement {
  const addr = address.trim().replace(/^<(.*)>$/, '$1');
  const at = addr.lastIndexOf('@');
  const user = at === -1 ? addr : addr.slice(0, at);
  const host = at === -1 ? undefined : addr.slice(at + 1);
  const pairs: PropPair[] = [];
  const literal = host && /^\[(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\]$/.exec(host);
  if (literal && literal.slice(1).every((o) => Number(o) <= 255)) {
    const ia = literal.slice(1).reduce((n, o) => n * 256 + Number(o), 0);
    pairs.push({ name: 'IA', value: { type: 'integer', value: ia | 0 } });
  }
  if (host !== undefined) pairs.push({ name: 'HOST', value: bytesElement(Buffer.from(host, 'utf8')) });
  pairs.push({ name: 'USER', value: bytesElement(Buffer.from(user, 'utf8')) });
  return { type: 'proplist', pairs };
}
