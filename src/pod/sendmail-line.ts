import { PodError } from './errors.js';

/**
 * One sendmail log line as PoD's maillog `data` carries it:
 * `TIME HOST sendmail[PID]: QID: key=value, key=value, ...`.
 * PoD's `sm.*` copies cut values at `=` (VERP senders, stat texts), so correlation reads
 * this parse, not `sm`.
 */
export interface SendmailLine {
  /** The syslog time as written (not parsed: the event's `ts` is the instant). */
  time?: string;
  host?: string;
  program?: string;
  pid?: number;
  /** Queue id, or `NOQUEUE`. */
  qid?: string;
  /** Words before the first equate (`Milter: data`, `lost input channel from ...`). */
  text?: string;
  /** Every `key=value` equate in line order, values as written; the first of a repeated key wins. */
  equates: Record<string, string>;
}

// The syslog tag; everything before it is "TIME HOST" (ISO or BSD `Mmm dd hh:mm:ss` time).
const TAG = /(?:^|\s)([A-Za-z0-9_.\/-]+)\[(\d+)\]: /;
const QID = /^([A-Za-z0-9]+): /;
const KEY = /^([A-Za-z_][A-Za-z0-9_.-]*)=/;

// sendmail prints these last; their value is another party's free text (a remote SMTP reply,
// a ruleset's reason) and may hold anything, including ", word=".
const REST_OF_LINE_KEYS = new Set(['stat', 'reject']);

const CLOSERS: Record<string, string> = { '<': '>', '(': ')', '[': ']' };
const [BACKSLASH, QUOTE, COMMA, SPACE] = [0x5c, 0x22, 0x2c, 0x20] as const;

function fail(message: string): never {
  throw new PodError('ERR_POD_SENDMAIL_LINE', message);
}

/**
 * Index where the value starting at `start` ends: at `, key=` outside any `<>`, `()`, `[]`
 * or `"..."` (so `to=<a@x>,<b@y>`, `ctladdr=<u@x> (8/0)` and `from=<"a, b"@x>` stay whole).
 */
function valueEnd(line: string, start: number, key: string): number {
  // Char codes, not one-character strings: this runs over every character of every line.
  const open: number[] = [];
  let quoted = false;
  for (let i = start; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (quoted) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) quoted = false;
      continue;
    }
    const closer = c === 0x3c ? 0x3e : c === 0x28 ? 0x29 : c === 0x5b ? 0x5d : 0;
    if (c === QUOTE) quoted = true;
    else if (closer !== 0) open.push(closer);
    else if (open.length && c === open[open.length - 1]) open.pop();
    else if (c === COMMA && open.length === 0 && line.charCodeAt(i + 1) === SPACE && KEY.test(line.slice(i + 2, i + 66))) return i;
  }
  if (quoted) fail(`unterminated '"' in ${key}=`);
  if (open.length) fail(`unterminated '${Object.keys(CLOSERS).find((k) => CLOSERS[k]!.charCodeAt(0) === open[0])}' in ${key}=`);
  return line.length;
}

/** Where free text before the first equate ends (`Milter: data, reject=...`). */
function textEnd(line: string, start: number): number {
  for (let i = line.indexOf(', ', start); i >= 0; i = line.indexOf(', ', i + 1)) {
    if (KEY.test(line.slice(i + 2, i + 66))) return i;
  }
  return line.length;
}

/** Parses one log line; throws `ERR_POD_SENDMAIL_LINE` when a value's brackets or quotes do not close. */
export function parseSendmailLine(raw: string): SendmailLine {
  const line = raw.replace(/[\r\n]+$/, '');
  if (line.trim() === '') fail('the log line is empty');
  const result: SendmailLine = { equates: {} };
  let pos = 0;
  const tag = TAG.exec(line);
  if (tag) {
    const prefix = line.slice(0, tag.index).trim();
    const cut = prefix.lastIndexOf(' ');
    if (cut > 0) {
      result.time = prefix.slice(0, cut).trim();
      result.host = prefix.slice(cut + 1);
    } else if (prefix) result.host = prefix;
    result.program = tag[1]!;
    result.pid = Number(tag[2]);
    pos = tag.index + tag[0].length;
  }
  const qid = QID.exec(line.slice(pos));
  if (qid) {
    result.qid = qid[1]!;
    pos += qid[0].length;
  }
  if (!KEY.test(line.slice(pos, pos + 64))) {
    const end = textEnd(line, pos);
    const text = line.slice(pos, end).trim();
    if (text) result.text = text;
    pos = end;
  }
  while (pos < line.length) {
    if (line.startsWith(', ', pos)) pos += 2;
    const key = KEY.exec(line.slice(pos, pos + 64));
    if (!key) fail(`expected key=value at column ${pos + 1}`);
    const name = key[1]!;
    const start = pos + key[0].length;
    const end = REST_OF_LINE_KEYS.has(name) ? line.length : valueEnd(line, start, name);
    if (!(name in result.equates)) result.equates[name] = line.slice(start, end).trimEnd();
    pos = end;
  }
  return result;
}

/** The fields correlation queries, taken from a parsed line. */
export interface SendmailFields {
  qid?: string;
  /** Envelope sender without its angle brackets; `''` is the null sender `<>`. */
  from?: string;
  /** Recipients of a `to=` line, without angle brackets. */
  to?: string[];
  relay?: string;
  stat?: string;
  dsn?: string;
  delay?: string;
  xdelay?: string;
  mailer?: string;
  nrcpts?: number;
  size?: number;
  /** As written, `<...>` included. */
  msgid?: string;
  ctladdr?: string;
  /** The next hop's queue id, from a `stat=Sent (... queued as QID)` reply. */
  queuedAs?: string;
}

/** `<a@x>` -> `a@x`; anything not wholly in one pair of angle brackets is returned trimmed. */
export function stripAngles(value: string): string {
  const v = value.trim();
  if (v.startsWith('<') && v.endsWith('>') && valueEndsAt(v) === v.length - 1) return v.slice(1, -1).trim();
  return v;
}

/** Index of the `>` that closes the `<` at 0 (so `<a> (x) <b>` is not taken as one pair). */
function valueEndsAt(v: string): number {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') depth++;
    else if (c === '>' && --depth === 0) return i;
  }
  return -1;
}

/** Splits a `to=` list at commas outside brackets and quotes. */
export function splitRecipients(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<' || c === '(' || c === '[') depth++;
    else if ((c === '>' || c === ')' || c === ']') && depth > 0) depth--;
    else if (c === ',' && depth === 0) {
      out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  out.push(value.slice(start));
  return out.map(stripAngles).filter((r) => r !== '');
}

const QUEUED_AS = /\bqueued as ([A-Za-z0-9][A-Za-z0-9._-]*)/i;
// Exim's acceptance reply: "250 OK id=1tAbCd-000XyZ-12".
const EXIM_ID = /\bOK id=([A-Za-z0-9][A-Za-z0-9-]*)/;

/** The next hop's queue id named in a delivery status text, if any. */
export function queuedAsOf(stat: string): string | undefined {
  return (QUEUED_AS.exec(stat) ?? EXIM_ID.exec(stat))?.[1];
}

function integer(value: string | undefined): number | undefined {
  return value !== undefined && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : undefined;
}

export function sendmailFields(line: SendmailLine): SendmailFields {
  const e = line.equates;
  const fields: SendmailFields = {};
  if (line.qid !== undefined && line.qid !== 'NOQUEUE') fields.qid = line.qid;
  if (e['from'] !== undefined) fields.from = stripAngles(e['from']);
  if (e['to'] !== undefined) fields.to = splitRecipients(e['to']);
  for (const k of ['relay', 'stat', 'dsn', 'delay', 'xdelay', 'mailer', 'msgid', 'ctladdr'] as const) {
    if (e[k] !== undefined) fields[k] = e[k];
  }
  const nrcpts = integer(e['nrcpts']);
  if (nrcpts !== undefined) fields.nrcpts = nrcpts;
  const size = integer(e['size']);
  if (size !== undefined) fields.size = size;
  const queuedAs = fields.stat === undefined ? undefined : queuedAsOf(fields.stat);
  if (queuedAs !== undefined) fields.queuedAs = queuedAs;
  return fields;
}
