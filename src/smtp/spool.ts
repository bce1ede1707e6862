import { createReadStream, mkdirSync, readdirSync, type ReadStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';

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
    await Promise.all(names.map((n) => rm(join(this.tmpDir, n), { force: true })));
    return names.length;
  }

  /** Names of the committed message files (not tmp/). */
  list(): string[] {
    return readdirSync(this.dir).filter((n) => n !== 'tmp');
  }

  /** Opens a writer for a new message. */
  async create(qid: string): Promise<SpoolWriter> {
    const tmpPath = join(this.tmpDir, qid);
    const fh = await open(tmpPath, 'wx', 0o640);
    return new SpoolWriter(fh, tmpPath, this.pathFor(qid), this.dir);
  }

  read(path: string): ReadStream {
    return createReadStream(path);
  }

  async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}

/** Streams bytes into the spool's tmp file; `commit` makes them durable and visible. */
export class SpoolWriter extends Writable {
  bytes = 0;
  private fileClosed = false;

  constructor(
    private readonly fh: FileHandle,
    readonly tmpPath: string,
    readonly finalPath: string,
    private readonly dir: string,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.fh.write(chunk).then(
      ({ bytesWritten }) => {
        this.bytes += bytesWritten;
        done();
      },
      (err: Error) => done(err),
    );
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    this.fh.writev(bufs).then(
      ({ bytesWritten }) => {
        this.bytes += bytesWritten;
        done();
      },
      (err: Error) => done(err),
    );
  }

  /**
   * fsync the file, rename it into place and (unless the caller batches it with
   * others', `syncDir: false`) fsync the directory. Call after 'finish'.
   */
  async commit(opts: { syncDir?: boolean } = {}): Promise<string> {
    await this.fh.sync();
    await this.closeFile();
    await rename(this.tmpPath, this.finalPath);
    if (opts.syncDir !== false) await syncDirectory(this.dir);
    return this.finalPath;
  }

  /** Drops the message: nothing half-written remains. */
  async discard(): Promise<void> {
    this.destroy();
    await this.closeFile().catch(() => undefined);
    await rm(this.tmpPath, { force: true });
  }

  private async closeFile(): Promise<void> {
    if (this.fileClosed) return;
    this.fileClosed = true;
    await this.fh.close();
  }
}

/** Makes renames in `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
