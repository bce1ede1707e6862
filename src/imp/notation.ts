// The RFC 753 section 4 notation (Example 1 step 6):
//   LIST( LIST( INDEX=37, INTEGER=167772404 ), PROPLIST( IA: 167772359, NET: arpa ), TEXT="DELIVER" )
// printNotation writes it; parseNotation reads it back (and hand-written
// bags). Grammar, quoting and escapes are in docs/imp.md ("Notation").
import { ImpError, ImpErrorCode } from './errors.js';
import { DEFAULT_MAX_DEPTH, MAX_COUNT24 } from './limits.js';
import type { Element, PropPair } from './types.js';

export interface PrintOptions {
  /** Lines are broken so that elements fit this many columns where possible. Default 78. */
  width?: number;
}

const KEYWORDS = ['NOP', 'PAD', 'BOOLEAN', 'INDEX', 'INTEGER', 'BITSTR', 'TEXT', 'LIST', 'PROPLIST', 'ENCRYPT'];

// ---- printer -------------------------------------------------------------------

function quote(data: Uint8Array, start = 0, end = data.length): string {
  let s = '"';
  for (let i = start; i < end; i++) {
    const c = data[i]!;
    if (c === 0x22) s += '\\"';
    else if (c === 0x5c) s += '\\\\';
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + '"';
}

function quoteString(str: string): string {
  return quote(Buffer.from(str, 'latin1'));
}

function hex(data: Uint8Array): string {
  return `'${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')}'`;
}

/** A TEXT value that can be written bare after `NAME:` and read back unchanged. */
function bareSafe(data: Uint8Array): boolean {
  if (data.length === 0 || data.length > 200) return false;
  const s = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  if (!/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(s)) return false;
  if (/[,()"#\\]/.test(s) || s.startsWith("'")) return false;
  if (/^[+-]?(\d+|0x[0-9a-f]+)$/i.test(s)) return false;
  const word = /^[A-Za-z]+/.exec(s)?.[0]?.toUpperCase();
  return !(word && KEYWORDS.includes(word));
}

function nameToken(name: string): string {
  return /^[A-Za-z0-9_.*@+\-/<>!?$%&;=\[\]{}|~^`]+$/.test(name) && !name.startsWith("'") ? name : quoteString(name);
}

/** Length of the one-line form, or Infinity once it passes `budget`. */
function flatLength(el: Element, budget: number, inProplist: boolean): number {
  switch (el.type) {
    case 'list': {
      let n = 7;
      for (const item of el.items) {
        n += flatLength(item, budget - n, false) + 2;
        if (n > budget) return Infinity;
      }
      return n;
    }
    case 'proplist': {
      let n = 11;
      for (const pair of el.pairs) {
        n += pair.name.length + 4 + flatLength(pair.value, budget - n, true);
        if (n > budget) return Infinity;
      }
      return n;
    }
    case 'text':
    case 'pad':
    case 'encrypt':
    case 'bitstr':
      // every payload octet prints as at least one character
      if (el.data.length > budget) return Infinity;
      return value(el, inProplist).length;
    default:
      return value(el, inProplist).length;
  }
}

function value(el: Element, inProplist: boolean): string {
  if (inProplist && el.type === 'integer') return String(el.value);
  if (inProplist && el.type === 'text') return bareSafe(el.data) ? Buffer.from(el.data.buffer, el.data.byteOffset, el.data.byteLength).toString('latin1') : quote(el.data);
  return flat(el);
}

function flat(el: Element): string {
  switch (el.type) {
    case 'nop':
      return 'NOP';
    case 'pad':
      return `PAD=${hex(el.data)}`;
    case 'boolean':
      return `BOOLEAN=${el.value ? 'TRUE' : 'FALSE'}`;
    case 'index':
      return `INDEX=${el.value}`;
    case 'integer':
      return `INTEGER=${el.value}`;
    case 'bitstr':
      return `BITSTR=${el.bits}:${hex(el.data)}`;
    case 'text':
      return `TEXT=${quote(el.data)}`;
    case 'encrypt':
      return `ENCRYPT=${hex(el.data)}`;
    case 'list':
      return el.items.length ? `LIST( ${el.items.map((i) => flat(i)).join(', ')} )` : 'LIST( )';
    case 'proplist':
      return el.pairs.length ? `PROPLIST( ${el.pairs.map((p) => `${nameToken(p.name)}: ${value(p.value, true)}`).join(', ')} )` : 'PROPLIST( )';
  }
}

/** TEXT broken after each line feed, continuation strings aligned at `col`. */
function textLines(el: Element & { data: Uint8Array }, col: number, prefix: string): string {
  const d = el.data;
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < d.length; i++) {
    if (d[i] === 0x0a && i + 1 < d.length) {
      parts.push(quote(d, start, i + 1));
      start = i + 1;
    }
  }
  parts.push(quote(d, start, d.length));
  return prefix + parts.join('\n' + ' '.repeat(col + prefix.length));
}

function hexLines(data: Uint8Array, col: number, prefix: string, width: number): string {
  const per = Math.max(8, Math.floor((width - col - prefix.length - 2) / 2)) & ~1;
  const h = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
  const lines: string[] = [];
  for (let i = 0; i < h.length; i += per * 2) lines.push(h.slice(i, i + per * 2));
  return `${prefix}'${lines.join('\n' + ' '.repeat(col + prefix.length + 1))}'`;
}

function print(el: Element, col: number, width: number, inProplist: boolean): string {
  if (col + flatLength(el, width - col, inProplist) <= width) return value(el, inProplist);
  switch (el.type) {
    case 'list': {
      const pad = '\n' + ' '.repeat(col + 6);
      return `LIST( ${el.items.map((item) => print(item, col + 6, width, false)).join(',' + pad)} )`;
    }
    case 'proplist': {
      const pad = '\n' + ' '.repeat(col + 10);
      const pairs = el.pairs.map((p) => {
        const name = `${nameToken(p.name)}: `;
        return name + print(p.value, col + 10 + name.length, width, true);
      });
      return `PROPLIST( ${pairs.join(',' + pad)} )`;
    }
    case 'text':
      if (inProplist && bareSafe(el.data)) return value(el, true);
      return textLines(el, col, inProplist ? '' : 'TEXT=');
    case 'pad':
      return hexLines(el.data, col, 'PAD=', width);
    case 'encrypt':
      return hexLines(el.data, col, 'ENCRYPT=', width);
    case 'bitstr':
      return hexLines(el.data, col, `BITSTR=${el.bits}:`, width);
    default:
      return value(el, inProplist);
  }
}

/** Prints one element (or several, one after another) in the RFC 753 notation, ending with a newline. */
export function printNotation(elements: Element | readonly Element[], opts: PrintOptions = {}): string {
  const width = opts.width ?? 78;
  const list = Array.isArray(elements) ? (elements as readonly Element[]) : [elements as Element];
  return list.map((el) => print(el, 0, width, false) + '\n').join('');
}

// ---- parser --------------------------------------------------------------------

export interface ParseOptions {
  /** Deepest LIST/PROPLIST nesting accepted. Default 64, as for decoding. */
  maxDepth?: number;
}

class Parser {
  pos = 0;
  constructor(
    readonly src: string,
    readonly maxDepth: number,
  ) {}

  fail(message: string, at = this.pos): never {
    let line = 1;
    for (let i = 0; i < at && i < this.src.length; i++) if (this.src.charCodeAt(i) === 10) line++;
    throw new ImpError(ImpErrorCode.NOTATION, message, { offset: at, line });
  }

  /** Skips whitespace and `#` comments. */
  skip(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s[this.pos]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.pos++;
      else if (c === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else break;
    }
  }

  peek(): string | undefined {
    return this.src[this.pos];
  }

  expect(ch: string): void {
    this.skip();
    if (this.src[this.pos] !== ch) this.fail(`expected '${ch}', found ${this.describe()}`);
    this.pos++;
  }

  describe(): string {
    if (this.pos >= this.src.length) return 'end of input';
    return JSON.stringify(this.src.slice(this.pos, this.pos + 12));
  }

  keyword(): string | undefined {
    const m = /^[A-Za-z]+/.exec(this.src.slice(this.pos, this.pos + 10));
    if (!m) return undefined;
    const word = m[0].toUpperCase();
    if (!KEYWORDS.includes(word)) return undefined;
    // a keyword is followed by '=' or '(' (after optional spaces) or, for NOP, by a delimiter
    if (word === 'NOP') {
      const after = this.src[this.pos + 3];
      return after === undefined || /[\s,)#]/.test(after) ? word : undefined;
    }
    const next = /^[ \t]*(.)?/.exec(this.src.slice(this.pos + m[0].length, this.pos + m[0].length + 40))?.[1];
    if ((word === 'LIST' || word === 'PROPLIST') && next === '(') return word;
    if (next === '=') return word;
    return undefined;
  }

  element(depth: number): Element {
    this.skip();
    const at = this.pos;
    const word = this.keyword();
    if (!word) this.fail(`expected an element (LIST(, TEXT=, INDEX=, ...), found ${this.describe()}`);
    this.pos += word.length;
    switch (word) {
      case 'NOP':
        return { type: 'nop' };
      case 'LIST':
      case 'PROPLIST': {
        if (depth > this.maxDepth) throw new ImpError(ImpErrorCode.TOO_DEEP, `nesting deeper than ${this.maxDepth}`, { offset: at });
        this.expect('(');
        return word === 'LIST' ? { type: 'list', items: this.items(depth) } : { type: 'proplist', pairs: this.pairs(depth) };
      }
    }
    this.expect('=');
    this.skip();
    switch (word) {
      case 'PAD':
        return { type: 'pad', data: this.hex() };
      case 'ENCRYPT':
        return { type: 'encrypt', data: this.hex() };
      case 'BOOLEAN': {
        const m = /^(TRUE|FALSE|1|0)\b/i.exec(this.src.slice(this.pos, this.pos + 6));
        if (!m) this.fail(`BOOLEAN must be TRUE or FALSE, found ${this.describe()}`);
        this.pos += m[0].length;
        return { type: 'boolean', value: /^(true|1)$/i.test(m[0]) };
      }
      case 'INDEX': {
        const v = this.number();
        if (v < 0 || v > 0xffff) this.fail(`INDEX ${v} is outside 0..65535`, at);
        return { type: 'index', value: v };
      }
      case 'INTEGER': {
        const v = this.number();
        if (v < -0x80000000 || v > 0xffffffff) this.fail(`INTEGER ${v} is outside -2^31..2^32-1`, at);
        return { type: 'integer', value: v | 0 };
      }
      case 'BITSTR': {
        const bits = this.number();
        if (bits < 0 || bits > MAX_COUNT24) this.fail(`BITSTR bit count ${bits} is outside 0..2^24-1`, at);
        this.expect(':');
        this.skip();
        const data = this.hex();
        if (data.length !== Math.ceil(bits / 8)) this.fail(`BITSTR of ${bits} bits needs ${Math.ceil(bits / 8)} octets, has ${data.length}`, at);
        return { type: 'bitstr', bits, data };
      }
      case 'TEXT':
        return { type: 'text', data: this.strings() };
    }
    return this.fail(`unexpected ${word}`, at);
  }

  items(depth: number): Element[] {
    const items: Element[] = [];
    for (;;) {
      this.skip();
      if (this.peek() === ')') {
        this.pos++;
        return items;
      }
      if (items.length && this.peek() === ',') {
        this.pos++;
        this.skip();
      }
      items.push(this.element(depth + 1));
    }
  }

  pairs(depth: number): PropPair[] {
    const pairs: PropPair[] = [];
    for (;;) {
      this.skip();
      if (this.peek() === ')') {
        this.pos++;
        return pairs;
      }
      if (pairs.length && this.peek() === ',') {
        this.pos++;
        this.skip();
      }
      const name = this.name();
      this.expect(':');
      pairs.push({ name, value: this.pairValue(depth) });
    }
  }

  name(): string {
    if (this.peek() === '"') return this.string().toString('latin1');
    const m = /^[^\s:,()"#']+/.exec(this.src.slice(this.pos, this.pos + 300));
    if (!m) this.fail(`expected a PROPLIST name, found ${this.describe()}`);
    this.pos += m[0].length;
    return m[0];
  }

  /** After `NAME:`: an element, a quoted string (TEXT), a number (INTEGER) or bare text to the end of the line (TEXT). */
  pairValue(depth: number): Element {
    const s = this.src;
    while (s[this.pos] === ' ' || s[this.pos] === '\t') this.pos++;
    if (this.keyword()) return this.element(depth + 1);
    if (this.peek() === '"') return { type: 'text', data: this.strings() };
    const start = this.pos;
    let end = start;
    while (end < s.length) {
      const c = s[end]!;
      if (c === '\n' || c === '\r' || c === ',' || c === ')') break;
      if (c === '#' && end > start && (s[end - 1] === ' ' || s[end - 1] === '\t')) break;
      end++;
    }
    const raw = s.slice(start, end).trim();
    this.pos = end;
    if (raw === '') this.fail('empty PROPLIST value (write "" for an empty TEXT)', start);
    if (/^[+-]?\d+$/.test(raw)) {
      const v = Number(raw);
      if (v < -0x80000000 || v > 0xffffffff) this.fail(`INTEGER ${raw} is outside -2^31..2^32-1`, start);
      return { type: 'integer', value: v | 0 };
    }
    return { type: 'text', data: this.ascii(raw, start) };
  }

  ascii(str: string, at: number): Buffer {
    for (let i = 0; i < str.length; i++)
      if (str.charCodeAt(i) > 0x7f) throw new ImpError(ImpErrorCode.TEXT_8BIT, `character ${JSON.stringify(str[i])} is not 7-bit ASCII`, { offset: at + i });
    return Buffer.from(str, 'latin1');
  }

  number(): number {
    this.skip();
    const m = /^[+-]?(0x[0-9a-f]+|\d+)/i.exec(this.src.slice(this.pos, this.pos + 24));
    if (!m) this.fail(`expected a number, found ${this.describe()}`);
    this.pos += m[0].length;
    const neg = m[0].startsWith('-');
    const digits = m[0].replace(/^[+-]/, '');
    const v = Number(digits);
    return neg ? -v : v;
  }

  /** Adjacent quoted strings concatenate (the printer breaks long TEXT after line feeds). */
  strings(): Buffer {
    const parts: Buffer[] = [this.string()];
    for (;;) {
      const save = this.pos;
      this.skip();
      if (this.peek() !== '"') {
        this.pos = save;
        break;
      }
      const before = this.pos;
      const next = this.string();
      this.skip();
      if (this.peek() === ':') {
        // that string was the next PROPLIST name, not a continuation
        this.pos = before;
        break;
      }
      parts.push(next);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  string(): Buffer {
    const s = this.src;
    const open = this.pos;
    if (s[this.pos] !== '"') this.fail(`expected '"', found ${this.describe()}`);
    this.pos++;
    const out: number[] = [];
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string', open);
      const c = s.charCodeAt(this.pos++);
      if (c === 0x22) break;
      if (c === 0x5c) {
        const e = s[this.pos++];
        if (e === 'n') out.push(10);
        else if (e === 'r') out.push(13);
        else if (e === 't') out.push(9);
        else if (e === '"' || e === '\\') out.push(e.charCodeAt(0));
        else if (e === 'x' && /^[0-9a-f]{2}$/i.test(s.slice(this.pos, this.pos + 2))) {
          out.push(parseInt(s.slice(this.pos, this.pos + 2), 16));
          this.pos += 2;
        } else this.fail(`unknown escape \\${e ?? ''} (use \\" \\\\ \\n \\r \\t \\xHH)`, this.pos - 2);
        continue;
      }
      if (c > 0x7f) throw new ImpError(ImpErrorCode.TEXT_8BIT, `character ${JSON.stringify(s[this.pos - 1])} is not 7-bit ASCII; write \\xHH`, { offset: this.pos - 1 });
      out.push(c);
    }
    return Buffer.from(out);
  }

  hex(): Buffer {
    const s = this.src;
    if (s[this.pos] !== "'") this.fail(`expected hex octets in single quotes, found ${this.describe()}`);
    const open = this.pos++;
    const close = s.indexOf("'", this.pos);
    if (close < 0) this.fail('unterminated hex string', open);
    const digits = s.slice(this.pos, close).replace(/\s+/g, '');
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) this.fail('hex string must hold pairs of hex digits', open);
    this.pos = close + 1;
    return Buffer.from(digits, 'hex');
  }
}

/** Parses every top-level element in `text`. */
export function parseNotationAll(text: string, opts: ParseOptions = {}): Element[] {
  const p = new Parser(text, opts.maxDepth ?? DEFAULT_MAX_DEPTH);
  const out: Element[] = [];
  for (;;) {
    p.skip();
    if (p.pos >= text.length) return out;
    if (out.length && p.peek() === ',') {
      p.pos++;
      continue;
    }
    out.push(p.element(1));
  }
}

/** Parses text holding exactly one element. */
export function parseNotation(text: string, opts: ParseOptions = {}): Element {
  const all = parseNotationAll(text, opts);
  if (all.length !== 1)
    throw new ImpError(ImpErrorCode.NOTATION, `expected exactly one top-level element, found ${all.length}`, { offset: 0 });
  return all[0]!;
}
