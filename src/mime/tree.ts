// Lossless MIME structure: parseMimeTree splits a message into header fields,
// multipart frames and leaf bodies without decoding or normalising anything, so
// serializeMimeTree(parseMimeTree(buf)) is always byte-identical to buf.
//
// Every byte of the input lands in exactly one Buffer of the tree (views of the
// input, no copies). Malformed input never throws: a missing blank line gives a
// header-only entity, a missing close delimiter gives a multipart without one,
// lines that are not `name: value` become fields without a name.

import { parseContentType } from './content-type.js';

/** One header field exactly as it appeared: name, colon, value, folding and line ending. */
export interface MimeHeaderField {
  /** The whole field, continuation lines and final line ending included. */
  raw: Buffer;
  /**
   * The field name when the first line is a well-formed `name:` (whitespace before the
   * colon allowed and not part of the name); null for a line that is not a header field
   * (kept verbatim all the same).
   */
  name: string | null;
}

export interface MimeLeafBody {
  kind: 'leaf';
  /** The body bytes as transmitted (still transfer-encoded). */
  data: Buffer;
}

export interface MimePart {
  /**
   * The delimiter exactly as transmitted: the line ending that precedes it (it belongs to
   * the delimiter, RFC 2046 section 5.1.1), `--boundary`, transport padding and its own
   * line ending (absent at end of input).
   */
  delimiter: Buffer;
  node: MimeNode;
}

export interface MimeMultipartBody {
  kind: 'multipart';
  /** Media subtype in lower case (`mixed`, `alternative`, ...). */
  subtype: string;
  boundary: string;
  preamble: Buffer;
  parts: MimePart[];
  /** The close delimiter line (with its preceding line ending), or null when the input lacks one. */
  closeDelimiter: Buffer | null;
  /** Everything after the close delimiter line. Empty when there is no close delimiter. */
  epilogue: Buffer;
}

export interface MimeMessageBody {
  kind: 'message';
  /** The encapsulated message (message/rfc822, message/global, digest parts). */
  node: MimeNode;
}

export type MimeBody = MimeLeafBody | MimeMultipartBody | MimeMessageBody;

export interface MimeNode {
  header: MimeHeaderField[];
  /** The empty line ending the header (`\r\n` or `\n`); empty when the input has none. */
  headerEnd: Buffer;
  /** Lower-case media type from Content-Type (or the context default). */
  contentType: string;
  body: MimeBody;
}

export interface ParseMimeOptions {
  /** Nesting beyond this depth is kept as a leaf (default 32). */
  maxDepth?: number;
  /**
   * Fields split out one by one per header (default 10,000); the rest of an absurdly long
   * header is kept as one more entry with `name: null`, so memory stays proportional to
   * real structure rather than to the count of lines.
   */
  maxHeaderFields?: number;
  /** Parts split out per multipart (default 10,000); the last one then runs to the end of the body. */
  maxParts?: number;
}

interface Limits {
  maxDepth: number;
  maxHeaderFields: number;
  maxParts: number;
}

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const DASH = 0x2d;

/** Parses a message (or any MIME entity) into a lossless tree. Never throws on odd input. */
export function parseMimeTree(buf: Buffer, opts: ParseMimeOptions = {}): MimeNode {
  const limits: Limits = { maxDepth: opts.maxDepth ?? 32, maxHeaderFields: opts.maxHeaderFields ?? 10_000, maxParts: opts.maxParts ?? 10_000 };
  return parseEntity(buf, 'text/plain', 0, limits);
}

/** The exact bytes of a tree; the inverse of parseMimeTree. */
export function serializeMimeTree(node: MimeNode): Buffer {
  const chunks: Buffer[] = [];
  collectChunks(node, chunks);
  return Buffer.concat(chunks);
}

/** Pushes the node's bytes, in order, onto chunks (no copying). */
export function collectChunks(node: MimeNode, chunks: Buffer[]): void {
  for (const f of node.header) chunks.push(f.raw);
  chunks.push(node.headerEnd);
  const body = node.body;
  if (body.kind === 'leaf') chunks.push(body.data);
  else if (body.kind === 'message') collectChunks(body.node, chunks);
  else {
    chunks.push(body.preamble);
    for (const p of body.parts) {
      chunks.push(p.delimiter);
      collectChunks(p.node, chunks);
    }
    if (body.closeDelimiter) chunks.push(body.closeDelimiter);
    chunks.push(body.epilogue);
  }
}

/** The first field with this name (case-insensitive), unfolded value without the name. */
export function headerValue(node: Pick<MimeNode, 'header'>, name: string): string | undefined {
  const lower = name.toLowerCase();
  const field = node.header.find((f) => f.name !== null && f.name.toLowerCase() === lower);
  return field ? fieldValue(field) : undefined;
}

/** A field's value: text after the colon, unfolded, outer whitespace trimmed (latin1-safe for 8-bit). */
export function fieldValue(field: MimeHeaderField): string {
  const colon = field.raw.indexOf(COLON);
  const value = field.raw.subarray(colon + 1).toString('utf8');
  return value.replace(/\r?\n(?=[ \t])/g, '').replace(/\r?\n$/, '').trim();
}

function parseEntity(buf: Buffer, defaultType: string, depth: number, limits: Limits): MimeNode {
  const { header, headerEnd, bodyStart } = splitHeader(buf, limits.maxHeaderFields);
  const body = buf.subarray(bodyStart);
  const ctField = header.find((f) => f.name !== null && f.name.toLowerCase() === 'content-type');
  const ct = ctField ? parseContentType(fieldValue(ctField)) : undefined;
  const contentType = ct?.type ?? defaultType;
  const node: MimeNode = { header, headerEnd, contentType, body: { kind: 'leaf', data: body } };
  if (depth >= limits.maxDepth) return node;

  if (contentType.startsWith('multipart/')) {
    const boundary = ct?.params.get('boundary');
    if (boundary) {
      const subtype = contentType.slice('multipart/'.length);
      const partDefault = subtype === 'digest' ? 'message/rfc822' : 'text/plain';
      node.body = parseMultipart(body, boundary, subtype, partDefault, depth, limits);
    }
  } else if (contentType === 'message/rfc822' || contentType === 'message/global') {
    // Only an unencoded encapsulation can be parsed in place; base64/qp stay a leaf.
    const cte = (headerValue(node, 'content-transfer-encoding') ?? '7bit').toLowerCase();
    if ((cte === '7bit' || cte === '8bit' || cte === 'binary') && body.length > 0) {
      node.body = { kind: 'message', node: parseEntity(body, 'text/plain', depth + 1, limits) };
    }
  }
  return node;
}

/** Index just past the line that starts at `start` (past its LF, or the end of buf). */
function lineEnd(buf: Buffer, start: number): number {
  const lf = buf.indexOf(LF, start);
  return lf === -1 ? buf.length : lf + 1;
}

function splitHeader(buf: Buffer, maxFields: number): { header: MimeHeaderField[]; headerEnd: Buffer; bodyStart: number } {
  const header: MimeHeaderField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (header.length === maxFields) {
      // Keep the rest of the header whole, up to the empty line (or the end).
      const end = findEmptyLine(buf, pos);
      header.push({ raw: buf.subarray(pos, end), name: null });
      pos = end;
      continue;
    }
    const first = buf[pos];
    // The empty line that ends the header.
    if (first === LF) return { header, headerEnd: buf.subarray(pos, pos + 1), bodyStart: pos + 1 };
    if (first === CR && buf[pos + 1] === LF) return { header, headerEnd: buf.subarray(pos, pos + 2), bodyStart: pos + 2 };
    let end = lineEnd(buf, pos);
    // Continuation lines start with whitespace.
    while (end < buf.length && (buf[end] === SP || buf[end] === HT)) end = lineEnd(buf, end);
    const raw = buf.subarray(pos, end);
    header.push({ raw, name: fieldName(raw) });
    pos = end;
  }
  return { header, headerEnd: buf.subarray(buf.length), bodyStart: buf.length };
}

/** Start of the first empty line at or after `pos` (which is at a line start), or the end of buf. */
function findEmptyLine(buf: Buffer, pos: number): number {
  if (buf[pos] === LF || (buf[pos] === CR && buf[pos + 1] === LF)) return pos;
  let i = pos;
  for (;;) {
    const lf = buf.indexOf(LF, i);
    if (lf === -1 || lf + 1 >= buf.length) return buf.length;
    if (buf[lf + 1] === LF || (buf[lf + 1] === CR && buf[lf + 2] === LF)) return lf + 1;
    i = lf + 1;
  }
}

/**
 * `name` for a first line of the form `name:` (or obsolete `name WSP:`, RFC 5322 section
 * 4.5) with a printable-ASCII name, else null. The name never includes the whitespace.
 */
function fieldName(raw: Buffer): string | null {
  const limit = Math.min(raw.length, 1000);
  for (let i = 0; i < limit; i++) {
    const c = raw[i]!;
    if (c === COLON) return i === 0 ? null : raw.toString('latin1', 0, i);
    if ((c === SP || c === HT) && i > 0) {
      let j = i;
      while (j < limit && (raw[j] === SP || raw[j] === HT)) j++;
      return raw[j] === COLON ? raw.toString('latin1', 0, i) : null;
    }
    if (c <= SP || c >= 0x7f) return null;
  }
  return null;
}

/**
 * Splits a multipart body at delimiter lines of its own boundary only, so nested
 * multiparts (and a nested one missing its close delimiter) stay inside their part.
 */
function parseMultipart(
  body: Buffer,
  boundary: string,
  subtype: string,
  partDefault: string,
  depth: number,
  limits: Limits,
): MimeMultipartBody {
  const dash = Buffer.from('--' + boundary, 'utf8');
  const result: MimeMultipartBody = {
    kind: 'multipart',
    subtype,
    boundary,
    preamble: body,
    parts: [],
    closeDelimiter: null,
    epilogue: body.subarray(body.length),
  };
  let pos = 0; // start of the current line
  let contentStart = -1; // start of the current part's content (-1: still in the preamble)
  let consumed = 0; // end of the last delimiter line
  let pendingDelimiter: Buffer | null = null;
  const finishPart = (delimStart: number) => {
    if (pendingDelimiter === null) result.preamble = body.subarray(0, delimStart);
    else {
      result.parts.push({
        delimiter: pendingDelimiter,
        node: parseEntity(body.subarray(contentStart, delimStart), partDefault, depth + 1, limits),
      });
    }
  };
  while (pos < body.length) {
    const next = lineEnd(body, pos);
    const kind = delimiterKind(body, pos, next, dash);
    if (kind !== null) {
      // The line ending before the delimiter belongs to it, unless an earlier delimiter owns it.
      let delimStart = pos;
      if (pos > consumed && body[pos - 1] === LF) delimStart = pos - 1 > consumed && body[pos - 2] === CR ? pos - 2 : pos - 1;
      finishPart(delimStart);
      if (kind === 'close') {
        result.closeDelimiter = body.subarray(delimStart, next);
        result.epilogue = body.subarray(next);
        return result;
      }
      pendingDelimiter = body.subarray(delimStart, next);
      contentStart = next;
      consumed = next;
      // Enough parts: the last one takes the rest of the body, delimiters and all.
      if (result.parts.length === limits.maxParts - 1) break;
    }
    pos = next;
  }
  if (pendingDelimiter !== null) finishPart(body.length);
  return result;
}

/** 'open' for `--boundary[padding]`, 'close' for `--boundary--[padding]`, else null. */
function delimiterKind(buf: Buffer, start: number, end: number, dash: Buffer): 'open' | 'close' | null {
  if (end - start < dash.length || buf[start] !== DASH || buf[start + 1] !== DASH) return null;
  if (buf.compare(dash, 0, dash.length, start, start + dash.length) !== 0) return null;
  let i = start + dash.length;
  let kind: 'open' | 'close' = 'open';
  if (buf[i] === DASH && buf[i + 1] === DASH) {
    kind = 'close';
    i += 2;
  }
  for (; i < end; i++) {
    const c = buf[i];
    if (c !== SP && c !== HT && c !== CR && c !== LF) return null;
  }
  return kind;
}
