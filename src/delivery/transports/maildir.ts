import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { NextHop } from '../../config/schema.js';
import { normaliseDomain } from '../domain.js';
import { summaryReply, type DeliveryRequest, type DeliveryResult, type NextHopTransport, type RecipientResult } from './transport.js';
import type { AttemptSignal } from '../deadline.js';

/**
 * The file-system calls a Maildir delivery makes, as one seam: tests inject errors (EACCES,
 * EIO) and record the order of the calls that make a delivery durable.
 */
export interface MaildirFs {
  /** Resolves when the path exists; rejects with the errno error otherwise (only ENOENT means absent). */
  access(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** `mkdir -p`: the first directory it created, or undefined when every one existed. */
  mkdir(path: string): Promise<string | undefined>;
  /** Writes the message into the file (created or truncated), fsyncs it and closes it; stops when `signal` aborts. */
  writeFile(path: string, message: Readable, signal?: AttemptSignal): Promise<void>;
  /** fsync of a directory: makes the entries created or renamed in it durable. */
  fsyncDir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

export const nodeMaildirFs: MaildirFs = {
  access: (path) => access(path, constants.F_OK),
  readdir: (path) => readdir(path),
  mkdir: (path) => mkdir(path, { recursive: true }),
  async writeFile(path, message, signal) {
    const fh = await open(path, 'w', 0o600);
    try {
      for await (const chunk of message as AsyncIterable<Buffer>) {
        if (signal?.aborted) throw new MaildirDeadlineError();
        await fh.write(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  async fsyncDir(path) {
    const dh = await open(path, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  },
  rename: (from, to) => rename(from, to),
};

/** Local parts that could escape the mailbox directory or hide in it are refused. */
function mailboxParts(rcpt: string): { domain: string; local: string } | undefined {
  const at = rcpt.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = rcpt.slice(0, at).toLowerCase();
  // filed under the domain's normal form: `bücher.example` and `xn--bcher-kva.example` share a folder
  const domain = normaliseDomain(rcpt.slice(at + 1));
  const safe = (s: string) => s.length > 0 && s.length <= 255 && !/[/\\\0]/.test(s) && !s.startsWith('.');
  return safe(local) && safe(domain) ? { domain, local } : undefined;
}

/** A file-system step failed: the recipient is deferred with what was being done. */
class MaildirStepError extends Error {
  readonly code: string;
  constructor(
    readonly step: string,
    cause: NodeJS.ErrnoException,
  ) {
    super(`${step}: ${cause.code ?? 'ERROR'} ${cause.message}`, { cause });
    this.code = cause.code ?? 'ERR_MAILBAG_MAILDIR';
  }
}

/** The attempt round's deadline passed: what is not yet done is deferred, nothing more is touched. */
class MaildirDeadlineError extends Error {
  readonly code = 'ERR_MAILBAG_ATTEMPT_DEADLINE';
  constructor() {
    super('the attempt deadline passed');
  }
}

function isAbsent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Maildir next hop: PATH/<domain>/<local>/{tmp,new,cur} with the tmp -> new rename.
 *
 * Exactly once across crashes: the file name is deterministic per (qid, recipient), and
 * its intent is recorded in the store after the tmp file and the tmp/ directory entry are
 * durable, before the rename. On a retry, the name found in new/ or cur/ is already
 * delivered; a recorded name found only in tmp/ gets the rename redone; a recorded name
 * found nowhere was delivered and since removed by the reader, so it is not delivered
 * again. "Found nowhere" must be proven: only ENOENT means absent, any other error
 * (EACCES, EIO) defers the recipient.
 */
export class MaildirTransport implements NextHopTransport {
  readonly kind = 'maildir' as const;
  private readonly fs: MaildirFs;

  constructor(
    private readonly hostname: string,
    fs: Partial<MaildirFs> = {},
  ) {
    this.fs = { ...nodeMaildirFs, ...fs };
  }

  static fileName(req: Pick<DeliveryRequest, 'qid' | 'receivedAt'>, rcpt: string, hostname: string): string {
    const tag = createHash('sha256').update(rcpt.toLowerCase()).digest('hex').slice(0, 12);
    const host = hostname.replace(/[/:]/g, '_');
    return `${Math.floor(req.receivedAt / 1000)}.M${req.qid}R${tag}.${host}`;
  }

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult> {
    if (hop.kind !== 'maildir') throw new TypeError(`MaildirTransport cannot deliver to ${hop.url}`);
    const root = resolve(hop.path);
    const recipients: RecipientResult[] = [];
    for (const rcpt of req.recipients) recipients.push(await this.deliverOne(root, rcpt, req));
    // Past the deadline every step not yet started is skipped: a file system that answers
    // late must not deliver after the queue has counted the recipient deferred (and a
    // `queue delete` may have followed). One that hangs is bounded by the queue's abort grace.
    return { reply: summaryReply(hop.url, recipients), recipients };
  }

  private async deliverOne(root: string, rcpt: string, req: DeliveryRequest): Promise<RecipientResult> {
    const parts = mailboxParts(rcpt);
    if (!parts) return { rcpt, outcome: 'failed', reply: '550 5.1.3 failed: mailbox name not allowed in a Maildir' };
    const box = join(root, parts.domain, parts.local);
    // A recorded name wins over a recomputed one (the hostname may have changed since).
    const intended = req.intendedName(rcpt);
    const name = intended ?? MaildirTransport.fileName(req, rcpt, this.hostname);
    const tmp = join(box, 'tmp', name);
    const target = join(box, 'new', name);
    const delivered = (text: string): RecipientResult => ({ rcpt, outcome: 'delivered', reply: `250 2.0.0 ${text}`, deliveredAs: name });
    const signal = req.signal;
    try {
      if (signal?.aborted) throw new MaildirDeadlineError();
      // The name is deterministic: if it is in new/ or cur/, this recipient has it.
      const found = await this.landed(box, name);
      if (found) return delivered(`already delivered as ${name} (found in ${found}/)`);
      if (intended) {
        if (!(await this.exists(tmp, 'checking tmp/'))) return delivered(`delivered as ${name} earlier; the reader has since removed it`);
        await this.step('renaming tmp/ into new/', () => this.fs.rename(tmp, target), signal);
        await this.step('syncing new/', () => this.fs.fsyncDir(join(box, 'new')));
        return delivered(`delivered as ${name} (redone the rename from tmp/)`);
      }
      for (const sub of ['tmp', 'new', 'cur']) await this.step('creating the mailbox', () => this.ensureDir(join(box, sub)), signal);
      await this.step(
        'writing tmp/',
        async () => {
          const message = req.openMessage();
          try {
            await this.fs.writeFile(tmp, message, signal);
          } finally {
            message.destroy();
          }
        },
        signal,
      );
      // The tmp/ entry is durable before the name is recorded: a power loss can never leave
      // "name recorded, file nowhere", which a retry would take for a reader's removal.
      await this.step('syncing tmp/', () => this.fs.fsyncDir(join(box, 'tmp')), signal);
      await this.step('recording the delivery name', async () => req.recordIntent(rcpt, name), signal);
      // Aborted from here on, the retry finds the recorded name in tmp/ and redoes the rename.
      await this.step('renaming tmp/ into new/', () => this.fs.rename(tmp, target), signal);
      await this.step('syncing new/', () => this.fs.fsyncDir(join(box, 'new')));
      return delivered(`delivered as ${name}`);
    } catch (e) {
      if (e instanceof MaildirDeadlineError || signal?.aborted) {
        // A name recorded before the abort is finished by the retry (rename from tmp/).
        return { rcpt, outcome: 'deferred', reply: '451 4.4.7 deferred: the attempt deadline passed' };
      }
      // Disk full, permissions, I/O errors: an operator can fix these, so retry.
      const err = e instanceof MaildirStepError ? e : new MaildirStepError('delivering', e as NodeJS.ErrnoException);
      return { rcpt, outcome: 'deferred', reply: `451 4.3.0 deferred while ${err.message}`.replace(/\s+/g, ' ') };
    }
  }

  /**
   * A step given the attempt's signal starts only before the deadline. The sync after the
   * rename takes none: the message is in new/ by then, and that must be made durable.
   */
  private async step<T>(what: string, fn: () => Promise<T>, signal?: AttemptSignal): Promise<T> {
    if (signal?.aborted) throw new MaildirDeadlineError();
    try {
      return await fn();
    } catch (e) {
      throw e instanceof MaildirStepError || e instanceof MaildirDeadlineError ? e : new MaildirStepError(what, e as NodeJS.ErrnoException);
    }
  }

  /** True or false only when proven; any error but ENOENT is thrown. */
  private async exists(path: string, what: string): Promise<boolean> {
    try {
      await this.fs.access(path);
      return true;
    } catch (e) {
      if (isAbsent(e)) return false;
      throw new MaildirStepError(what, e as NodeJS.ErrnoException);
    }
  }

  /** Where the name landed: new/NAME, or cur/NAME with the reader's `:2,flags` suffix. */
  private async landed(box: string, name: string): Promise<'new' | 'cur' | undefined> {
    if (await this.exists(join(box, 'new', name), 'checking new/')) return 'new';
    let files: string[];
    try {
      files = await this.fs.readdir(join(box, 'cur'));
    } catch (e) {
      if (isAbsent(e)) return undefined;
      throw new MaildirStepError('reading cur/', e as NodeJS.ErrnoException);
    }
    return files.some((f) => f === name || f.startsWith(`${name}:`)) ? 'cur' : undefined;
  }

  /** mkdir -p, then fsync the parent of every directory it created so the path survives a power loss. */
  private async ensureDir(path: string): Promise<void> {
    const first = await this.fs.mkdir(path);
    if (first === undefined) return;
    const created: string[] = [];
    for (let d = path; ; d = dirname(d)) {
      created.unshift(d);
      if (d === first || dirname(d) === d) break;
    }
    for (const d of [dirname(first), ...created.slice(0, -1)]) await this.fs.fsyncDir(d);
  }

  async close(): Promise<void> {}
}
