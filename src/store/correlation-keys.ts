// The keys that tie a message mailbag handled to the upstream filter's view of it:
// Message-ID, the upstream MTA's queue id and host (from the Received field it added),
// and the Proofpoint GUIDs. Pure functions over a header section; no I/O.

export interface CorrelationKeys {
  /** Normalised Message-ID (see normaliseMessageId). */
  messageId: string | undefined;
  /** The upstream MTA's queue id and host: the topmost Received that is not mailbag's own. */
  upstreamQid: string | undefined;
  upstreamHost: string | undefined;
  proofpointGuid: string | undefined;
  proofpointOrigGuid: string | undefined;
}

/** One header field, unfolded: lower-case name and value. */
interface Field {
  name: string;
  value: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A header section's bytes as text: UTF-8 when they are (RFC 6532: a Message-ID may be UTF-8
 * in mail sent with SMTPUTF8, and PoD events carry it as text), else Latin-1, which reads any
 * bytes, so a header with stray 8-bit octets still gives its keys.
 */
function headerText(header: Buffer): string {
  const crlf = header.indexOf('\r\n\r\n');
  const lf = header.indexOf('\n\n');
  const end = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
  const section = end === -1 ? header : header.subarray(0, end);
  try {
    return utf8.decode(section);
  } catch {
    return section.toString('latin1');
  }
}

/** The fields of a header section (up to the first empty line), unfolded. */
function headerFields(header: Buffer | string): Field[] {
  const text = typeof header === 'string' ? header : headerText(header);
  const end = text.search(/\r?\n\r?\n/);
  const section = end === -1 ? text : text.slice(0, end);
  const fields: Field[] = [];
  for (const line of section.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) {
      fields[fields.length - 1]!.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return fields;
}

function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && depth > 0) {
      i++;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

/**
 * `<Local@Example.COM>` -> `Local@example.com`: angle brackets, comments and white space
 * removed, the domain part lower-cased (it is case-insensitive; the local part is not).
 * Undefined for an empty value.
 */
export function normaliseMessageId(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let v = stripComments(value).trim();
  const angle = /<([^<>]*)>/.exec(v);
  if (angle) v = angle[1]!;
  v = v.replace(/\s+/g, '');
  if (v === '') return undefined;
  const at = v.lastIndexOf('@');
  return at === -1 ? v : v.slice(0, at) + '@' + v.slice(at + 1).toLowerCase();
}

export interface ReceivedBy {
  by: string;
  /** The comment after the `by` host, e.g. `mailbag` or `8.18.1/8.18.1`. */
  comment: string | undefined;
  id: string | undefined;
  with: string | undefined;
}

/** The `by HOST (COMMENT) with PROTO id QID` clauses of a Received value. */
export function parseReceivedBy(value: string): ReceivedBy | undefined {
  const semi = value.lastIndexOf(';');
  const clauses = semi === -1 ? value : value.slice(0, semi);
  const by = /(?:^|\s)by\s+([^\s;()]+)(?:\s*\(([^()]*)\))?/i.exec(clauses);
  if (!by) return undefined;
  const id = /(?:^|\s)id\s+<?([^\s;<>()]+)>?/i.exec(clauses);
  const proto = /(?:^|\s)with\s+([^\s;()]+)/i.exec(clauses);
  return { by: by[1]!.toLowerCase(), comment: by[2]?.trim(), id: id?.[1], with: proto?.[1] };
}

/** mailbag's own trace fields say `by HOST (mailbag)`. */
function isMailbags(r: ReceivedBy): boolean {
  return r.comment !== undefined && /^mailbag\b/i.test(r.comment);
}

/** A mailbag qid: 13 characters of [0-9A-Z] (src/delivery/qid.ts). */
const MAILBAG_QID = /^[0-9A-Z]{13}$/;

/**
 * The qid the nearest mailbag before us gave the message: the `id` of the topmost
 * Received field mailbag added (`by HOST (mailbag) with ESMTP|IMP id QID`). For a message
 * received over IMP from another mailbag, that is the sending gateway's qid. Only the
 * header section is read; `message` may be the whole message.
 */
export function previousMailbagQid(message: Buffer): string | undefined {
  const end = message.indexOf('\r\n\r\n');
  for (const f of headerFields(end === -1 ? message : message.subarray(0, end))) {
    if (f.name !== 'received') continue;
    const r = parseReceivedBy(f.value);
    if (r && isMailbags(r)) return r.id !== undefined && MAILBAG_QID.test(r.id) ? r.id : undefined;
  }
  return undefined;
}

/** Every correlation key the header carries. */
export function extractCorrelationKeys(header: Buffer | string): CorrelationKeys {
  const fields = headerFields(header);
  const first = (name: string) => fields.find((f) => f.name === name)?.value;
  let upstream: ReceivedBy | undefined;
  for (const f of fields) {
    if (f.name !== 'received') continue;
    const r = parseReceivedBy(f.value);
    if (!r || isMailbags(r)) continue;
    upstream = r;
    break;
  }
  const guid = (name: string) => first(name)?.trim() || undefined;
  return {
    messageId: normaliseMessageId(first('message-id')),
    upstreamQid: upstream?.id,
    upstreamHost: upstream?.by,
    proofpointGuid: guid('x-proofpoint-guid'),
    proofpointOrigGuid: guid('x-proofpoint-orig-guid'),
  };
}

/** A mailbag qid in a sendmail `stat=Sent (... queued as QID)` text, as mailbag's 250 reply puts it. */
export function queuedAsQid(stat: string): string | undefined {
  return /queued as ([0-9A-Za-z]+)\)?\s*$/.exec(stat.trim())?.[1];
}
