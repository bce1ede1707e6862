import type { SqliteDatabase } from './db.js';

/**
 * Retention of the upstream's record: PoD message and maillog events older than
 * `store.podRetention` (by the event's own time, `ts`, the time the report counts them in),
 * and dead letters by the time mailbag received them. Deleting an event row is all it takes
 * for what hangs on it: its rule rows go by their foreign key's cascade, and the report's
 * counters by the delete triggers of migration 16, in the same statement. Links made from
 * the events are the correlation store's (`CorrelationStore.dropLinksWithoutEvents`).
 * Stream checkpoints, status and gaps are never touched: they say where each stream is.
 */

/** Oldest message events first, through the `pod_message_events_ts_disposition` index (no sort). */
export const POD_MESSAGE_PRUNE_SQL = 'SELECT id, qid FROM pod_message_events WHERE ts_us < @cutoffUs ORDER BY ts_us LIMIT @limit';
/** Oldest maillog events first, through the `pod_maillog_events_ts` index. */
export const POD_MAILLOG_PRUNE_SQL = 'SELECT id, qid FROM pod_maillog_events WHERE ts_us < @cutoffUs ORDER BY ts_us LIMIT @limit';
/** Oldest dead letters first, through the `pod_dead_letters_received` index. */
export const POD_DEAD_LETTER_PRUNE_SQL = 'SELECT id FROM pod_dead_letters WHERE received_at < @cutoffMs ORDER BY received_at LIMIT @limit';

export interface PodPruneBatch {
  messageEvents: number;
  maillogEvents: number;
  deadLetters: number;
  /** Distinct upstream queue ids of the events removed: their links are checked after. */
  upstreamQids: Set<string>;
}

export class PodRetentionStore {
  private readonly s;

  constructor(db: SqliteDatabase) {
    this.s = {
      messageCandidates: db.prepare(POD_MESSAGE_PRUNE_SQL),
      maillogCandidates: db.prepare(POD_MAILLOG_PRUNE_SQL),
      deadLetterCandidates: db.prepare(POD_DEAD_LETTER_PRUNE_SQL),
      deleteMessageEvent: db.prepare('DELETE FROM pod_message_events WHERE id = ?'),
      deleteMaillogEvent: db.prepare('DELETE FROM pod_maillog_events WHERE id = ?'),
      deleteDeadLetter: db.prepare('DELETE FROM pod_dead_letters WHERE id = ?'),
    };
  }

  /**
   * Removes up to `limit` rows in all, message events first, then maillog events, then
   * dead letters, each oldest first. Call inside a write transaction (`Store.prunePodBefore`),
   * which also drops the links the removed events leave without support.
   */
  pruneIn(cutoffMs: number, limit: number): PodPruneBatch {
    const cutoffUs = cutoffMs * 1000;
    const out: PodPruneBatch = { messageEvents: 0, maillogEvents: 0, deadLetters: 0, upstreamQids: new Set() };
    let left = limit;
    for (const r of this.s.messageCandidates.all({ cutoffUs, limit: left }) as { id: number; qid: string }[]) {
      out.messageEvents += this.s.deleteMessageEvent.run(r.id).changes;
      out.upstreamQids.add(r.qid);
    }
    left -= out.messageEvents;
    if (left <= 0) return out;
    for (const r of this.s.maillogCandidates.all({ cutoffUs, limit: left }) as { id: number; qid: string }[]) {
      out.maillogEvents += this.s.deleteMaillogEvent.run(r.id).changes;
      out.upstreamQids.add(r.qid);
    }
    left -= out.maillogEvents;
    if (left <= 0) return out;
    for (const r of this.s.deadLetterCandidates.all({ cutoffMs, limit: left }) as { id: number }[]) {
      out.deadLetters += this.s.deleteDeadLetter.run(r.id).changes;
    }
    return out;
  }
}
