// A DELIVER document that is not in our carriage (another MPM's, or RFC 753's own
// Example 1) becomes a new RFC 5322/MIME message: header objects map to header
// fields, TEXT body elements are joined as text/plain, BITSTR runs become
// attachments, and LIST(PROPLIST, ...) body items become parts with those headers.
import type { Element, ImpDocument, ProplistElement } from '../types.js';
import { asBuffer } from './carriage.js';
import { encodeWords, presentableValue } from './presentable.js';
import { formatRfc5322Date, impToRfc5322Date } from './date.js';
import { mimeBoundary } from '../../mime/boundary.js';
import { foldField } from '../../mime/fold.js';
import { base64Lines, quotedPrintableLines } from '../../mime/transfer-encoding.js';

const FIELD_NAMES: Record<string, string> = {
  DATE: 'Date', FROM: 'From', SENDER: 'Sender', 'REPLY-TO': 'Reply-To', TO: 'To', CC: 'Cc', BCC: 'Bcc', SUBJECT: 'Subject',
  'MESSAGE-ID': 'Message-ID', 'IN-REPLY-TO': 'In-Reply-To', REFERENCES: 'References', COMMENTS: 'Comments', KEYWORDS: 'Keywords',
};
/** Fields this converter writes itself for each part. */
const OWN_FIELDS = new Set(['mime-version', 'content-transfer-encoding']);

interface Part {
  kind: 'text' | 'binary';
  data: Buffer[];
  /** Header fields from a LIST(PROPLIST, ...) body item. */
  fields: [string, string][];
}

/** A new CRLF RFC 5322/MIME message for a document that is not in our carriage. Never throws on odd elements. */
export function foreignDocumentToMime(doc: ImpDocument, envelopeFrom?: string): Buffer {
  const fields = headerFields(doc.header);
  const has = (name: string) => fields.some(([n]) => n.toLowerCase() === name);
  if (!has('date')) fields.unshift(['Date', formatRfc5322Date(nowLocal())]);
  if (!has('from')) fields.splice(1, 0, ['From', envelopeFrom ? `<${envelopeFrom}>` : '<postmaster@imp.invalid>']);
  const parts: Part[] = [];
  collectParts(doc.body.items, parts, []);
  const top = fields.filter(([n]) => !n.toLowerCase().startsWith('content-') && !OWN_FIELDS.has(n.toLowerCase()));
  top.push(['MIME-Version', '1.0']);
  const only = parts.length === 1 ? parts[0]! : undefined;
  const lines: string[] = [];
  let body: Buffer;
  if (parts.length === 0 || (only && only.kind === 'text')) {
    const [ctFields, encoded] = renderPart(only ?? { kind: 'text', data: [], fields: [] });
    for (const [n, v] of [...top, ...ctFields]) lines.push(fold(n, v));
    body = encoded;
  } else {
    const rendered = parts.map(renderPart);
    const boundary = pickBoundary(rendered.map(([, b]) => b));
    for (const [n, v] of [...top, ['Content-Type', `multipart/mixed; boundary="${boundary}"`] as [string, string]]) lines.push(fold(n, v));
    const chunks: Buffer[] = [];
    for (const [pf, data] of rendered) {
      chunks.push(Buffer.from(`--${boundary}\r\n${pf.map(([n, v]) => fold(n, v)).join('')}\r\n`), data, Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from(`--${boundary}--\r\n`));
    body = Buffer.concat(chunks);
  }
  return Buffer.concat([Buffer.from(lines.join('') + '\r\n', 'latin1'), body]);
}

function nowLocal() {
  const d = new Date();
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(), millisecond: 0, offset: 0 };
}

/** Header objects -> [field name, 7-bit value]. Values that are not text-like are left out. */
function headerFields(header: ProplistElement): [string, string][] {
  const out: [string, string][] = [];
  for (const pair of header.pairs) {
    const key = pair.name.replace(/:$/, '').trim().toUpperCase();
    let value = elementText(pair.value);
    // ENVELOPE-FROM is envelope, not header: impMessageToMime returns it separately.
    if (value === undefined || !key || key === 'ENVELOPE-FROM') continue;
    let name = FIELD_NAMES[key] ?? fieldName(pair.name);
    if (key === 'DATE') {
      const date = impToRfc5322Date(value);
      if (date === undefined) name = 'X-IMP-Date';
      else value = date;
    }
    out.push([name, value]);
  }
  return out;
}

/** A header name as written when it is a valid field name, otherwise X-IMP- plus its safe characters. */
function fieldName(name: string): string {
  const n = name.replace(/:$/, '').trim();
  if (/^[\x21-\x39\x3b-\x7e]+$/.test(n)) return n;
  return 'X-IMP-' + n.replace(/[^A-Za-z0-9-]+/g, '-');
}

/** A header value from an element: line breaks become spaces; other control characters force RFC 2047 words. */
function elementText(el: Element): string | undefined {
  const clean = (s: string) => {
    const v = s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
    return /[\x00-\x08\x0a-\x1f\x7f]/.test(v) ? encodeWords(v) : v;
  };
  switch (el.type) {
    case 'text':
      return clean(asBuffer(el.data).toString('latin1'));
    case 'bitstr':
      return clean(presentableValue(asBuffer(el.data).subarray(0, Math.floor(el.bits / 8))));
    case 'integer':
    case 'index':
      return String(el.value);
    case 'boolean':
      return el.value ? 'yes' : 'no';
    default:
      return undefined;
  }
}

function collectParts(items: Element[], parts: Part[], fields: [string, string][]): void {
  let current: Part | undefined;
  for (const el of items) {
    if (el.type === 'text' || el.type === 'bitstr') {
      const kind = el.type === 'text' ? 'text' : 'binary';
      if (!current || current.kind !== kind) parts.push((current = { kind, data: [], fields }));
      current.data.push(el.type === 'text' ? asBuffer(el.data) : asBuffer(el.data).subarray(0, Math.ceil(el.bits / 8)));
    } else if (el.type === 'list') {
      current = undefined;
      const head = el.items[0];
      if (head?.type === 'proplist') {
        const before = parts.length;
        collectParts(el.items.slice(1), parts, headerFields(head));
        if (parts.length === before) parts.push({ kind: 'text', data: [], fields: headerFields(head) });
      } else collectParts(el.items, parts, fields);
    }
  }
}

/** Part header fields and the encoded body: text 7bit (or quoted-printable for long lines), binary base64. */
function renderPart(part: Part): [[string, string][], Buffer] {
  const own = part.fields.filter(([n]) => !OWN_FIELDS.has(n.toLowerCase()) && !/^(date|from|to|cc|subject|sender|reply-to)$/i.test(n));
  const hasType = own.some(([n]) => n.toLowerCase() === 'content-type');
  const data = Buffer.concat(part.data);
  const fields: [string, string][] = [...own];
  if (part.kind === 'text') {
    const { text, needsQp } = crlfText(data);
    if (!hasType) fields.push(['Content-Type', 'text/plain; charset=us-ascii']);
    fields.push(['Content-Transfer-Encoding', needsQp ? 'quoted-printable' : '7bit']);
    return [fields, needsQp ? quotedPrintableLines(text) : text];
  }
  if (!hasType) fields.push(['Content-Type', 'application/octet-stream']);
  if (!own.some(([n]) => n.toLowerCase() === 'content-disposition')) fields.push(['Content-Disposition', 'attachment']);
  fields.push(['Content-Transfer-Encoding', 'base64']);
  return [fields, base64Lines(data)];
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * 7-bit text with every line ending (CRLF, bare CR, bare LF) written as CRLF, and
 * whether it needs quoted-printable: a line over 998 octets, or NUL/DEL in it.
 */
function crlfText(data: Buffer): { text: Buffer; needsQp: boolean } {
  const out = Buffer.allocUnsafe(data.length * 2);
  let o = 0;
  let lineStart = 0;
  let needsQp = false;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (c === CR || c === LF) {
      if (c === CR && data[i + 1] === LF) i++;
      out[o++] = CR;
      out[o++] = LF;
      lineStart = o;
      continue;
    }
    if (c === 0 || c === 0x7f || o - lineStart >= 998) needsQp = true;
    out[o++] = c;
  }
  return { text: out.subarray(0, o), needsQp };
}

/** `Name: value` folded near 78 columns, ending in CRLF. */
function fold(name: string, value: string): string {
  return foldField(name, value) + '\r\n';
}

function pickBoundary(bodies: Buffer[]): string {
  return mimeBoundary(bodies, { tag: 'imp', deterministic: true });
}
