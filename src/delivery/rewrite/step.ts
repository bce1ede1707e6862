import type { Readable } from 'node:stream';
import type { MessageRow, RecipientCopy, RecipientRow } from '../../store/queue-store.js';
import type { Store } from '../../store/store.js';
import { CopySpool } from './copy-spool.js';
import { QueueInternalError, untilAborted } from '../internal-error.js';
import type { Spool, VerifiedMessage } from '../spool.js';
import type { AttemptSignal } from '../deadline.js';

/** One version of a message and the recipients who get exactly these bytes. */
export interface MessageCopy {
  recipients: string[];
  size: number;
  open(): Readable;
}

/**
 * The per-message rewrite step between the queue and routing (multilingual rewriting
 * plugs in here). It gets the recipients not yet decided and the original, and returns
 * copies that split those recipients exactly (each in one copy). A copy that is
 * `original` itself, or shares its `open`, keeps the original bytes; any other copy is
 * spooled before delivery, so a retry delivers the same bytes. The step runs once per
 * recipient, not once per attempt.
 */
export type RewriteStep = (message: MessageRow, recipients: string[], original: MessageCopy) => Promise<MessageCopy[]>;

/** What a rewrite module (`queue.rewrite.module`) exports. */
export type RewriteStepFactory = (options: Record<string, unknown>) => RewriteStep | Promise<RewriteStep>;


/**
 * Which bytes each claimed recipient gets. Recipients whose bytes the rewrite step
 * already decided get the recorded copy (or the original); the others go through the
 * step once, and its copies with new bytes are spooled and recorded before any of them
 * is delivered, so a retry or a crash cannot change what a recipient gets.
 */
export class RewriteCopies {
  private readonly copies: CopySpool;

  constructor(
    private readonly o: { store: Store; spool: Spool; rewrite: RewriteStep; deadlineMs: number },
  ) {
    this.copies = new CopySpool(o.spool);
  }

  /**
   * The copies to deliver in this round (`original`: the verified original); throws a
   * QueueInternalError for a wrong split, a SpoolIntegrityError for a damaged copy.
   */
  async copiesFor(msg: MessageRow, rows: RecipientRow[], original: VerifiedMessage, signal: AttemptSignal): Promise<MessageCopy[]> {
    const byPath = new Map<string, MessageCopy>();
    const originalRcpts: string[] = [];
    const undecided: string[] = [];
    for (const r of rows) {
      if (!r.rewritten) undecided.push(r.rcpt);
      else if (r.copy_path === null) originalRcpts.push(r.rcpt);
      else {
        let c = byPath.get(r.copy_path);
        if (!c) {
          const ref = { qid: msg.qid, spool_path: r.copy_path, size: r.copy_size ?? 0, spool_offset: r.copy_offset ?? 0, sha256: r.copy_sha256 };
          const verified = await this.o.spool.openVerified(ref);
          c = { recipients: [], size: verified.size, open: verified.open };
          byPath.set(r.copy_path, c);
        }
        c.recipients.push(r.rcpt);
      }
    }
    if (undecided.length) {
      const input: MessageCopy = { recipients: undecided, size: original.size, open: original.open };
      const made = await untilAborted(this.o.rewrite(msg, [...undecided], input), signal, () => {
        return new QueueInternalError(`the rewrite step did not finish within the attempt deadline (${this.o.deadlineMs} ms)`, 'ERR_MAILBAG_ATTEMPT_DEADLINE');
      });
      checkSplit(undecided, made);
      const decisions: RecipientCopy[] = [];
      // numbered after the copies already recorded: a crash before recording rewrites the same names
      let n = this.o.store.queue.spoolFiles(msg).length;
      for (const copy of made) {
        if (copy.recipients.length === 0) continue;
        if (copy === input || copy.open === input.open) {
          originalRcpts.push(...copy.recipients);
          for (const rcpt of copy.recipients) decisions.push({ rcpt });
          continue;
        }
        const spooled = await this.copies.write(msg, n++, copy.recipients, copy.open());
        const verified = await this.o.spool.openVerified({ qid: msg.qid, spool_path: spooled.path, size: spooled.size, spool_offset: spooled.offset, sha256: spooled.sha256 });
        byPath.set(spooled.path, { recipients: [...copy.recipients], size: verified.size, open: verified.open });
        for (const rcpt of copy.recipients) decisions.push({ rcpt, copy: spooled });
      }
      this.o.store.queue.recordCopies(msg.qid, decisions);
    }
    const out = [...byPath.values()];
    if (originalRcpts.length) out.unshift({ recipients: originalRcpts, size: original.size, open: original.open });
    return out;
  }
}

/** The rewrite step's copies must place every claimed recipient in exactly one copy. */
function checkSplit(claimed: readonly string[], copies: readonly MessageCopy[]): void {
  const wanted = new Set(claimed);
  const seen = new Map<string, number>();
  for (const c of copies) for (const rcpt of c.recipients) seen.set(rcpt, (seen.get(rcpt) ?? 0) + 1);
  const missing = claimed.filter((r) => !seen.has(r));
  const twice = [...seen].filter(([, n]) => n > 1).map(([r]) => r);
  const unknown = [...seen.keys()].filter((r) => !wanted.has(r));
  if (!missing.length && !twice.length && !unknown.length) return;
  const parts = [
    missing.length ? `left out: ${missing.join(', ')}` : '',
    twice.length ? `in several copies: ${twice.join(', ')}` : '',
    unknown.length ? `not claimed: ${unknown.join(', ')}` : '',
  ].filter(Boolean);
  throw new QueueInternalError(`the rewrite step's copies do not split the recipients exactly (${parts.join('; ')})`, 'ERR_MAILBAG_REWRITE_SPLIT');
}


