import { close, createReadStream, fsync, mkdirSync, open, readdirSync, readFileSync, rename, unlink, writev, type ReadStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';

// The callback API on plain fds: cheaper per call than FileHandle, and the accept path
// makes several of these calls per message.
const openFd = promisify(open);
const writevFd = promisify(writev);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);
const renameP = promisify(rename);
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
export async function syncDirectory(dir: string): Promise<void> {
  const fd = await openFd(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

/**
 * The message spool: one file per accepted message, named by qid. A message is written
 * to `tmp/QID`, fsync'd, renamed into the spool directory and the directory fsync'd,
 * so after a crash a file in the spool directory is always complete; files left in
 * tmp/ are unfinished transactions and are swept at start-up.
 */
export class Spool {
  readonly dir: string;
  readonly tmpDir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.tmpDir = join(this.dir, 'tmp');
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

  /** Names of the committed message files (not tmp/). */
  list(): string[] {
    return readdirSync(this.dir).filter((n) => n !== 'tmp');
  }

  /** Opens a writer for a new message. */
  async create(qid: string): Promise<SpoolWriter> {
    const tmpPath = join(this.tmpDir, qid);
    const fd = await openFd(tmpPath, 'wx', 0o640);
    return new SpoolWriter(fd, tmpPath, this.pathFor(qid), this.dir);
  }

  read(path: string): ReadStream {
    return createReadStream(path, { highWaterMark: 256 * 1024 });
  }

  /**
   * The message for a delivery attempt. A small message (most mail) is read with one
   * synchronous call, normally from the page cache: the four thread-pool round trips of
   * a stream (open, read, read to EOF, close) cost more than the read. Larger messages
   * are streamed.
   */
  open(path: string, size: number): Readable {
    if (size > SMALL_MESSAGE_BYTES) return this.read(path);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      return new Readable({
        read() {
          this.destroy(err as Error);
        },
      });
    }
    return Readable.from([bytes], { objectMode: false });
  }

  async remove(path: string): Promise<void> {
    await removeFile(path);
  }
}

/** Messages up to this size are read for delivery in one call. */
const SMALL_MESSAGE_BYTES = 256 * 1024;

/** Buffered up to this many bytes before a write: small messages cost one writev. */
const FLUSH_BYTES = 128 * 1024;

/**
 * Streams bytes into the spool's tmp file (bounded buffering, never the whole of a
 * large message); `commit` makes them durable and visible.
 */
export class SpoolWriter extends Writable {
  bytes = 0;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private fdClosed = false;

  constructor(
    private readonly fd: number,
    readonly tmpPath: string,
    readonly finalPath: string,
    private readonly dir: string,
  ) {
    super({ highWaterMark: FLUSH_BYTES });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes < FLUSH_BYTES) return done();
    this.flushBuffer().then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.flushBuffer().then(() => done(), done);
  }

  private async flushBuffer(): Promise<void> {
    let bufs = this.buffered;
    this.buffered = [];
    this.bufferedBytes = 0;
    while (bufs.length) {
      const { bytesWritten: written } = await writevFd(this.fd, bufs);
      this.bytes += written;
      bufs = skipBytes(bufs, written);
    }
  }

  /**
   * fsync the file, rename it into place and (unless the caller batches it with
   * others', `syncDir: false`) fsync the directory. Call after 'finish'.
   */
  async commit(opts: { syncDir?: boolean } = {}): Promise<string> {
    await fsyncFd(this.fd);
    await this.closeFile();
    await renameP(this.tmpPath, this.finalPath);
    if (opts.syncDir !== false) await syncDirectory(this.dir);
    return this.finalPath;
  }

  /** Drops the message: nothing half-written remains. */
  async discard(): Promise<void> {
    this.destroy();
    await this.closeFile().catch(() => undefined);
    await removeFile(this.tmpPath);
  }

  private async closeFile(): Promise<void> {
    if (this.fdClosed) return;
    this.fdClosed = true;
    await closeFd(this.fd);
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
