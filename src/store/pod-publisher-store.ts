import { writeTransaction, type SqliteDatabase } from './db.js';
import type { AttemptRow } from './queue-store.js';

/**
 * What the PoD publisher reads and writes (migration 12): per-message facts recorded
 * after accept (JSON the pod layer defines), delivery attempts joined with them, and
 * each token's resume point after a dropped session.
 */
export interface FactsRow {
  seq: number;
  qid: string;
  recorded_at: number;
  facts: string;
}

/** An attempt row with its message's facts. */
export interface AttemptFactsRow extends AttemptRow {
  /** The message's facts (null when none were recorded). */
  facts: string | null;
  /** Their seq (null with them). */
  facts_seq: number | null;
  /** 1 while the message's row is still in the store (its facts may yet be recorded), else 0. */
  message_kept: number;
}

/** A message the facts recorder has not seen yet. */
export interface UnrecordedMessage {
  /** The message row's rowid: sweeps resume after it. */
  row: number;
  qid: string;
  spool_path: string;
  spool_offset: number;
  size: number;
  received_at: number;
  envelope_from: string;
  client_address: string | null;
  client_hostname: string | null;
  helo: string | null;
  rcpts: string;
}

/** A message's facts, once: the publisher's recorder and the accept path's commit both write them. */
export const INSERT_POD_FACTS_SQL = 'INSERT INTO pod_message_facts (qid, recorded_at, facts) VALUES (?, ?, ?) ON CONFLICT (qid) DO NOTHING';

const ATTEMPT_COLUMNS = `a.id, a.qid, a.nexthop, a.started_at, a.duration_ms, a.reply, a.outcome, a.recipients, f.facts, f.seq AS facts_seq,
  EXISTS (SELECT 1 FROM messages m WHERE m.qid = a.qid) AS message_kept`;

export class PodPublisherStore {
  private readonly s;

  constructor(private readonly db: SqliteDatabase) {
    this.s = {
      insertFacts: db.prepare(INSERT_POD_FACTS_SQL),
      unrecorded: db.prepare(`SELECT m.rowid AS row, m.qid, m.spool_path, m.spool_offset, m.size, m.received_at, m.envelope_from, m.client_address,
          m.client_hostname, m.helo, (SELECT json_group_array(r.rcpt) FROM recipients r WHERE r.qid = m.qid) AS rcpts
        FROM messages m WHERE m.rowid > ? AND NOT EXISTS (SELECT 1 FROM pod_message_facts f WHERE f.qid = m.qid) ORDER BY m.rowid LIMIT ?`),
      unrecordedOne: db.prepare(`SELECT m.rowid AS row, m.qid, m.spool_path, m.spool_offset, m.size, m.received_at, m.envelope_from, m.client_address,
          m.client_hostname, m.helo, (SELECT json_group_array(r.rcpt) FROM recipients r WHERE r.qid = m.qid) AS rcpts
        FROM messages m WHERE m.qid = ? AND NOT EXISTS (SELECT 1 FROM pod_message_facts f WHERE f.qid = m.qid)`),
      factsAfter: db.prepare('SELECT seq, qid, recorded_at, facts FROM pod_message_facts WHERE seq > ? ORDER BY seq LIMIT ?'),
      factsInWindow: db.prepare(`SELECT seq, qid, recorded_at, facts FROM pod_message_facts
        WHERE recorded_at >= @from AND recorded_at < @to AND seq > @after ORDER BY seq LIMIT @limit`),
      attemptsAfter: db.prepare(`SELECT ${ATTEMPT_COLUMNS} FROM attempts a LEFT JOIN pod_message_facts f ON f.qid = a.qid
        WHERE a.id > ? ORDER BY a.id LIMIT ?`),
      attemptsInWindow: db.prepare(`SELECT ${ATTEMPT_COLUMNS} FROM attempts a LEFT JOIN pod_message_facts f ON f.qid = a.qid
        WHERE a.started_at + a.duration_ms >= @from AND a.started_at + a.duration_ms < @to AND a.id > @after ORDER BY a.id LIMIT @limit`),
      maxSeq: db.prepare('SELECT COALESCE(MAX(seq), 0) AS n FROM pod_message_facts'),
      maxAttempt: db.prepare('SELECT COALESCE(MAX(id), 0) AS n FROM attempts'),
      seqBefore: db.prepare('SELECT COALESCE(MAX(seq), 0) AS n FROM pod_message_facts WHERE recorded_at < ?'),
      attemptBefore: db.prepare('SELECT COALESCE(MAX(id), 0) AS n FROM attempts WHERE started_at + duration_ms < ?'),
      saveDrop: db.prepare(`INSERT INTO pod_publisher_sessions (token_id, type, dropped_at, resume_from) VALUES (?, ?, ?, ?)
        ON CONFLICT (token_id, type) DO UPDATE SET dropped_at = excluded.dropped_at, resume_from = excluded.resume_from`),
      pruneFacts: db.prepare(`DELETE FROM pod_message_facts WHERE seq IN
        (SELECT seq FROM pod_message_facts WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)`),
      drop: db.prepare('SELECT dropped_at, resume_from FROM pod_publisher_sessions WHERE token_id = ? AND type = ?'),
    };
  }

  recordFacts(qid: string, recordedAt: number, facts: string): void {
    writeTransaction(this.db, () => this.s.insertFacts.run(qid, recordedAt, facts));
  }

  /** Messages after rowid `after` that have no facts yet, oldest first. */
  unrecorded(after: number, limit: number): UnrecordedMessage[] {
    return this.s.unrecorded.all(after, limit) as UnrecordedMessage[];
  }

  /** Removes up to `limit` facts recorded before `cutoff` (past the archive's 30 days); returns how many. */
  pruneFacts(cutoff: number, limit: number): number {
    return writeTransaction(this.db, () => this.s.pruneFacts.run(cutoff, limit).changes);
  }

  unrecordedMessage(qid: string): UnrecordedMessage | undefined {
    return this.s.unrecordedOne.get(qid) as UnrecordedMessage | undefined;
  }

  factsAfter(seq: number, limit: number): FactsRow[] {
    return this.s.factsAfter.all(seq, limit) as FactsRow[];
  }

  /** Facts recorded in [fromMs, toMs), after `after` (keyset paging). */
  factsInWindow(fromMs: number, toMs: number, after: number, limit: number): FactsRow[] {
    return this.s.factsInWindow.all({ from: fromMs, to: toMs, after, limit }) as FactsRow[];
  }

  attemptsAfter(id: number, limit: number): AttemptFactsRow[] {
    return this.s.attemptsAfter.all(id, limit) as AttemptFactsRow[];
  }

  /** Attempts that ended in [fromMs, toMs), after `after`. */
  attemptsInWindow(fromMs: number, toMs: number, after: number, limit: number): AttemptFactsRow[] {
    return this.s.attemptsInWindow.all({ from: fromMs, to: toMs, after, limit }) as AttemptFactsRow[];
  }

  /** The newest facts seq and attempt id: where a new live session starts. */
  heads(): { seq: number; attempt: number } {
    return { seq: (this.s.maxSeq.get() as { n: number }).n, attempt: (this.s.maxAttempt.get() as { n: number }).n };
  }

  /** The cursor positions just before `ms`: a live session that starts an hour back. */
  headsBefore(ms: number): { seq: number; attempt: number } {
    return { seq: (this.s.seqBefore.get(ms) as { n: number }).n, attempt: (this.s.attemptBefore.get(ms) as { n: number }).n };
  }

  saveDrop(tokenId: string, type: string, droppedAt: number, resumeFrom: string): void {
    writeTransaction(this.db, () => this.s.saveDrop.run(tokenId, type, droppedAt, resumeFrom));
  }

  lastDrop(tokenId: string, type: string): { dropped_at: number; resume_from: string } | undefined {
    return this.s.drop.get(tokenId, type) as { dropped_at: number; resume_from: string } | undefined;
  }
}
