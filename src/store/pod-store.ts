import type { CorrelationStore } from './correlation-store.js';
import type { SqliteDatabase } from './db.js';

/**
 * PoD log events (issue 10): message and maillog events with the fields correlation joins
 * on, dead letters for events that could not be taken, and per-stream checkpoints.
 *
 * An event's identity is (event id or guid, instant in microseconds, sha256 of its canonical
 * content): a replayed event is ignored by the unique index and counted as a duplicate, while
 * two different events that share an id or guid are both kept. A dead letter is identified by
 * the sha256 of its whole payload, so replaying a bad event does not pile up copies.
 */

export interface PodEventRowBase {
  /** Canonical UTC instant, `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
  ts: string;
  tsUs: number;
  contentSha256: string;
  cid: string | null;
  agent: string | null;
  /** The normalised event, JSON. */
  event: string;
}

export interface PodMessageRow extends PodEventRowBase {
  guid: string;
  qid: string;
  /** The first `msg.header.message-id`, normalised like every correlation key (`normaliseMessageId`). */
  messageId: string | null;
  sid: string | null;
  envelopeFrom: string | null;
  disposition: string | null;
  /** `filter.actions[]` as (module, rule), kept one row each for reports (`pod_message_rules`). */
  rules: ReadonlyArray<{ module: string; rule: string }>;
}

/** Fields parsed from the raw sendmail line (`data`), not from `sm.*`. */
export interface PodMaillogRow extends PodEventRowBase {
  eventId: string;
  qid: string;
  /** `msgid=`, normalised the same way. */
  messageId: string | null;
  mailFrom: string | null;
  /** JSON array of `to=` recipients. */
  rcpts: string | null;
  relay: string | null;
  stat: string | null;
  dsn: string | null;
  /** The next hop's queue id from `stat=Sent (... queued as QID)`. */
  queuedAs: string | null;
  mailer: string | null;
  delay: string | null;
  xdelay: string | null;
  nrcpts: number | null;
  size: number | null;
  ctladdr: string | null;
}

export interface PodDeadLetterInput {
  /** The stream name, or `import FILE:LINE`. */
  source: string;
  code: string;
  reason: string;
  /** The payload as received (only its first bytes when `rawTruncated`). */
  raw: Buffer;
  rawBytes: number;
  /** sha256 of the whole payload: the same payload again is one dead letter, not two. */
  rawSha256: string;
  rawTruncated: boolean;
}

export interface PodDeadLetterRow extends PodDeadLetterInput {
  id: number;
  receivedAt: number;
}

export type PodBatchItem =
  | { kind: 'message'; row: PodMessageRow }
  | { kind: 'maillog'; row: PodMaillogRow }
  | { kind: 'dead'; row: PodDeadLetterInput };

export interface PodBatchResult {
  stored: number;
  duplicates: number;
  deadLettered: number;
}

/** A stored message event as its columns (snake_case, as in the table). */
export interface StoredPodMessageEvent {
  id: number;
  guid: string;
  ts: string;
  ts_us: number;
  content_sha256: string;
  qid: string;
  message_id: string | null;
  sid: string | null;
  envelope_from: string | null;
  disposition: string | null;
  cid: string | null;
  agent: string | null;
  source: string;
  event: string;
  stored_at: number;
}

/** A stored maillog event as its columns. */
export interface StoredPodMaillogEvent {
  id: number;
  event_id: string;
  ts: string;
  ts_us: number;
  content_sha256: string;
  qid: string;
  message_id: string | null;
  mail_from: string | null;
  rcpts: string | null;
  relay: string | null;
  stat: string | null;
  dsn: string | null;
  queued_as: string | null;
  mailer: string | null;
  delay: string | null;
  xdelay: string | null;
  nrcpts: number | null;
  size: number | null;
  ctladdr: string | null;
  cid: string | null;
  agent: string | null;
  source: string;
  event: string;
  stored_at: number;
}

export interface PodCheckpoint {
  stream: string;
  newestTs: string;
  newestTsUs: number;
  updatedAt: number;
}

interface DeadLetterDbRow {
  id: number;
  received_at: number;
  source: string;
  code: string;
  reason: string;
  raw: Buffer;
  raw_bytes: number;
  raw_sha256: string;
  raw_truncated: number;
}

export class PodStore {
  private readonly s;

  /** `correlation`: each new event is linked to mailbag messages in the transaction that stores it. */
  constructor(
    readonly db: SqliteDatabase,
    private readonly correlation?: CorrelationStore,
  ) {
    this.s = {
      message: db.prepare(`INSERT INTO pod_message_events
        (guid, ts, ts_us, content_sha256, qid, message_id, sid, envelope_from, disposition, cid, agent, source, event, stored_at)
        VALUES (@guid, @ts, @tsUs, @contentSha256, @qid, @messageId, @sid, @envelopeFrom, @disposition, @cid, @agent, @source, @event, @now)
        ON CONFLICT DO NOTHING`),
      maillog: db.prepare(`INSERT INTO pod_maillog_events
        (event_id, ts, ts_us, content_sha256, qid, message_id, mail_from, rcpts, relay, stat, dsn, queued_as, mailer,
         delay, xdelay, nrcpts, size, ctladdr, cid, agent, source, event, stored_at)
        VALUES (@eventId, @ts, @tsUs, @contentSha256, @qid, @messageId, @mailFrom, @rcpts, @relay, @stat, @dsn, @queuedAs,
         @mailer, @delay, @xdelay, @nrcpts, @size, @ctladdr, @cid, @agent, @source, @event, @now)
        ON CONFLICT DO NOTHING`),
      rule: db.prepare('INSERT INTO pod_message_rules (event_id, ts_us, module, rule) VALUES (?, ?, ?, ?)'),
      dead: db.prepare(`INSERT INTO pod_dead_letters (received_at, source, code, reason, raw, raw_bytes, raw_sha256, raw_truncated)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
      checkpoint: db.prepare(`INSERT INTO pod_checkpoints (stream, newest_ts, newest_ts_us, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (stream) DO UPDATE SET newest_ts = excluded.newest_ts, newest_ts_us = excluded.newest_ts_us,
          updated_at = excluded.updated_at
        WHERE excluded.newest_ts_us > pod_checkpoints.newest_ts_us`),
      getCheckpoint: db.prepare('SELECT stream, newest_ts AS newestTs, newest_ts_us AS newestTsUs, updated_at AS updatedAt FROM pod_checkpoints WHERE stream = ?'),
      deadLetters: db.prepare('SELECT * FROM pod_dead_letters ORDER BY id LIMIT ?'),
      messagesByQid: db.prepare('SELECT * FROM pod_message_events WHERE qid = ? ORDER BY ts_us, id'),
      maillogByQid: db.prepare('SELECT * FROM pod_maillog_events WHERE qid = ? ORDER BY ts_us, id'),
      messagesByMessageId: db.prepare('SELECT * FROM pod_message_events WHERE message_id = ? ORDER BY ts_us, id'),
      maillogByMessageId: db.prepare('SELECT * FROM pod_maillog_events WHERE message_id = ? ORDER BY ts_us, id'),
      messageQidsByMessageId: db.prepare('SELECT qid FROM pod_message_events WHERE message_id = ? ORDER BY ts_us, id').pluck(),
      maillogQidsByMessageId: db.prepare('SELECT qid FROM pod_maillog_events WHERE message_id = ? ORDER BY ts_us, id').pluck(),
      counts: db.prepare(`SELECT (SELECT COUNT(*) FROM pod_message_events) AS messages,
        (SELECT COUNT(*) FROM pod_maillog_events) AS maillogs, (SELECT COUNT(*) FROM pod_dead_letters) AS deadLetters`),
    };
  }

  /**
   * Stores one batch in one short IMMEDIATE transaction: events already stored (same
   * identity) and payloads already dead-lettered (same bytes) are counted as duplicates.
   * `ON CONFLICT DO NOTHING`, not `INSERT OR IGNORE`: the latter also skips a NOT NULL
   * violation, which would then be counted as a duplicate instead of failing the batch. With
   * `checkpointStream`, the stream's checkpoint moves to the newest event of the batch in the
   * same transaction, so a checkpoint never runs ahead of what is stored (nor of `now`).
   */
  storeBatch(items: readonly PodBatchItem[], opts: { source: string; checkpointStream?: string; now?: number }): PodBatchResult {
    const now = opts.now ?? Date.now();
    const result: PodBatchResult = { stored: 0, duplicates: 0, deadLettered: 0 };
    let newest: { ts: string; tsUs: number } | undefined;
    this.db
      .transaction(() => {
        for (const item of items) {
          if (item.kind === 'dead') {
            const d = item.row;
            const changes = this.s.dead.run(now, d.source, d.code, d.reason, d.raw, d.rawBytes, d.rawSha256, d.rawTruncated ? 1 : 0).changes;
            if (changes > 0) result.deadLettered++;
            else result.duplicates++;
            continue;
          }
          const params = { ...item.row, source: opts.source, now };
          const run = item.kind === 'message' ? this.s.message.run(params) : this.s.maillog.run(params);
          const changes = run.changes;
          if (changes > 0) result.stored++;
          else result.duplicates++;
          // Written here rather than by a trigger that would parse the event's JSON again (migration 18).
          if (changes > 0 && item.kind === 'message') for (const r of item.row.rules) this.s.rule.run(run.lastInsertRowid, item.row.tsUs, r.module, r.rule);
          if (changes > 0 && this.correlation) {
            if (item.kind === 'message') this.correlation.linkMessageEventIn(item.row, now);
            else this.correlation.linkMaillogEventIn(item.row, now);
          }
          if (!newest || item.row.tsUs > newest.tsUs) newest = { ts: item.row.ts, tsUs: item.row.tsUs };
        }
        if (opts.checkpointStream !== undefined && newest) {
          // A ts ahead of now (an agent's wrong offset or clock) would carry the checkpoint into
          // the future, and gaps are measured from it: no outage before that time would be
          // filled. Nothing after now can have been received, so the checkpoint stops there.
          if (newest.tsUs > now * 1000) newest = { ts: `${new Date(now).toISOString().slice(0, -1)}000Z`, tsUs: now * 1000 };
          this.s.checkpoint.run(opts.checkpointStream, newest.ts, newest.tsUs, now);
        }
      })
      .immediate();
    return result;
  }

  checkpoint(stream: string): PodCheckpoint | undefined {
    return this.s.getCheckpoint.get(stream) as PodCheckpoint | undefined;
  }

  deadLetters(limit = -1): PodDeadLetterRow[] {
    return (this.s.deadLetters.all(limit) as DeadLetterDbRow[]).map((r) => ({
      id: r.id,
      receivedAt: r.received_at,
      source: r.source,
      code: r.code,
      reason: r.reason,
      raw: r.raw,
      rawBytes: r.raw_bytes,
      rawSha256: r.raw_sha256,
      rawTruncated: r.raw_truncated === 1,
    }));
  }

  /** Oldest first. */
  messageEventsByQid(qid: string): StoredPodMessageEvent[] {
    return this.s.messagesByQid.all(qid) as StoredPodMessageEvent[];
  }

  maillogEventsByQid(qid: string): StoredPodMaillogEvent[] {
    return this.s.maillogByQid.all(qid) as StoredPodMaillogEvent[];
  }

  /** `messageId` as `normaliseMessageId` writes it. */
  messageEventsByMessageId(messageId: string): StoredPodMessageEvent[] {
    return this.s.messagesByMessageId.all(messageId) as StoredPodMessageEvent[];
  }

  maillogEventsByMessageId(messageId: string): StoredPodMaillogEvent[] {
    return this.s.maillogByMessageId.all(messageId) as StoredPodMaillogEvent[];
  }

  /**
   * The upstream queue ids of the events with this Message-ID, each once: those of message
   * events first, then of maillog lines, oldest first (the qids alone: trace reads the
   * events themselves by qid).
   */
  upstreamQidsByMessageId(messageId: string): string[] {
    return [...new Set([...(this.s.messageQidsByMessageId.all(messageId) as string[]), ...(this.s.maillogQidsByMessageId.all(messageId) as string[])])];
  }

  counts(): { messages: number; maillogs: number; deadLetters: number } {
    return this.s.counts.get() as { messages: number; maillogs: number; deadLetters: number };
  }
}
