// What a published `message` event says about a message that the queue's rows do not
// keep: its session, headers and MIME parts. Computed once from the spooled bytes (pure:
// the caller reads the file) and stored as JSON beside the qid.
import { createHash } from 'node:crypto';
import { headerValue, parseContentType, parseMimeTree, type MimeNode } from '../mime/index.js';
import type { JsonObject } from './json.js';

export interface SessionFacts {
  sid: string;
  protocol: string;
  tls?: { version: string; cipher?: string } | undefined;
}

export interface PartFacts {
  mime: string;
  charset: string;
  name: string;
  ext: string;
  disposition: string;
  md5: string;
  sha256: string;
  sizeBytes: number;
  decodedBytes: number;
  isCorrupted: boolean;
}

export interface MessageFacts {
  qid: string;
  receivedAt: number;
  envelope: { from: string; rcpts: string[] };
  sizeBytes: number;
  client: { ip: string; host: string; helo: string };
  session: SessionFacts;
  headers: Record<string, string[]>;
  parsedAddresses: { from: string[]; to: string[]; cc: string[] };
  messageId?: string | undefined;
  /** null: the spool file was gone before the facts were recorded (the parts are unknown). */
  parts: PartFacts[] | null;
}

/** Headers the message event carries (the document's `msg.header` members). */
const HEADERS = ['from', 'to', 'cc', 'subject', 'message-id', 'reply-to', 'return-path'] as const;
const ADDRESSED = ['from', 'to', 'cc'] as const;

function allValues(node: MimeNode, name: string): string[] {
  const out: string[] = [];
  for (const f of node.header) {
    if (f.name?.toLowerCase() !== name) continue;
    const colon = f.raw.indexOf(0x3a);
    out.push(f.raw.subarray(colon + 1).toString('utf8').replace(/\r?\n(?=[ \t])/g, '').replace(/\r?\n$/, '').trim());
  }
  return out;
}

/** Bare addresses of an address-list header value (display names, groups and comments dropped). */
export function addressesOf(value: string): string[] {
  const noComments = value.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\([^()]*\)/g, '');
  const out: string[] = [];
  for (const m of noComments.matchAll(/<([^<>]*)>|([^\s,;:<>"]+@[^\s,;:<>"]+)/g)) {
    const a = (m[1] ?? m[2] ?? '').trim();
    if (a.includes('@')) out.push(a.toLowerCase());
  }
  return out;
}

function extOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

function decodeBody(data: Buffer, encoding: string): { bytes: Buffer; corrupted: boolean } {
  if (encoding === 'base64') {
    const text = data.toString('latin1').replace(/[\r\n\t ]/g, '');
    return { bytes: Buffer.from(text, 'base64'), corrupted: /[^A-Za-z0-9+/=]/.test(text) };
  }
  if (encoding === 'quoted-printable') {
    const text = data.toString('latin1').replace(/=\r?\n/g, '');
    const bytes = Buffer.from(text.replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return { bytes, corrupted: false };
  }
  return { bytes: data, corrupted: false };
}

function paramOf(value: string | undefined, param: string): string {
  if (!value) return '';
  const m = new RegExp(`(?:^|;)\\s*${param}\\*?=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i').exec(value);
  return (m?.[1] ?? m?.[2] ?? '').trim();
}

function collectParts(node: MimeNode, out: PartFacts[]): void {
  const body = node.body;
  if (body.kind === 'multipart') {
    for (const p of body.parts) collectParts(p.node, out);
    return;
  }
  if (body.kind === 'message') {
    collectParts(body.node, out);
    return;
  }
  const ctValue = headerValue(node, 'content-type');
  const ct = ctValue ? parseContentType(ctValue) : undefined;
  const dispValue = headerValue(node, 'content-disposition');
  const disposition = dispValue ? (dispValue.split(';')[0] ?? '').trim().toLowerCase() : 'inline';
  const name = paramOf(dispValue, 'filename') || paramOf(ctValue, 'name');
  const encoding = (headerValue(node, 'content-transfer-encoding') ?? '7bit').toLowerCase();
  const { bytes, corrupted } = decodeBody(body.data, encoding);
  out.push({
    mime: node.contentType,
    charset: ct?.params.get('charset') ?? (node.contentType.startsWith('text/') ? 'us-ascii' : ''),
    name,
    ext: extOf(name),
    disposition: disposition || 'inline',
    md5: createHash('md5').update(bytes).digest('hex'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: body.data.length,
    decodedBytes: bytes.length,
    isCorrupted: corrupted,
  });
}

/** Headers, addresses and leaf parts (decoded, hashed) of a message's bytes. */
export function messageContentFacts(bytes: Buffer): Pick<MessageFacts, 'headers' | 'parsedAddresses' | 'messageId' | 'parts'> {
  const root = parseMimeTree(bytes);
  const headers: Record<string, string[]> = {};
  for (const name of HEADERS) {
    const values = allValues(root, name);
    if (values.length) headers[name] = values;
  }
  const parsedAddresses = { from: [] as string[], to: [] as string[], cc: [] as string[] };
  for (const name of ADDRESSED) for (const v of headers[name] ?? []) parsedAddresses[name].push(...addressesOf(v));
  const parts: PartFacts[] = [];
  collectParts(root, parts);
  const messageId = headers['message-id']?.[0];
  return { headers, parsedAddresses, ...(messageId ? { messageId } : {}), parts };
}

/** The session facts from the spool envelope, else from mailbag's own Received: line. */
export function sessionFactsFromReceived(bytes: Buffer, qid: string): SessionFacts {
  const head = bytes.subarray(0, 2048).toString('latin1');
  const m = /^Received: [^\r\n]*(?:\r?\n[ \t][^\r\n]*)*/.exec(head);
  const protocol = m ? (/ with ([A-Z0-9]+) id /.exec(m[0])?.[1] ?? 'ESMTP') : 'ESMTP';
  return { sid: qid, protocol };
}

export function factsJson(f: MessageFacts): JsonObject {
  return JSON.parse(JSON.stringify(f)) as JsonObject;
}
