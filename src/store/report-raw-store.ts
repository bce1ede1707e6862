import type { SqliteDatabase } from './db.js';

/**
 * Read-only aggregates for `mailbag report` over a time window [since, until) in ms since
 * the epoch, bucketed by `bucketMs` (UTC hours or days), counted from the rows themselves.
 * Each query walks a time index (migration 15, and the PoD tables' `ts_us`), so a window's
 * cost follows the rows in it. `ReportStore` (report-store.ts) uses them for the partial
 * hours at a window's edges and the hourly counters (migration 16) for the whole hours; the
 * tests use them to recount what the counters say.
 */
export interface ReportWindow {
  since: number;
  until: number;
  bucketMs: number;
}

export interface BucketCount {
  /** Start of the bucket, ms since the epoch. */
  bucket: number;
  n: number;
}

export interface FinishedCount extends BucketCount {
  state: 'delivered' | 'failed';
}

export interface NamedCount {
  name: string;
  n: number;
}

export interface LanguageCount {
  mode: string;
  /** The selected part's language tags; '' when none was selected. */
  tags: string;
  n: number;
}

export interface RuleCount {
  module: string;
  rule: string;
  n: number;
}

export interface QidCoverage {
  messages: number;
  linked: number;
}

/** Each bucket of the window: its start, and the part of it inside the window [from, to). */
function* buckets(w: ReportWindow): Generator<[bucket: number, from: number, to: number]> {
  for (let bucket = Math.floor(w.since / w.bucketMs) * w.bucketMs; bucket < w.until; bucket += w.bucketMs) {
    yield [bucket, Math.max(bucket, w.since), Math.min(bucket + w.bucketMs, w.until)];
  }
}

/** The non-zero counts of `count(from, to)` per bucket. */
function perBucket(w: ReportWindow, count: (from: number, to: number) => number): BucketCount[] {
  const out: BucketCount[] = [];
  for (const [bucket, from, to] of buckets(w)) {
    const n = count(from, to);
    if (n) out.push({ bucket, n });
  }
  return out;
}

// Bound JS numbers are REALs in SQLite, so `t / @bucketMs` would not truncate: CAST does.
export class RawReportCounts {
  private readonly s;

  constructor(readonly db: SqliteDatabase) {
    this.s = {
      // Counted bucket by bucket as index ranges: COUNT(*) over a covering index range is
      // several times cheaper than grouping every row by a computed bucket.
      received: db.prepare('SELECT COUNT(*) AS n FROM messages WHERE received_at >= ? AND received_at < ?').pluck(),
      // CROSS JOIN keeps imp_inbound outside: the planner would otherwise walk every message
      // of the window (a million in 30 days) to probe imp_inbound for each.
      impAccepted: db
        .prepare('SELECT COUNT(*) AS n FROM imp_inbound AS i CROSS JOIN messages AS m ON m.qid = i.qid WHERE m.received_at >= ? AND m.received_at < ?')
        .pluck(),
      // `state IN (...)` repeats the partial index's condition so the planner can use it.
      finished: db.prepare(`SELECT COALESCE(SUM(state = 'delivered'), 0) AS delivered, COALESCE(SUM(state = 'failed'), 0) AS failed
        FROM recipients WHERE state IN ('delivered', 'failed') AND updated_at >= ? AND updated_at < ?`),
      // A deferral is one recipient of one attempt left to retry (the metric's meaning); an
      // attempt's outcome is 'deferred' or 'partial' whenever any recipient of it was.
      deferred: db.prepare(`SELECT CAST(a.started_at / @bucketMs AS INTEGER) * @bucketMs AS bucket, COUNT(*) AS n
        FROM attempts AS a, json_each(CASE WHEN json_valid(a.recipients) THEN a.recipients ELSE '[]' END) AS r
        WHERE a.started_at >= @since AND a.started_at < @until AND a.outcome IN ('deferred', 'partial')
          AND r.type = 'object' AND json_extract(r.value, '$.state') = 'deferred'
        GROUP BY bucket ORDER BY bucket`),
      latency: db
        .prepare(`SELECT COALESCE(r.nexthop, '') AS nexthop, r.updated_at - m.received_at AS ms
        FROM recipients AS r JOIN messages AS m ON m.qid = r.qid
        WHERE r.state IN ('delivered', 'failed') AND r.state = 'delivered' AND r.updated_at >= @since AND r.updated_at < @until`)
        .raw(),
      languages: db.prepare(`SELECT mode, COALESCE(tags, '') AS tags, COUNT(*) AS n FROM language_choices
        WHERE decided_at >= @since AND decided_at < @until GROUP BY mode, tags ORDER BY n DESC, mode, tags`),
      podMessages: db.prepare('SELECT COUNT(*) AS n FROM pod_message_events WHERE ts_us >= ? * 1000 AND ts_us < ? * 1000').pluck(),
      podMaillog: db.prepare('SELECT COUNT(*) AS n FROM pod_maillog_events WHERE ts_us >= ? * 1000 AND ts_us < ? * 1000').pluck(),
      deadLetters: db.prepare('SELECT COUNT(*) AS n FROM pod_dead_letters WHERE received_at >= ? AND received_at < ?').pluck(),
      dispositions: db.prepare(`SELECT COALESCE(disposition, '') AS name, COUNT(*) AS n FROM pod_message_events
        WHERE ts_us >= @since * 1000 AND ts_us < @until * 1000 GROUP BY name ORDER BY n DESC, name`),
      rules: db.prepare(`SELECT module, rule, COUNT(*) AS n FROM pod_message_rules
        WHERE ts_us >= @since * 1000 AND ts_us < @until * 1000 GROUP BY module, rule ORDER BY n DESC, module, rule LIMIT @limit`),
      // Messages mailbag made itself (bounces, IMP forwards: message_origins) have no upstream.
      linkCoverage: db.prepare(`SELECT COUNT(*) AS messages,
          COALESCE(SUM(EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.qid = m.qid)), 0) AS linked
        FROM messages AS m WHERE m.received_at >= @since AND m.received_at < @until
          AND NOT EXISTS (SELECT 1 FROM message_origins AS o WHERE o.qid = m.qid)`),
      linksByVia: db.prepare(`SELECT l.via AS name, COUNT(DISTINCT l.qid) AS n
        FROM messages AS m JOIN upstream_links AS l ON l.qid = m.qid
        WHERE m.received_at >= @since AND m.received_at < @until GROUP BY l.via ORDER BY l.via`),
      // An upstream message handed to mailbag: a maillog line of it says `queued as` a qid
      // of mailbag's shape (13 of [0-9A-Z]); linked when correlation linked it to a message.
      upstreamCoverage: db.prepare(`SELECT COUNT(*) AS messages, COALESCE(SUM(u.linked), 0) AS linked FROM (
          SELECT e.qid, EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.upstream_qid = e.qid) AS linked
          FROM pod_maillog_events AS e
          WHERE e.queued_as IS NOT NULL AND e.ts_us >= @since * 1000 AND e.ts_us < @until * 1000
            AND e.queued_as GLOB '${'[0-9A-Z]'.repeat(13)}'
          GROUP BY e.qid) AS u`),
    };
  }

  /** Messages accepted over IMP (DELIVERs answered yes) received in the window. */
  impAccepted(w: ReportWindow): number {
    return this.s.impAccepted.get(w.since, w.until) as number;
  }

  /** Messages accepted (rows in `messages`), by receipt time. */
  received(w: ReportWindow): BucketCount[] {
    return perBucket(w, (from, to) => this.s.received.get(from, to) as number);
  }

  /** Recipients that reached delivered or failed (bounced), by the time they did. */
  finished(w: ReportWindow): FinishedCount[] {
    const out: FinishedCount[] = [];
    for (const [bucket, from, to] of buckets(w)) {
      const row = this.s.finished.get(from, to) as { delivered: number; failed: number };
      if (row.delivered) out.push({ bucket, state: 'delivered', n: row.delivered });
      if (row.failed) out.push({ bucket, state: 'failed', n: row.failed });
    }
    return out;
  }

  /** Recipient deferrals, by the start of the attempt that deferred them. */
  deferred(w: ReportWindow): BucketCount[] {
    return this.s.deferred.all(w) as BucketCount[];
  }

  /**
   * Each recipient delivered in the window: its next hop and the ms from receipt to delivery.
   * Streamed, so a month of deliveries is never one array of row objects.
   */
  *deliveryLatencies(w: ReportWindow): Generator<[nexthop: string, ms: number]> {
    for (const row of this.s.latency.iterate(w)) yield row as [string, number];
  }

  languages(w: ReportWindow): LanguageCount[] {
    return this.s.languages.all(w) as LanguageCount[];
  }

  /** PoD message events by event time (`ts`). */
  podMessages(w: ReportWindow): BucketCount[] {
    return perBucket(w, (from, to) => this.s.podMessages.get(from, to) as number);
  }

  /** PoD maillog events by event time. */
  podMaillog(w: ReportWindow): BucketCount[] {
    return perBucket(w, (from, to) => this.s.podMaillog.get(from, to) as number);
  }

  /** PoD payloads dead-lettered, by the time they were received (they have no trusted event time). */
  podDeadLetters(w: ReportWindow): BucketCount[] {
    return perBucket(w, (from, to) => this.s.deadLetters.get(from, to) as number);
  }

  /** Upstream dispositions of the PoD message events in the window ('' when the event had none). */
  dispositions(w: ReportWindow): NamedCount[] {
    return this.s.dispositions.all(w) as NamedCount[];
  }

  /** The most often triggered upstream rules (`filter.actions[]` of PoD message events). */
  topRules(w: ReportWindow, limit: number): RuleCount[] {
    return this.s.rules.all({ ...w, limit }) as RuleCount[];
  }

  /**
   * Messages received in the window that came from outside (not bounces or IMP forwards
   * mailbag made), and how many of them correlation linked to an upstream message.
   */
  linkCoverage(w: ReportWindow): QidCoverage {
    return this.s.linkCoverage.get(w) as QidCoverage;
  }

  /** Messages received in the window with a link of each kind (a message can have several). */
  linksByVia(w: ReportWindow): NamedCount[] {
    return this.s.linksByVia.all(w) as NamedCount[];
  }

  /**
   * Upstream messages whose PoD maillog line in the window hands them to mailbag (`queued as`
   * a mailbag-shaped qid), and how many of them mailbag has.
   */
  upstreamCoverage(w: ReportWindow): QidCoverage {
    return this.s.upstreamCoverage.get(w) as QidCoverage;
  }
}
