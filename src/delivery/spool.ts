import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, unlink } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { isQid } from './qid.js';
import { decodeEnvelope, decodeTrailer, encodeHeader, encodeTrailer, headerLine, MAX_TRAILER_BYTES, SpoolFormatError, type SpoolEnvelope } from './envelope.js';
import { nodeSpoolFs, type SpoolFs } from './spool-fs.js';

const unlinkP = promisify(unlink);

/** Removes a file; a file already gone is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlinkP(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Makes renames in `dir` durable. */
export async function syncDirectory(dir: string, fs: SpoolFs = nodeSpoolFs): Promise<void> {
  const fd = await fs.open(dir, 'r');
  try {
    await fs.fsync(fd);
  } finally {
    await fs.close(fd);
  }
}

/** Where a stored message's bytes are: the store row's spool columns. */
export interface SpooledMessageRef {
  qid: string;
  spool_path: string;
  /** octets of the message (the envelope header and end record not counted) */
  size: number;
  /** where the message starts in the file (0: a file written before envelopes) */
  spool_offset: number;
  /** sha256 of the message octets (null: a file written before checksums) */
  sha256: string | null;
}

/** A spool file that cannot be delivered as it is: held, never retried blindly. */
export class SpoolIntegrityError extends Error {
  constructor(
    readonly code: 'ERR_MAILBAG_SPOOL_MISSING' | 'ERR_MAILBAG_SPOOL_TRUNCATED' | 'ERR_MAILBAG_SPOOL_CHANGED',
    message: string,
  ) {
    super(message);
    this.name = 'SpoolIntegrityError';
  }
}

/** A message whose spool file matched the store's size and checksum. */
export interface VerifiedMessage {
  size: number;
  open(): Readable;
  /**
   * The message's header section (up to and including the blank line, at most
   * `MAX_HEADER_SECTION_BYTES`), from the bytes the check read: whoever needs the
   * header fields (correlation keys) reads nothing a second time.
   */
  headerSection: Buffer;
}

/** The header section handed out with a verified message is cut at this many octets. */
export const MAX_HEADER_SECTION_BYTES = 256 * 1024;

/**
 * Collects the header section from the chunks of a message, in order: done once the
 * blank line (CRLF CRLF) or the bound is reached. Keeps at most the bound in memory.
 */
class HeaderSectionCollector {
  private chunks: Buffer[] = [];
  private total = 0;
  private result: Buffer | undefined;

  add(chunk: Buffer): void {
    if (this.result) return;
    // the blank line may straddle chunks: look from 3 octets before this chunk
    const from = Math.max(0, this.total - 3);
    this.chunks.push(chunk);
    this.total += chunk.length;
    const all = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
    this.chunks = [all];
    const end = all.indexOf('\r\n\r\n', from);
    if (end !== -1) this.result = all.subarray(0, Math.min(end + 4, MAX_HEADER_SECTION_BYTES));
    else if (this.total >= MAX_HEADER_SECTION_BYTES) this.result = all.subarray(0, MAX_HEADER_SECTION_BYTES);
  }

  /** The header section (the whole message when it has no blank line). */
  done(): Buffer {
    this.result ??= this.chunks.length ? this.chunks[0]! : Buffer.alloc(0);
    this.chunks = [];
    return this.result;
  }
}

/** The header section of a message held in memory (a view, not a copy). */
export function headerSectionOf(message: Buffer): Buffer {
  const h = new HeaderSectionCollector();
  h.add(message);
  return h.done();
}

/** What a spool file says about itself, checked end to end (the queue CLI's `recover`). */
export interface InspectedSpoolFile {
  envelope: SpoolEnvelope;
  offset: number;
  size: number;
  sha256: string;
}

/** Messages up to this size are read for delivery in one call. */
const SMALL_MESSAGE_BYTES = 256 * 1024;

/** Buffered up to this many bytes before a write: small messages cost one writev. */
const FLUSH_BYTES = 128 * 1024;

/**
 * The message spool: one file per accepted message, named by qid, carrying its own
 * envelope (see envelope.ts). A message is written to `tmp/QID`, fsync'd, renamed into
 * the spool directory and the directory fsync'd, so after a crash a file in the spool
 * directory is always complete; files left in tmp/ are unfinished transactions and are
 * swept at start-up. Files the store does not know are moved to `unknown/`, never
 * deleted (`mailbag queue recover` queues them again).
 */
export class Spool {
  readonly dir: string;
  readonly tmpDir: string;
  readonly unknownDir: string;
  readonly fs: SpoolFs;

  constructor(dir: string, opts: { fs?: SpoolFs } = {}) {
    this.dir = resolve(dir);
    this.tmpDir = join(this.dir, 'tmp');
    this.unknownDir = join(this.dir, 'unknown');
    this.fs = opts.fs ?? nodeSpoolFs;
    mkdirSync(this.tmpDir, { recursive: true });
  }

  pathFor(qid: string): string {
    return join(this.dir, qid);
  }

  /** Removes what a crash left half-written (no 250 was ever given for these). */
  async sweepTmp(): Promise<number> {
    const names = readdirSync(this.tmpDir);
    await Promise.all(names.map((n) => removeFile(join(this.tmpDir, n))));
    return names.length;
  }

  /** qids of the message files in the spool directory (not tmp/ or unknown/). */
  list(): string[] {
    return readdirSync(this.dir).filter(isQid);
  }

  /** Names of the files set aside in unknown/. */
  listUnknown(): string[] {
    if (!existsSync(this.unknownDir)) return [];
    return readdirSync(this.unknownDir, { withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => d.name)
      .sort();
  }

  /**
   * The largest qid among the spool's files and those set aside (which keep their qid
   * when recovered): qid generators start past it.
   */
  maxQid(): string | undefined {
    let max: string | undefined;
    for (const name of [...this.list(), ...this.listUnknown().map((n) => n.slice(0, 13))]) {
      if (isQid(name) && (max === undefined || name > max)) max = name;
    }
    return max;
  }

  /** Opens a writer for a new message; the envelope is the file's first record. */
  async create(envelope: SpoolEnvelope): Promise<SpoolWriter> {
    const tmpPath = join(this.tmpDir, envelope.qid);
    const fd = await this.fs.open(tmpPath, 'wx', 0o640);
    return new SpoolWriter(this.fs, fd, tmpPath, this.pathFor(envelope.qid), this.dir, encodeHeader(envelope));
  }

  /** The spool directory's descriptor, opened on the first `syncDir` and kept. */
  private dirFd: Promise<number> | undefined;
  /** The `syncDir` in progress: `close` never closes the descriptor under it. */
  private dirSyncing: Promise<void> | undefined;
  /** After `close`, a late `syncDir` (a commit finishing during a stop) keeps no descriptor. */
  private closed = false;

  /**
   * fsync of the spool directory: makes renames into it durable. The accept path calls
   * it once per group commit, on a descriptor kept open: one call on libuv's thread pool
   * (shared with every session's spool file calls) instead of open, fsync and close.
   */
  syncDir(): Promise<void> {
    const run = this.syncDirOnce();
    this.dirSyncing = run;
    const clear = () => {
      if (this.dirSyncing === run) this.dirSyncing = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  private async syncDirOnce(): Promise<void> {
    if (this.closed) return syncDirectory(this.dir, this.fs);
    let opening = this.dirFd;
    if (!opening) {
      opening = this.dirFd = this.fs.open(this.dir, 'r');
      opening.catch(() => {
        if (this.dirFd === opening) this.dirFd = undefined;
      });
    }
    const fd = await opening;
    try {
      await this.fs.fsync(fd);
    } catch (err) {
      // the next call opens the directory again rather than trusting this descriptor
      if (this.dirFd === opening) this.releaseDirFd();
      throw err;
    }
  }

  /**
   * Releases the spool directory's descriptor once no `syncDir` uses it. A `syncDir` after
   * this still fsyncs the directory, through a descriptor of its own that it closes.
   */
  close(): void {
    this.closed = true;
    this.releaseDirFd();
  }

  private releaseDirFd(): void {
    const opening = this.dirFd;
    if (!opening) return;
    this.dirFd = undefined;
    const syncing = this.dirSyncing;
    void (async () => {
      await syncing?.catch(() => undefined);
      const fd = await opening.catch(() => undefined);
      if (fd !== undefined) await this.fs.close(fd).catch(() => undefined);
    })();
  }

  /** The message octets of a stored message, streamed (no checks: `openVerified` checks). */
  read(m: SpooledMessageRef): Readable {
    if (m.size === 0) return Readable.from([]);
    return wholeOrError(createReadStream(m.spool_path, { start: m.spool_offset, end: m.spool_offset + m.size - 1, highWaterMark: 256 * 1024 }), m);
  }

  /**
   * The message for a delivery attempt, after checking that the file is what the store
   * recorded at accept: its length, header, end record and the sha256 of the message.
   * Throws `SpoolIntegrityError` for a missing, truncated or changed file (the queue
   * holds the message), any other error for trouble reading it (the queue retries).
   *
   * A small message (most mail) is read with one synchronous call, normally from the
   * page cache: the thread-pool round trips of a stream cost more than the read. Larger
   * messages are hashed in one streaming pass (which also collects the header section),
   * then streamed again for the next hop.
   */
  async openVerified(m: SpooledMessageRef): Promise<VerifiedMessage> {
    const expected = expectedLength(m);
    if (expected <= SMALL_MESSAGE_BYTES) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(m.spool_path);
      } catch (err) {
        throw missingOr(err, m);
      }
      checkLength(m, bytes.length, expected);
      if (m.sha256 !== null) {
        checkHeader(m, bytes.subarray(0, Math.min(m.spool_offset, 64)));
        const body = bytes.subarray(m.spool_offset, m.spool_offset + m.size);
        checkDigest(m, createHash('sha256').update(body).digest('hex'));
        checkTrailer(m, bytes.subarray(m.spool_offset + m.size));
      }
      const body = bytes.subarray(m.spool_offset, m.spool_offset + m.size);
      return { size: m.size, open: () => Readable.from([body], { objectMode: false }), headerSection: headerSectionOf(body) };
    }
    let fh: FileHandle;
    try {
      fh = await openFile(m.spool_path, 'r');
    } catch (err) {
      throw missingOr(err, m);
    }
    const header = new HeaderSectionCollector();
    try {
      checkLength(m, (await fh.stat()).size, expected);
      if (m.sha256 !== null) {
        checkHeader(m, await readAt(fh, 0, Math.min(m.spool_offset, 64)));
        checkTrailer(m, await readAt(fh, m.spool_offset + m.size, expected - m.spool_offset - m.size));
        const hash = createHash('sha256');
        for await (const chunk of fh.createReadStream({ start: m.spool_offset, end: m.spool_offset + m.size - 1, autoClose: false }) as AsyncIterable<Buffer>) {
          hash.update(chunk);
          header.add(chunk);
        }
        checkDigest(m, hash.digest('hex'));
      } else {
        // a file from before checksums: nothing to hash, read only the header section
        header.add(await readAt(fh, m.spool_offset, Math.min(m.size, MAX_HEADER_SECTION_BYTES)));
      }
    } finally {
      await fh.close();
    }
    return { size: m.size, open: () => this.read(m), headerSection: header.done() };
  }

  /**
   * Reads a spool file on its own, without the store: its envelope, and whether the
   * message is complete and unchanged (end record and checksum). Throws
   * `SpoolFormatError` when it is not a complete spool file.
   */
  async inspect(path: string): Promise<InspectedSpoolFile> {
    const fh = await openFile(path, 'r');
    try {
      const fileLength = (await fh.stat()).size;
      const line = headerLine(await readAt(fh, 0, Math.min(fileLength, 64)));
      if (!line) throw new SpoolFormatError('no mailbag spool header (not a spool file, or one written before spool files carried their envelope)');
      const jsonEnd = line.jsonStart + line.jsonLength;
      if (jsonEnd + 1 > fileLength) throw new SpoolFormatError('the envelope is cut short');
      const json = await readAt(fh, line.jsonStart, line.jsonLength + 1);
      if (json[line.jsonLength] !== 0x0a) throw new SpoolFormatError('the envelope does not end where its length says');
      const envelope = decodeEnvelope(json.subarray(0, line.jsonLength));
      const offset = jsonEnd + 1;
      const tailLength = Math.min(MAX_TRAILER_BYTES, fileLength - offset);
      const trailer = decodeTrailer(await readAt(fh, fileLength - tailLength, tailLength));
      if (!trailer) throw new SpoolFormatError('no end record: the file was cut short or changed');
      if (offset + trailer.size + trailer.length !== fileLength) {
        throw new SpoolFormatError(`the end record says ${trailer.size} message octets, the file holds ${fileLength - offset - trailer.length}`);
      }
      const hash = createHash('sha256');
      if (trailer.size > 0) {
        for await (const chunk of fh.createReadStream({ start: offset, end: offset + trailer.size - 1, autoClose: false }) as AsyncIterable<Buffer>) {
          hash.update(chunk);
        }
      }
      if (hash.digest('hex') !== trailer.sha256) throw new SpoolFormatError('the message does not match the checksum in its end record');
      return { envelope, offset, size: trailer.size, sha256: trailer.sha256 };
    } finally {
      await fh.close();
    }
  }

  /**
   * Moves a spool file the store does not know into unknown/ (never over another file
   * there), durably. Returns its new path.
   */
  async moveAside(name: string): Promise<string> {
    mkdirSync(this.unknownDir, { recursive: true });
    let target = join(this.unknownDir, name);
    for (let n = 1; existsSync(target); n++) target = join(this.unknownDir, `${name}.${n}`);
    await this.fs.rename(join(this.dir, name), target);
    await syncDirectory(this.unknownDir, this.fs);
    await syncDirectory(this.dir, this.fs);
    return target;
  }

  /** Puts a file from unknown/ back as the spool file of `qid`, durably; never over an existing one. */
  async restore(unknownName: string, qid: string): Promise<string> {
    const target = this.pathFor(qid);
    if (existsSync(target)) throw Object.assign(new Error(`${target} exists`), { code: 'EEXIST' });
    await this.fs.rename(join(this.unknownDir, unknownName), target);
    await syncDirectory(this.dir, this.fs);
    await syncDirectory(this.unknownDir, this.fs);
    return target;
  }

  async remove(path: string): Promise<void> {
    await removeFile(path);
  }
}

/**
 * A read stream ends quietly where the file ends: a file cut short after its check
 * (openVerified) would go to the next hop as a short message with a final dot. Fails
 * with ERR_MAILBAG_SPOOL_TRUNCATED instead, before 'end', so the attempt is deferred
 * and the next round's check holds the message.
 */
function wholeOrError(stream: Readable, m: SpooledMessageRef): Readable {
  let got = 0;
  const out = new Transform({
    highWaterMark: 256 * 1024,
    transform(chunk: Buffer, _enc, done) {
      got += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      if (got === m.size) return done();
      done(new SpoolIntegrityError('ERR_MAILBAG_SPOOL_TRUNCATED', `spool file ${m.spool_path} of ${m.qid} ended after ${got} of ${m.size} octets while it was read`));
    },
    destroy(err, done) {
      stream.destroy();
      done(err);
    },
  });
  // pipe() passes no error on: a read error (EIO, ENOENT) fails the stream the reader holds
  stream.on('error', (err) => out.destroy(err));
  return stream.pipe(out);
}

function expectedLength(m: SpooledMessageRef): number {
  if (m.sha256 === null) return m.spool_offset + m.size;
  return m.spool_offset + m.size + encodeTrailer(m.size, m.sha256).length;
}

function missingOr(err: unknown, m: SpooledMessageRef): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  return new SpoolIntegrityError('ERR_MAILBAG_SPOOL_MISSING', `spool file ${m.spool_path} of ${m.qid} is missing`);
}

function checkLength(m: SpooledMessageRef, actual: number, expected: number): void {
  if (actual < expected) {
    throw new SpoolIntegrityError('ERR_MAILBAG_SPOOL_TRUNCATED', `spool file ${m.spool_path} of ${m.qid} is truncated: ${actual} octets, ${expected} recorded at accept`);
  }
  if (actual > expected) {
    throw new SpoolIntegrityError('ERR_MAILBAG_SPOOL_CHANGED', `spool file ${m.spool_path} of ${m.qid} has changed: ${actual} octets, ${expected} recorded at accept`);
  }
}

function checkHeader(m: SpooledMessageRef, start: Buffer): void {
  let ok = false;
  try {
    const line = headerLine(start);
    ok = !!line && line.jsonStart + line.jsonLength + 1 === m.spool_offset;
  } catch {
    ok = false;
  }
  if (!ok) throw new SpoolIntegrityError('ERR_MAILBAG_SPOOL_CHANGED', `spool file ${m.spool_path} of ${m.qid} has changed: its envelope header is not the one written at accept`);
}

function checkTrailer(m: SpooledMessageRef, tail: Buffer): void {
  if (!tail.equals(encodeTrailer(m.size, m.sha256!))) {
    throw new SpoolIntegrityError('ERR_MAILBAG_SPOOL_CHANGED', `spool file ${m.spool_path} of ${m.qid} has changed: its end record is not the one written at accept`);
  }
}

function checkDigest(m: SpooledMessageRef, actual: string): void {
  if (actual !== m.sha256) {
    throw new SpoolIntegrityError('ERR_MAILBAG_SPOOL_CHANGED', `spool file ${m.spool_path} of ${m.qid} has changed: sha256 ${actual}, ${m.sha256} recorded at accept`);
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Streams bytes into the spool's tmp file (bounded buffering, never the whole of a
 * large message) after the envelope header, hashing them on the way; `commit` adds the
 * end record and makes the file durable and visible.
 */
export class SpoolWriter extends Writable {
  /** Message octets written so far (envelope header and end record not counted). */
  bytes = 0;
  /** Where the message starts in the file. */
  readonly offset: number;
  /** sha256 (hex) of the message octets, once the writer has finished. */
  sha256: string | undefined;
  private readonly hash = createHash('sha256');
  private buffered: Buffer[];
  private bufferedBytes: number;
  private fdClosed = false;
  private discarded = false;
  /** The write in progress: the fd is not closed under it (the number could be reused). */
  private io: Promise<void> | undefined;

  constructor(
    private readonly fs: SpoolFs,
    private readonly fd: number,
    readonly tmpPath: string,
    readonly finalPath: string,
    private readonly dir: string,
    header: Buffer,
  ) {
    super({ highWaterMark: FLUSH_BYTES });
    this.offset = header.length;
    this.buffered = [header];
    this.bufferedBytes = header.length;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes < FLUSH_BYTES) return done();
    this.flushBuffer().then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.sha256 = this.hash.digest('hex');
    this.buffered.push(encodeTrailer(this.bytes, this.sha256));
    this.flushBuffer().then(() => done(), done);
  }

  private flushBuffer(): Promise<void> {
    const run = this.writeAll(this.buffered);
    this.buffered = [];
    this.bufferedBytes = 0;
    this.io = run;
    const clear = () => {
      if (this.io === run) this.io = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    while (bufs.length && !this.discarded) {
      const { bytesWritten } = await this.fs.writev(this.fd, bufs);
      bufs = skipBytes(bufs, bytesWritten);
    }
  }

  /**
   * fsync the file, rename it into place and (unless the caller batches it with
   * others', `syncDir: false`) fsync the directory. Call after 'finish'.
   */
  async commit(opts: { syncDir?: boolean } = {}): Promise<string> {
    await this.fs.fsync(this.fd);
    // the descriptor is no longer needed once the data is synced: closing it need not
    // hold up the rename (each is a round trip through libuv's thread pool)
    const [closed, renamed] = await Promise.allSettled([this.closeFile(), this.fs.rename(this.tmpPath, this.finalPath)]);
    if (renamed.status === 'rejected') throw renamed.reason;
    try {
      if (closed.status === 'rejected') throw closed.reason;
      if (opts.syncDir !== false) await syncDirectory(this.dir, this.fs);
    } catch (err) {
      // the file is in place but the commit failed, so no row will name it: left there, a
      // restart's recovery would deliver what the client was told is not accepted
      await removeFile(this.finalPath);
      throw err;
    }
    return this.finalPath;
  }

  /**
   * Drops the message: nothing half-written remains. A write still in flight is waited
   * for before the descriptor is closed (as fs.WriteStream does): closing under it would
   * free the number for another session's spool file, which the write would then hit.
   */
  async discard(): Promise<void> {
    this.discarded = true;
    this.destroy();
    await this.io?.catch(() => undefined);
    await this.closeFile().catch(() => undefined);
    await removeFile(this.tmpPath);
  }

  private async closeFile(): Promise<void> {
    if (this.fdClosed) return;
    this.fdClosed = true;
    await this.fs.close(this.fd);
  }
}

/** What is left of `bufs` after the first `n` bytes (a short writev). */
function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  if (i >= bufs.length) return [];
  const rest = bufs.slice(i);
  rest[0] = rest[0]!.subarray(n);
  return rest;
}
