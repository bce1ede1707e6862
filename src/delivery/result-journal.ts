import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { dirname } from 'node:path';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { AttemptRecord } from '../store/queue-store.js';

/** A recipient as its attempt round claimed it: the replay skips a round attempted since. */
export interface ClaimedRecipient {
  rcpt: string;
  /** The recipient's attempt count at the claim. */
  attempts: number;
}

/** One attempt round's result the store never took, kept across a stop. */
export interface JournalledRound {
  qid: string;
  attempts: AttemptRecord[];
  claimed: ClaimedRecipient[];
  /** The message's correlation keys when this was its first round (recorded with it). */
  keys?: MessageKeysInput | undefined;
}

/** The synchronous file calls the journal makes: tests pass one that fails like a full disk. */
export interface JournalFs {
  openSync(path: string, flags: number, mode?: number): number;
  fstatSync(fd: number): { size: number; blocks: number };
  readSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  writeSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  fdatasyncSync(fd: number): void;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
}

export const nodeJournalFs: JournalFs = nodeFs;

/** Default size of the journal file: the results of a few hundred ordinary rounds. */
export const RESULT_JOURNAL_BYTES = 1024 * 1024;

const MAGIC = 0x4d424a31; // "MBJ1"
const HEADER = 16; // magic u32, payload length u32, first 8 bytes of the payload's sha256
const TERMINATOR = 4;
const ZEROS = Buffer.alloc(64 * 1024);

export interface JournalRead {
  rounds: JournalledRound[];
  /** A record that failed its checksum (a write torn by a crash): it and anything after it are unreadable. */
  damagedAt?: number;
}

/**
 * The results journal: a fixed-size file under the spool directory, filled with zeros and
 * fsync'd at start, so that writing into it later needs no new blocks. At a stop, results
 * the store still refuses (disk full) are written into it in place, each record with its
 * checksum, then fsync'd; at the next start they are replayed into the store before the
 * queue claims anything, and the file is zeroed again. All calls are synchronous: the
 * file is small and only touched at start and stop.
 *
 * On a copy-on-write file system (btrfs, ZFS) an in-place write still needs new blocks,
 * so there a full disk can refuse the journal too; the stop then logs what is lost.
 */
export class ResultJournal {
  /** The file holds records (or a damaged one) that are not known to be in the store. */
  private live = false;

  private constructor(
    readonly path: string,
    readonly bytes: number,
    private readonly fd: number,
    private readonly fs: JournalFs,
  ) {}

  /** Opens (creating) the journal; call `read`, then `prepare`, before using it. */
  static open(path: string, bytes = RESULT_JOURNAL_BYTES, fs: JournalFs = nodeJournalFs): ResultJournal {
    const fd = fs.openSync(path, nodeFs.constants.O_RDWR | nodeFs.constants.O_CREAT, 0o640);
    return new ResultJournal(path, bytes, fd, fs);
  }

  /** The records left by the last stop, up to the end mark or the first damaged record. */
  read(): JournalRead {
    const size = this.fs.fstatSync(this.fd).size;
    const rounds: JournalledRound[] = [];
    const head = Buffer.alloc(HEADER);
    let at = 0;
    while (at + TERMINATOR <= size) {
      const got = this.fs.readSync(this.fd, head, 0, Math.min(HEADER, size - at), at);
      const magic = head.readUInt32BE(0);
      if (magic === 0) break; // the end mark: nothing more was written
      const length = got >= HEADER ? head.readUInt32BE(4) : -1;
      if (magic !== MAGIC || length < 0 || at + HEADER + length > size) return this.damaged(rounds, at);
      const payload = Buffer.alloc(length);
      this.fs.readSync(this.fd, payload, 0, length, at + HEADER);
      if (!checksum(payload).equals(head.subarray(8, 16))) return this.damaged(rounds, at);
      let round: unknown;
      try {
        round = JSON.parse(payload.toString('utf8'));
      } catch {
        return this.damaged(rounds, at);
      }
      if (!isJournalledRound(round)) return this.damaged(rounds, at);
      rounds.push(round);
      at += HEADER + length;
    }
    if (rounds.length) this.live = true;
    return { rounds };
  }

  private damaged(rounds: JournalledRound[], at: number): JournalRead {
    this.live = true;
    return { rounds, damagedAt: at };
  }

  /**
   * Fills the file with zeros up to its size and makes that durable, so later writes need
   * no new blocks. `keep`: the records read are not yet in the store; only the space
   * after them is filled (the file keeps them for the next start).
   */
  prepare(keep: boolean): void {
    const st = this.fs.fstatSync(this.fd);
    const allocated = st.size >= this.bytes && st.blocks * 512 >= this.bytes;
    if (allocated && (keep || !this.live)) return;
    const from = keep ? Math.min(st.size, this.bytes) : 0;
    this.fill(from, this.bytes);
    this.fs.fdatasyncSync(this.fd);
    if (st.size < this.bytes) syncDirectoryOf(this.path, this.fs); // the file's size and new blocks
    if (!keep) this.live = false;
  }

  /**
   * Writes the rounds from the start of the file, in place, then an end mark, and fsyncs;
   * the rounds that do not fit are returned. Throws if the file system refuses the write.
   */
  write(rounds: readonly JournalledRound[]): { written: number; left: JournalledRound[] } {
    const records: Buffer[] = [];
    const left: JournalledRound[] = [];
    let used = 0;
    for (const r of rounds) {
      const payload = Buffer.from(JSON.stringify(r), 'utf8');
      if (left.length || used + HEADER + payload.length + TERMINATOR > this.bytes) {
        left.push(r);
        continue;
      }
      const head = Buffer.alloc(HEADER);
      head.writeUInt32BE(MAGIC, 0);
      head.writeUInt32BE(payload.length, 4);
      checksum(payload).copy(head, 8);
      records.push(head, payload);
      used += HEADER + payload.length;
    }
    if (!records.length && !this.live) return { written: 0, left };
    const buf = Buffer.concat([...records, Buffer.alloc(TERMINATOR)]);
    writeFully(this.fs, this.fd, buf, 0);
    this.fs.fdatasyncSync(this.fd);
    this.live = records.length > 0;
    return { written: rounds.length - left.length, left };
  }

  /** Zeroes the records once they are in the store. */
  clear(): void {
    if (!this.live) return;
    this.fill(0, Math.min(this.bytes, this.fs.fstatSync(this.fd).size));
    this.fs.fdatasyncSync(this.fd);
    this.live = false;
  }

  close(): void {
    this.fs.closeSync(this.fd);
  }

  private fill(from: number, to: number): void {
    for (let at = from; at < to; at += ZEROS.length) writeFully(this.fs, this.fd, ZEROS.subarray(0, Math.min(ZEROS.length, to - at)), at);
  }
}

/** The shape the replay relies on (a record of another version is not replayed blindly). */
function isJournalledRound(v: unknown): v is JournalledRound {
  const r = v as Partial<JournalledRound> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.qid === 'string' &&
    Array.isArray(r.attempts) &&
    r.attempts.every((a) => typeof a === 'object' && a !== null && Array.isArray(a.recipients)) &&
    Array.isArray(r.claimed) &&
    r.claimed.every((c) => typeof c === 'object' && c !== null && typeof c.rcpt === 'string' && typeof c.attempts === 'number')
  );
}

function checksum(payload: Buffer): Buffer {
  return createHash('sha256').update(payload).digest().subarray(0, 8);
}

function writeFully(fs: JournalFs, fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

function syncDirectoryOf(path: string, fs: JournalFs): void {
  const fd = fs.openSync(dirname(path), nodeFs.constants.O_RDONLY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
