// 8-bit MIME to 7-bit MIME (RFC 6152 section 3: a relay whose next hop lacks 8BITMIME
// converts, or returns the message). Works like Postfix's conversion: every 8-bit leaf
// part whose encoding is an identity (7bit, 8bit, binary) is re-encoded, text as
// quoted-printable and anything else as base64, with its Content-Transfer-Encoding field
// replaced; composite parts' 8bit/binary labels become 7bit. Nothing else changes: every
// other byte stays where it was (the lossless tree in tree.ts).
//
// Not convertible (the caller returns the message with 5.6.3): 8-bit bytes in a header
// section (RFC 6532 headers need SMTPUTF8), in a multipart preamble, epilogue or
// delimiter, in a message/* body other than an unencoded message/rfc822 (RFC 2046
// 5.2.x forbids encoding them), or in a part that claims quoted-printable or base64.
// message/global is the exception (RFC 6532 3.7: any encoding is permitted): an 8-bit one,
// UTF-8 header included, is base64-encoded whole.
import { parseMimeTree, headerValue, serializeMimeTree, type MimeHeaderField, type MimeNode } from './tree.js';
import { base64Lines, quotedPrintableLines } from './transfer-encoding.js';

export type DowngradeResult =
  | { kind: 'unchanged' }
  | { kind: 'converted'; bytes: Buffer }
  | { kind: 'impossible'; reason: string };

export function hasEightBit(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i]! > 0x7f) return true;
  return false;
}

class Impossible extends Error {}

/** 8-bit bytes in the message's header section or in any MIME part's header (UTF-8 headers need SMTPUTF8). */
export function hasEightBitHeaders(message: Buffer): boolean {
  const walk = (node: MimeNode): boolean => {
    if (node.header.some((f) => hasEightBit(f.raw))) return true;
    const b = node.body;
    // A message/global body is a message whose header may be UTF-8 (RFC 6532 3.7): body, not header.
    if (b.kind === 'message') return node.contentType !== 'message/global' && walk(b.node);
    if (b.kind === 'multipart') return b.parts.some((p) => walk(p.node));
    return false;
  };
  return walk(parseMimeTree(message));
}

export function downgradeTo7bit(message: Buffer): DowngradeResult {
  if (!hasEightBit(message)) return { kind: 'unchanged' };
  const chunks: Buffer[] = [];
  try {
    convert(parseMimeTree(message), chunks, true);
  } catch (err) {
    if (err instanceof Impossible) return { kind: 'impossible', reason: err.message };
    throw err;
  }
  return { kind: 'converted', bytes: Buffer.concat(chunks) };
}

/** Writes the node's 7-bit bytes to out; returns whether anything under it changed. */
function convert(node: MimeNode, out: Buffer[], top: boolean): boolean {
  if (node.header.some((f) => hasEightBit(f.raw))) throw new Impossible('8-bit bytes in a header section');
  const body = node.body;
  const cte = (headerValue(node, 'content-transfer-encoding') ?? '7bit').toLowerCase();
  const nl = node.headerEnd.length === 1 ? '\n' : '\r\n';
  if (body.kind === 'leaf') {
    if (!hasEightBit(body.data)) {
      pushNode(node, out);
      return false;
    }
    if ((node.contentType.startsWith('message/') && node.contentType !== 'message/global') || node.contentType.startsWith('multipart/')) {
      throw new Impossible(`8-bit content in a ${node.contentType} part, which must not be encoded`);
    }
    if (cte !== '7bit' && cte !== '8bit' && cte !== 'binary') throw new Impossible(`8-bit bytes in a part declared ${cte}`);
    const text = node.contentType.startsWith('text/');
    const encoded = text ? quotedPrintableLines(body.data) : base64Lines(body.data);
    const added: string[] = [];
    if (top && headerValue(node, 'mime-version') === undefined) {
      added.push('MIME-Version: 1.0');
      if (headerValue(node, 'content-type') === undefined) added.push(`Content-Type: text/plain; charset=${isUtf8(body.data) ? 'utf-8' : 'unknown-8bit'}`);
    }
    pushHeader(node.header, text ? 'quoted-printable' : 'base64', added, nl, out);
    out.push(node.headerEnd, encoded);
    return true;
  }
  if (body.kind === 'message' && node.contentType === 'message/global') {
    // RFC 6532 3.7 permits any encoding for message/global: 8-bit inside (a UTF-8 header
    // too) goes as base64 of the whole encapsulated message.
    const encapsulated = serializeMimeTree(body.node);
    if (!hasEightBit(encapsulated)) {
      for (const f of node.header) out.push(f.raw);
      out.push(node.headerEnd, encapsulated);
      return false;
    }
    pushHeader(node.header, 'base64', [], nl, out);
    out.push(node.headerEnd, base64Lines(encapsulated));
    return true;
  }
  if (body.kind === 'message') {
    const inner: Buffer[] = [];
    const changed = convert(body.node, inner, false);
    if (changed) pushHeader(node.header, '7bit', [], nl, out, true);
    else for (const f of node.header) out.push(f.raw);
    out.push(node.headerEnd, ...inner);
    return changed;
  }
  if (hasEightBit(body.preamble) || hasEightBit(body.epilogue)) throw new Impossible('8-bit bytes in a multipart preamble or epilogue');
  const parts: Buffer[] = [];
  let changed = false;
  for (const p of body.parts) {
    if (hasEightBit(p.delimiter)) throw new Impossible('8-bit bytes in a multipart delimiter');
    parts.push(p.delimiter);
    if (convert(p.node, parts, false)) changed = true;
  }
  if (changed) pushHeader(node.header, '7bit', [], nl, out, true);
  else for (const f of node.header) out.push(f.raw);
  out.push(node.headerEnd, body.preamble, ...parts);
  if (body.closeDelimiter) out.push(body.closeDelimiter);
  out.push(body.epilogue);
  return changed;
}

/**
 * The header with its Content-Transfer-Encoding field(s) replaced by `cte` (added at the
 * end when there is none, unless `onlyReplace`), plus `added` fields.
 */
function pushHeader(header: MimeHeaderField[], cte: string, added: string[], nl: string, out: Buffer[], onlyReplace = false): void {
  let replaced = false;
  for (const f of header) {
    if (f.name?.toLowerCase() === 'content-transfer-encoding') {
      if (!replaced) out.push(Buffer.from(`Content-Transfer-Encoding: ${cte}${nl}`));
      replaced = true;
    } else out.push(f.raw);
  }
  for (const a of added) out.push(Buffer.from(a + nl));
  if (!replaced && !onlyReplace) out.push(Buffer.from(`Content-Transfer-Encoding: ${cte}${nl}`));
}

function pushNode(node: MimeNode, out: Buffer[]): void {
  for (const f of node.header) out.push(f.raw);
  out.push(node.headerEnd);
  const b = node.body;
  if (b.kind === 'leaf') out.push(b.data);
}

function isUtf8(buf: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}
