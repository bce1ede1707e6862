import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MessageRow } from '../../store/queue-store.js';
import { encodeHeader } from '../envelope.js';
import { SpoolWriter, type Spool } from '../spool.js';

/** A rewrite copy as written: where its message octets are and their checksum. */
export interface SpooledCopy {
  path: string;
  size: number;
  offset: number;
  sha256: string;
}

/**
 * Rewrite copies live in `copies/` under the spool directory, named `QID.N`: never a qid,
 * so the spool's own file handling leaves them alone. A copy is written like an accepted
 * message (envelope header naming the copy's recipients, tmp file, fsync, rename,
 * directory fsync, end record with size and sha256), so once its path is recorded every
 * later attempt delivers exactly these bytes, checked as the original is.
 */
export class CopySpool {
  readonly dir: string;

  constructor(private readonly spool: Spool) {
    this.dir = join(spool.dir, 'copies');
    mkdirSync(this.dir, { recursive: true });
  }

  /**
   * Writes copy number `n` of `msg` for `recipients` durably. The same (qid, n) written
   * again (a crash before its path was recorded) replaces the file.
   */
  async write(msg: MessageRow, n: number, recipients: readonly string[], bytes: Readable): Promise<SpooledCopy> {
    const name = `${msg.qid}.${n}`;
    const tmpPath = join(this.spool.tmpDir, name);
    const fs = this.spool.fs;
    const fd = await fs.open(tmpPath, 'w', 0o640);
    const header = encodeHeader({ qid: msg.qid, receivedAt: msg.received_at, sender: msg.envelope_from, recipients: recipients.map((address) => ({ address })) });
    const writer = new SpoolWriter(fs, fd, tmpPath, join(this.dir, name), this.dir, header);
    try {
      await pipeline(bytes, writer);
      const path = await writer.commit();
      return { path, size: writer.bytes, offset: writer.offset, sha256: writer.sha256! };
    } catch (err) {
      await writer.discard();
      throw err;
    }
  }
}
