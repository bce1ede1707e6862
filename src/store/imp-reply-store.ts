// End-to-end ACKNOWLEDGEs (RFC 753 Example 2 view 4, migration 20). The originating side
// keeps each message a relay accepted for forwarding until the destination's answer
// comes back by its tid (imp_awaiting); a relay keeps each ACKNOWLEDGE it passes back
// towards the originating MPM until that MPM took it (imp_reply_outbox).
import { durably, type SqliteDatabase } from './db.js';

export interface AwaitingFinal {
  tid: { tn: number; ihn: number };
  qid: string;
  rcpt: string;
  /** The next hop that answered FORWARD (imp://host:port). */
  peer: string;
  envelopeFrom: string;
  receivedAt: number;
  dsnNotify: string | null;
  dsnOrcpt: string | null;
  dsnEnvid: string | null;
  /** The message's header section, for the bounce of a later "no". */
  headers: Buffer;
  /** The hop's own ACKNOWLEDGE, as the queue recorded it. */
  hopReply: string;
  /**
   * When the message's bag was shipped: an answer kept before then belongs to an earlier
   * use of the tn (or was forged), never to this message, and is not taken.
   */
  shippedAt?: number;
}

export interface AwaitingRow extends AwaitingFinal {
  /** null: no end-to-end answer yet. */
  answer: boolean | null;
  finalReply: string | null;
  bounceQid: string | null;
}

/** A destination's answer, as the recipient's outcome and reply. */
export interface EarlyAnswer {
  outcome: 'delivered' | 'failed';
  reply: string;
}

export interface OutboxReply {
  id: number;
  targetIhn: number;
  /** The transaction the reply answers (its tid argument). */
  tid: { tn: number; ihn: number };
  qid: string | null;
  /** The reply message as a one-message bag. */
  message: Buffer;
  attempts: number;
}

interface AwaitingDbRow {
  tid_ihn: number;
  tid_tn: number;
  qid: string;
  rcpt: string;
  peer: string;
  envelope_from: string;
  received_at: number;
  dsn_notify: string | null;
  dsn_orcpt: string | null;
  dsn_envid: string | null;
  headers: Buffer;
  hop_reply: string;
  answer: number | null;
  final_reply: string | null;
  bounce_qid: string | null;
}

export class ImpReplyStore {
  private statements: ReturnType<ImpReplyStore['prepare']> | undefined;

  constructor(private readonly db: SqliteDatabase) {}

  /** Prepared on first use: a CLI may open a store from before migration 20. */
  private get s() {
    return (this.statements ??= this.prepare());
  }

  private prepare() {
    const db = this.db;
    return {
      // A tn comes round again only after 65,536 newer transactions: the newer one wins.
      await: db.prepare(`INSERT OR REPLACE INTO imp_awaiting (tid_ihn, tid_tn, qid, rcpt, peer, envelope_from, received_at,
        dsn_notify, dsn_orcpt, dsn_envid, headers, hop_reply, created_at)
        VALUES (@ihn, @tn, @qid, @rcpt, @peer, @envelopeFrom, @receivedAt, @dsnNotify, @dsnOrcpt, @dsnEnvid, @headers, @hopReply, @now)`),
      awaiting: db.prepare('SELECT * FROM imp_awaiting WHERE tid_ihn = ? AND tid_tn = ?'),
      early: db.prepare('SELECT outcome, reply, created_at FROM imp_early_answer WHERE tid_ihn = ? AND tid_tn = ?'),
      keepEarly: db.prepare('INSERT OR REPLACE INTO imp_early_answer (tid_ihn, tid_tn, outcome, reply, created_at) VALUES (?, ?, ?, ?, ?)'),
      dropEarly: db.prepare('DELETE FROM imp_early_answer WHERE tid_ihn = ? AND tid_tn = ?'),
      pruneEarly: db.prepare('DELETE FROM imp_early_answer WHERE created_at < ?'),
      answer: db.prepare(`UPDATE imp_awaiting SET answer = @answer, final_reply = @reply, answered_at = @now, bounce_qid = @bounceQid
        WHERE tid_ihn = @ihn AND tid_tn = @tn AND answer IS NULL`),
      // The recipient keeps its row; its state and reply become the destination's answer.
      recipient: db.prepare(`UPDATE recipients SET state = @state, last_reply = @reply, updated_at = @now
        WHERE qid = @qid AND rcpt = @rcpt AND state IN ('delivered', 'failed')`),
      queue: db.prepare(`INSERT INTO imp_reply_outbox (target_ihn, tid_ihn, tid_tn, qid, message, next_attempt_at, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      due: db.prepare(`SELECT id, target_ihn, tid_ihn, tid_tn, qid, message, attempts FROM imp_reply_outbox
        WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`),
      nextDue: db.prepare(`SELECT MIN(next_attempt_at) AS at FROM imp_reply_outbox WHERE state = 'queued'`),
      sent: db.prepare(`UPDATE imp_reply_outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?`),
      retry: db.prepare(`UPDATE imp_reply_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?`),
      // Retention: a message past it no longer awaits its end-to-end answer; replies already
      // passed back go with their message. A reply still queued stays (it is never dropped).
      forgetAwaiting: db.prepare('DELETE FROM imp_awaiting WHERE qid = ?'),
      forgetSent: db.prepare(`DELETE FROM imp_reply_outbox WHERE qid = ? AND state = 'sent'`),
      byTid: db.prepare(`SELECT id, target_ihn, tid_ihn, tid_tn, qid, state, attempts, last_error FROM imp_reply_outbox
        WHERE tid_ihn = ? AND tid_tn = ? ORDER BY id`),
    };
  }

  /**
   * Remembers a message a relay accepted for forwarding, until its end-to-end ACKNOWLEDGE.
   * When that answer came already (before the hop's own), it is taken and returned: it is
   * the recipient's outcome.
   */
  awaitFinal(a: AwaitingFinal, now = Date.now()): EarlyAnswer | undefined {
    return durably(this.db, () => {
      const kept = this.s.early.get(a.tid.ihn | 0, a.tid.tn) as (EarlyAnswer & { created_at: number }) | undefined;
      const early = kept && (a.shippedAt === undefined || kept.created_at >= a.shippedAt) ? kept : undefined;
      if (kept && !early) this.s.dropEarly.run(a.tid.ihn | 0, a.tid.tn);
      this.s.await.run({
        ihn: a.tid.ihn | 0,
        tn: a.tid.tn,
        qid: a.qid,
        rcpt: a.rcpt,
        peer: a.peer,
        envelopeFrom: a.envelopeFrom,
        receivedAt: a.receivedAt,
        dsnNotify: a.dsnNotify,
        dsnOrcpt: a.dsnOrcpt,
        dsnEnvid: a.dsnEnvid,
        headers: a.headers,
        hopReply: a.hopReply,
        now,
      });
      if (!early) return undefined;
      this.s.answer.run({ ihn: a.tid.ihn | 0, tn: a.tid.tn, answer: early.outcome === 'delivered' ? 1 : 0, reply: early.reply, now, bounceQid: null });
      this.s.dropEarly.run(a.tid.ihn | 0, a.tid.tn);
      return { outcome: early.outcome, reply: early.reply };
    });
  }

  /**
   * An end-to-end answer for a tid of ours: the message awaiting it, or, when none awaits
   * it yet (the hop's own answer is still on its way), the answer kept for it (undefined).
   */
  takeEndToEnd(tid: { tn: number; ihn: number }, answer: EarlyAnswer, now = Date.now()): AwaitingRow | undefined {
    return durably(this.db, () => {
      const row = this.awaiting(tid);
      if (!row) this.s.keepEarly.run(tid.ihn | 0, tid.tn, answer.outcome, answer.reply, now);
      return row;
    });
  }

  /** Answers kept this long for a hop answer that never came (an unknown tid) go (retention). */
  pruneEarly(cutoff: number): void {
    this.s.pruneEarly.run(cutoff);
  }

  awaiting(tid: { tn: number; ihn: number }): AwaitingRow | undefined {
    const r = this.s.awaiting.get(tid.ihn | 0, tid.tn) as AwaitingDbRow | undefined;
    if (!r) return undefined;
    return {
      tid: { tn: r.tid_tn, ihn: r.tid_ihn },
      qid: r.qid,
      rcpt: r.rcpt,
      peer: r.peer,
      envelopeFrom: r.envelope_from,
      receivedAt: r.received_at,
      dsnNotify: r.dsn_notify,
      dsnOrcpt: r.dsn_orcpt,
      dsnEnvid: r.dsn_envid,
      headers: r.headers,
      hopReply: r.hop_reply,
      answer: r.answer === null ? null : r.answer === 1,
      finalReply: r.final_reply,
      bounceQid: r.bounce_qid,
    };
  }

  /**
   * Records the destination's answer for a message awaiting it, and makes it the
   * recipient's state (yes: delivered, no: failed) in the same transaction. False when
   * it was answered already (a repeated ACKNOWLEDGE changes nothing).
   */
  recordFinal(tid: { tn: number; ihn: number }, f: { answer: boolean; reply: string; bounceQid?: string }, now = Date.now()): boolean {
    return durably(this.db, () => {
      const changed = this.s.answer.run({ ihn: tid.ihn | 0, tn: tid.tn, answer: f.answer ? 1 : 0, reply: f.reply, now, bounceQid: f.bounceQid ?? null }).changes;
      if (!changed) return false;
      const row = this.s.awaiting.get(tid.ihn | 0, tid.tn) as AwaitingDbRow;
      this.s.recipient.run({ qid: row.qid, rcpt: row.rcpt, state: f.answer ? 'delivered' : 'failed', reply: f.reply, now });
      return true;
    });
  }

  /** Queues a reply to pass back towards the MPM `targetIhn`; durable on return. */
  queueReply(r: { targetIhn: number; tid: { tn: number; ihn: number }; qid?: string; message: Buffer }, now = Date.now()): number {
    return durably(this.db, () => Number(this.s.queue.run(r.targetIhn | 0, r.tid.ihn | 0, r.tid.tn, r.qid ?? null, r.message, now, now).lastInsertRowid));
  }

  dueReplies(now: number, limit: number): OutboxReply[] {
    return (this.s.due.all(now, limit) as { id: number; target_ihn: number; tid_ihn: number; tid_tn: number; qid: string | null; message: Buffer; attempts: number }[]).map((r) => ({
      id: r.id,
      targetIhn: r.target_ihn,
      tid: { tn: r.tid_tn, ihn: r.tid_ihn },
      qid: r.qid,
      message: r.message,
      attempts: r.attempts,
    }));
  }

  /** When the next queued reply is due, if any is queued. */
  nextReplyDueAt(): number | undefined {
    return (this.s.nextDue.get() as { at: number | null }).at ?? undefined;
  }

  repliesSent(ids: readonly number[], now = Date.now()): void {
    durably(this.db, () => {
      for (const id of ids) this.s.sent.run(now, id);
    });
  }

  repliesRetry(ids: readonly number[], nextAttemptAt: number, error: string): void {
    durably(this.db, () => {
      for (const id of ids) this.s.retry.run(nextAttemptAt, error, id);
    });
  }

  /** Retention pruning of a finished message (inside the caller's transaction). */
  forget(qid: string): void {
    this.s.forgetAwaiting.run(qid);
    this.s.forgetSent.run(qid);
  }

  /** The replies passed back (or waiting to be) for a transaction: the relay's record. */
  repliesByTid(tid: { tn: number; ihn: number }): { id: number; targetIhn: number; qid: string | null; state: 'queued' | 'sent'; attempts: number; lastError: string | null }[] {
    return (this.s.byTid.all(tid.ihn | 0, tid.tn) as { id: number; target_ihn: number; qid: string | null; state: 'queued' | 'sent'; attempts: number; last_error: string | null }[]).map((r) => ({
      id: r.id,
      targetIhn: r.target_ihn,
      qid: r.qid,
      state: r.state,
      attempts: r.attempts,
      lastError: r.last_error,
    }));
  }
}
