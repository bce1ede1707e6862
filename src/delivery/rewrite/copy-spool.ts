import { mkdirSync, open } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { SpoolWriter, type Spool } from '../spool.js';

const openFd = promisify(open);

/**
 * Rewrite copies live in `copies/` under the spool directory, named `QID.N`: never a qid,
 * so the spool's own file handling leaves them alone. The copy is written like an
 * accepted message (tmp file, fsync, rename, directory fsync), so once its path is
 * recorded every later attempt delivers exactly these bytes.
 */
export class CopySpool {
  readonly dir: string;

  constructor(private readonly spool: Spool) {
    this.dir = join(spool.dir, 'copies');
    mkdirSync(this.dir, { recursive: true });
  }

  /**
   * Writes copy number `n` of message `qid` durably; returns its path and size. The
   * same (qid, n) written again (a crash before its path was recorded) replaces the file.
   */
  async write(qid: string, n: number, bytes: Readable): Promise<{ path: string; size: number }> {
    const name = `${qid}.${n}`;
    const tmpPath = join(this.spool.tmpDir, name);
    const fd = await openFd(tmpPath, 'w', 0o640);
    const writer = new SpoolWriter(fd, tmpPath, join(this.dir, name), this.dir);
    try {
      await pipeline(bytes, writer);
      const path = await writer.commit();
      return { path, size: writer.bytes };
    } catch (err) {
      await writer.discard();
      throw err;
    }
  }
}
