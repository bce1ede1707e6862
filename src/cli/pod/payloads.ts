import { createHash, type Hash } from 'node:crypto';
import { DEAD_LETTER_KEEP_BYTES } from '../../pod/ingest.js';

/** One event's payload read from a file, with where it came from. */
export interface FilePayload {
  /** The payload; for an oversize one only its first bytes. */
  payload: Buffer;
  /** `line N` (JSON lines) or `element N` (JSON array), 1-based. */
  position: string;
  totalBytes: number;
  /** Longer than the event limit: `payload` is a prefix, the rest was only hashed. */
  oversize?: { sha256: string };
}

export interface ReadPayloadsOptions {
  maxEventBytes: number;
  /** A JSON array is parsed whole; beyond this many bytes the file is refused. */
  maxArrayBytes: number;
  /** Called with each chunk's size as it is read (progress). */
  onBytes?: (n: number) => void;
}

export class PayloadFileError extends Error {
  readonly code = 'ERR_POD_IMPORT_FILE';
}

const LF = 0x0a;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function toBuffer(chunk: Buffer | string | Uint8Array): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
}

/**
 * Collects one line's bytes. Past `max` it keeps only the dead-letter prefix and hashes the
 * rest as it passes, so an oversize line costs at most `max` bytes of memory.
 */
class LineBuffer {
  private parts: Buffer[] = [];
  private hash: Hash | undefined;
  total = 0;

  constructor(private readonly max: number) {}

  add(part: Buffer): void {
    this.total += part.length;
    if (this.hash) {
      this.hash.update(part);
      return;
    }
    this.parts.push(part);
    if (this.total <= this.max) return;
    this.hash = createHash('sha256');
    for (const p of this.parts) this.hash.update(p);
    this.parts = [Buffer.from(Buffer.concat(this.parts).subarray(0, DEAD_LETTER_KEEP_BYTES))];
  }

  take(): { bytes: Buffer; total: number; sha256?: string } {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    const out = { bytes, total: this.total, ...(this.hash ? { sha256: this.hash.digest('hex') } : {}) };
    this.parts = [];
    this.hash = undefined;
    this.total = 0;
    return out;
  }
}

function* linesOf(buffer: LineBuffer, chunk: Buffer, lineNo: { n: number }): Generator<FilePayload> {
  let start = 0;
  for (let nl = chunk.indexOf(LF, start); nl >= 0; nl = chunk.indexOf(LF, start)) {
    buffer.add(chunk.subarray(start, nl));
    start = nl + 1;
    lineNo.n++;
    const item = finishLine(buffer, lineNo.n);
    if (item) yield item;
  }
  if (start < chunk.length) buffer.add(chunk.subarray(start));
}

function finishLine(buffer: LineBuffer, n: number): FilePayload | undefined {
  const { bytes, total, sha256 } = buffer.take();
  if (sha256 !== undefined) return { payload: bytes, position: `line ${n}`, totalBytes: total, oversize: { sha256 } };
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
  const payload = bytes.subarray(0, end);
  if (payload.every(isSpace)) return undefined;
  return { payload, position: `line ${n}`, totalBytes: payload.length };
}

/**
 * Splits pretty-printed JSON values written one after another (`jq .` output, a sample copied
 * from a SIEM's documentation) at their top-level ends, minding strings and escapes. Text left
 * open at the end is returned as one more value, for ingest to dead-letter. It works on the
 * bytes: every structural character is ASCII, which no byte of a multi-byte UTF-8 sequence is,
 * so a value that is not UTF-8 is handed on as it is (ingest dead-letters it) instead of being
 * decoded with replacement characters and stored altered.
 */
function* topLevelValues(bytes: Buffer): Generator<Buffer> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (start < 0) {
      if (isSpace(c)) continue;
      start = i;
    }
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c /* \\ */) escaped = true;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    if (!inString && depth <= 0 && (c === 0x7d || c === 0x5d || i + 1 === bytes.length || isSpace(bytes[i + 1]!))) {
      yield bytes.subarray(start, i + 1);
      start = -1;
      depth = 0;
    }
  }
  if (start >= 0) yield bytes.subarray(start);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function* wholeFile(parts: Buffer[], mode: 'array' | 'objects'): Generator<FilePayload> {
  const bytes = Buffer.concat(parts);
  if (mode === 'objects') {
    let i = 0;
    for (const value of topLevelValues(bytes)) {
      const payload = Buffer.from(value);
      yield { payload, position: `object ${++i}`, totalBytes: payload.length };
    }
    return;
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    // Decoded leniently, its events would be stored with replacement characters for bytes they had.
    throw new PayloadFileError('not a JSON array: not UTF-8; write one event per line instead, so each bad event is dead-lettered on its own');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PayloadFileError(`not a JSON array: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new PayloadFileError('not a JSON array');
  for (const [i, element] of parsed.entries()) {
    // Held whole already: the event limit is applied by ingest like for any payload.
    const payload = Buffer.from(JSON.stringify(element) ?? 'null');
    yield { payload, position: `element ${i + 1}`, totalBytes: payload.length };
  }
}

/**
 * What kind of file the bytes seen so far start: `[` is a JSON array; a first non-blank line
 * that is a lone `{` starts pretty-printed objects (no JSON-lines event is a lone brace);
 * anything else is JSON lines. Undefined until the first non-blank line is complete.
 */
function fileMode(head: Buffer, ended: boolean): 'lines' | 'array' | 'objects' | undefined {
  const at = head.findIndex((b) => !isSpace(b));
  if (at < 0) return ended ? 'lines' : undefined;
  if (head[at] === 0x5b /* [ */) return 'array';
  if (head[at] !== 0x7b /* { */) return 'lines';
  // Decided at the first byte after the brace that is not blank, so a long first line is not held.
  for (let i = at + 1; i < head.length; i++) {
    if (head[i] === LF) return 'objects';
    if (!isSpace(head[i]!)) return 'lines';
  }
  return ended ? 'objects' : undefined;
}

/**
 * Splits a file of PoD events into payloads without holding it whole: JSON lines are
 * streamed line by line (an oversize line is never buffered past the dead-letter prefix);
 * a JSON array (first non-blank byte `[`) and pretty-printed objects (first non-blank line a
 * lone `{`) are read whole up to `maxArrayBytes`.
 */
export async function* readPayloads(source: AsyncIterable<Buffer | string | Uint8Array>, opts: ReadPayloadsOptions): AsyncGenerator<FilePayload> {
  let mode: 'unknown' | 'lines' | 'array' | 'objects' = 'unknown';
  const lines = new LineBuffer(opts.maxEventBytes);
  const lineNo = { n: 0 };
  const whole: Buffer[] = [];
  let wholeBytes = 0;
  let head: Buffer[] = [];
  let first = true;
  const take = function* (chunk: Buffer): Generator<FilePayload> {
    if (mode === 'lines') {
      yield* linesOf(lines, chunk, lineNo);
      return;
    }
    wholeBytes += chunk.length;
    if (wholeBytes > opts.maxArrayBytes) {
      throw new PayloadFileError(
        mode === 'array'
          ? `a JSON array file over ${opts.maxArrayBytes} bytes is not read whole; write one event per line instead (jq -c '.[]')`
          : `a file of pretty-printed JSON over ${opts.maxArrayBytes} bytes is not read whole; write one event per line instead (jq -c .)`,
      );
    }
    whole.push(chunk);
  };
  for await (const raw of source) {
    let chunk = toBuffer(raw);
    opts.onBytes?.(chunk.length);
    if (first && chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    first = false;
    if (mode === 'unknown') {
      head.push(chunk);
      const seen = Buffer.concat(head);
      const decided = fileMode(seen, false);
      if (decided === undefined) continue;
      mode = decided;
      head = [];
      chunk = seen;
    }
    yield* take(chunk);
  }
  if (mode === 'unknown') {
    const seen = Buffer.concat(head);
    mode = fileMode(seen, true) ?? 'lines';
    yield* take(seen);
  }
  if (mode !== 'lines') {
    yield* wholeFile(whole, mode);
    return;
  }
  lineNo.n++;
  const last = finishLine(lines, lineNo.n);
  if (last) yield last;
}
