import type { CorrelationKeys } from './correlation-keys.js';
import { writeTransaction, type SqliteDatabase } from './db.js';

/**
 * Correlation (migration 10): every mailbag message's keys, and the many-to-many links
 * between upstream messages (the upstream filter's queue id, as in PoD events) and mailbag
 * messages. Linking is order-independent: whichever side is stored second makes the link,
 * in the same transaction that stores it, and storing a row again changes nothing.
 *
 * Link kinds, strongest first: `queued-as` (an upstream maillog line `stat=Sent (...
 * queued as QID)` names the mailbag qid), `received` (the upstream queue id in the
 * message's Received field), `guid` (X-Proofpoint-GUID/-ORIG-GUID is a message event's
 * guid), and the fallback `message-id` (same Message-ID within `MESSAGE_ID_WINDOW_MS`),
 * which only links a pair where neither side has a link of another kind; a stronger link
 * arriving later removes the fallback links of both its sides. So the final set of links
 * depends on what is stored, never on the order it came in.
 */

export type LinkVia = 'queued-as' | 'received' | 'guid' | 'message-id';
export type OriginKind = 'bounce' | 'imp';

/** Upstream events and mailbag messages further apart than this never link by Message-ID. */
export const MESSAGE_ID_WINDOW_MS = 2 * 24 * 3600 * 1000;

export interface MessageKeysInput {
  qid: string;
  receivedAt: number;
  keys: CorrelationKeys;
  envelopeFrom: string;
  /** Absent: every recipient the queue holds for the qid, read in the recording transaction. */
  rcpts?: readonly string[] | undefined;
  clientAddress: string | null;
  size: number;
}

export interface MessageKeysRow {
  qid: string;
  received_at: number;
  message_id: string | null;
  upstream_qid: string | null;
  upstream_host: string | null;
  pp_guid: string | null;
  pp_orig_guid: string | null;
  envelope_from: string;
  /** JSON array of addresses. */
  rcpts: string;
  client_address: string | null;
  size: number;
  recorded_at: number;
}

export interface UpstreamLinkRow {
  upstream_qid: string;
  qid: string;
  via: LinkVia;
  linked_at: number;
}

export interface MessageOriginRow {
  qid: string;
  origin_qid: string;
  kind: OriginKind;
  recorded_at: number;
}

/** What linking needs of a stored PoD message event. */
export interface StoredMessageEventKeys {
  qid: string;
  guid: string;
  messageId: string | null;
  tsUs: number;
}

/** What linking needs of a stored PoD maillog event. */
export interface StoredMaillogEventKeys {
  qid: string;
  queuedAs: string | null;
  messageId: string | null;
  tsUs: number;
}

/**
 * Links of one upstream queue id (`@u`) whose events retention pruned: each goes unless what
 * made it is still stored (the rules of the link kinds above). Kept apart so a test can show
 * each walks an index.
 */
export const DROP_UNSUPPORTED_LINKS_SQL = {
  /** `received` links need some event of the upstream qid; with none left, every link goes. */
  noEventLeft: `DELETE FROM upstream_links WHERE upstream_qid = @u
    AND NOT EXISTS (SELECT 1 FROM pod_message_events WHERE qid = @u)
    AND NOT EXISTS (SELECT 1 FROM pod_maillog_events WHERE qid = @u)`,
  queuedAs: `DELETE FROM upstream_links WHERE upstream_qid = @u AND via = 'queued-as'
    AND NOT EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.queued_as = upstream_links.qid AND e.qid = @u)`,
  guid: `DELETE FROM upstream_links WHERE upstream_qid = @u AND via = 'guid'
    AND NOT EXISTS (SELECT 1 FROM message_keys AS k, pod_message_events AS e
      WHERE k.qid = upstream_links.qid AND e.qid = @u AND e.guid IN (k.pp_guid, k.pp_orig_guid))`,
  messageId: `DELETE FROM upstream_links WHERE upstream_qid = @u AND via = 'message-id'
    AND NOT EXISTS (SELECT 1 FROM message_keys AS k WHERE k.qid = upstream_links.qid AND (
      EXISTS (SELECT 1 FROM pod_message_events AS e WHERE e.qid = @u AND e.message_id = k.message_id
        AND e.ts_us BETWEEN (k.received_at - @window) * 1000 AND (k.received_at + @window) * 1000)
      OR EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.qid = @u AND e.message_id = k.message_id
        AND e.ts_us BETWEEN (k.received_at - @window) * 1000 AND (k.received_at + @window) * 1000)))`,
} as const;

export class CorrelationStore {
  private readonly s;
  private readonly dropUnsupported;

  constructor(readonly db: SqliteDatabase) {
    this.s = {
      insertKeys: db.prepare(`INSERT INTO message_keys
        (qid, received_at, message_id, upstream_qid, upstream_host, pp_guid, pp_orig_guid, envelope_from, rcpts, client_address, size, recorded_at)
        VALUES (@qid, @receivedAt, @messageId, @upstreamQid, @upstreamHost, @ppGuid, @ppOrigGuid, @envelopeFrom,
          COALESCE(@rcpts, (SELECT json_group_array(rcpt) FROM (SELECT rcpt FROM recipients WHERE qid = @qid ORDER BY rcpt))),
          @clientAddress, @size, @now)
        ON CONFLICT (qid) DO NOTHING`),
      keys: db.prepare('SELECT * FROM message_keys WHERE qid = ?'),
      hasKeys: db.prepare('SELECT 1 FROM message_keys WHERE qid = ?'),
      keysByMessageId: db.prepare('SELECT * FROM message_keys WHERE message_id = ? ORDER BY received_at DESC, qid DESC'),
      keysByUpstreamQid: db.prepare('SELECT * FROM message_keys WHERE upstream_qid = ? ORDER BY received_at DESC, qid DESC'),
      keysByGuid: db.prepare(`SELECT * FROM message_keys WHERE pp_guid = @guid
        UNION SELECT * FROM message_keys WHERE pp_orig_guid = @guid ORDER BY received_at DESC, qid DESC`),
      keysByMessageIdWithin: db.prepare('SELECT qid FROM message_keys WHERE message_id = ? AND received_at BETWEEN ? AND ?'),
      link: db.prepare('INSERT INTO upstream_links (upstream_qid, qid, via, linked_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING'),
      dropFallbackOfQid: db.prepare("DELETE FROM upstream_links WHERE qid = ? AND via = 'message-id'"),
      dropFallbackOfUpstream: db.prepare("DELETE FROM upstream_links WHERE upstream_qid = ? AND via = 'message-id'"),
      qidHasStrong: db.prepare("SELECT 1 FROM upstream_links WHERE qid = ? AND via <> 'message-id' LIMIT 1"),
      upstreamHasStrong: db.prepare("SELECT 1 FROM upstream_links WHERE upstream_qid = ? AND via <> 'message-id' LIMIT 1"),
      linksOfQid: db.prepare('SELECT * FROM upstream_links WHERE qid = ? ORDER BY upstream_qid, via'),
      linksOfUpstream: db.prepare('SELECT * FROM upstream_links WHERE upstream_qid = ? ORDER BY qid, via'),
      upstreamExists: db.prepare(`SELECT EXISTS (SELECT 1 FROM pod_message_events WHERE qid = @u)
        OR EXISTS (SELECT 1 FROM pod_maillog_events WHERE qid = @u) AS found`),
      anyUpstream: db.prepare(`SELECT EXISTS (SELECT 1 FROM pod_message_events) OR EXISTS (SELECT 1 FROM pod_maillog_events) AS found`),
      maillogQueuedAs: db.prepare('SELECT DISTINCT qid FROM pod_maillog_events WHERE queued_as = ?'),
      eventQidsByGuid: db.prepare('SELECT DISTINCT qid FROM pod_message_events WHERE guid = ?'),
      upstreamByMessageIdWithin: db.prepare(`SELECT qid FROM pod_message_events WHERE message_id = @m AND ts_us BETWEEN @from AND @to
        UNION SELECT qid FROM pod_maillog_events WHERE message_id = @m AND ts_us BETWEEN @from AND @to`),
      insertOrigin: db.prepare('INSERT INTO message_origins (qid, origin_qid, kind, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT (qid) DO NOTHING'),
      origin: db.prepare('SELECT * FROM message_origins WHERE qid = ?'),
      derived: db.prepare('SELECT * FROM message_origins WHERE origin_qid = ? ORDER BY qid'),
      forgetKeys: db.prepare('DELETE FROM message_keys WHERE qid = ?'),
      forgetLinks: db.prepare('DELETE FROM upstream_links WHERE qid = ?'),
      forgetOrigin: db.prepare('DELETE FROM message_origins WHERE qid = ?'),
    };
    const d = DROP_UNSUPPORTED_LINKS_SQL;
    this.dropUnsupported = {
      noEventLeft: db.prepare(d.noEventLeft),
      queuedAs: db.prepare(d.queuedAs),
      guid: db.prepare(d.guid),
      messageId: db.prepare(d.messageId),
    };
  }

  /**
   * Records a message's keys (once: a second call for the same qid changes nothing) and
   * links it to the upstream events already stored, in one IMMEDIATE transaction.
   * Returns whether the keys were new.
   */
  recordMessageKeys(m: MessageKeysInput, now = Date.now()): boolean {
    return writeTransaction(this.db, () => this.recordMessageKeysIn(m, now));
  }

  /**
   * Several messages' keys in one transaction: the queue records the keys of every
   * message it claimed in the same event-loop turn together (one WAL commit, not one each).
   */
  recordManyMessageKeys(list: readonly MessageKeysInput[], now = Date.now()): boolean[] {
    return writeTransaction(this.db, () => this.recordManyMessageKeysIn(list, now));
  }

  /**
   * `recordManyMessageKeys` inside the caller's write transaction (the queue's round
   * results). Links go only to stored PoD events: while the store holds none (a gateway
   * without a PoD stream), one look says so for the whole batch instead of five per message.
   * The caller's write lock keeps the answer true until its commit.
   */
  recordManyMessageKeysIn(list: readonly MessageKeysInput[], now: number): boolean[] {
    const upstream = list.length > 0 && (this.s.anyUpstream.get() as { found: number }).found === 1;
    return list.map((m) => this.recordMessageKeysIn(m, now, upstream));
  }

  /**
   * `recordMessageKeys` inside the caller's write transaction. `upstream` false: the store
   * holds no PoD event (the caller looked in this transaction), so there is nothing to link.
   */
  recordMessageKeysIn(m: MessageKeysInput, now: number, upstream = true): boolean {
    {
      const changes = this.s.insertKeys.run({
        qid: m.qid,
        receivedAt: m.receivedAt,
        messageId: m.keys.messageId ?? null,
        upstreamQid: m.keys.upstreamQid ?? null,
        upstreamHost: m.keys.upstreamHost ?? null,
        ppGuid: m.keys.proofpointGuid ?? null,
        ppOrigGuid: m.keys.proofpointOrigGuid ?? null,
        envelopeFrom: m.envelopeFrom,
        rcpts: m.rcpts ? JSON.stringify(m.rcpts) : null,
        clientAddress: m.clientAddress,
        size: m.size,
        now,
      }).changes;
      if (changes === 0) return false;
      if (upstream) this.linkMessageIn(m, now);
      return true;
    }
  }

  private linkMessageIn(m: MessageKeysInput, now: number): void {
    for (const r of this.s.maillogQueuedAs.all(m.qid) as { qid: string }[]) this.strongLink(r.qid, m.qid, 'queued-as', now);
    const u = m.keys.upstreamQid;
    if (u && (this.s.upstreamExists.get({ u }) as { found: number }).found) this.strongLink(u, m.qid, 'received', now);
    for (const guid of new Set([m.keys.proofpointGuid, m.keys.proofpointOrigGuid])) {
      if (!guid) continue;
      for (const r of this.s.eventQidsByGuid.all(guid) as { qid: string }[]) this.strongLink(r.qid, m.qid, 'guid', now);
    }
    const mid = m.keys.messageId;
    if (!mid || this.s.qidHasStrong.get(m.qid)) return;
    const window = { m: mid, from: (m.receivedAt - MESSAGE_ID_WINDOW_MS) * 1000, to: (m.receivedAt + MESSAGE_ID_WINDOW_MS) * 1000 };
    for (const r of this.s.upstreamByMessageIdWithin.all(window) as { qid: string }[]) {
      if (!this.s.upstreamHasStrong.get(r.qid)) this.s.link.run(r.qid, m.qid, 'message-id', now);
    }
  }

  /**
   * Links a PoD message event just stored (call inside the transaction that stored it,
   * only when the row was new).
   */
  linkMessageEventIn(e: StoredMessageEventKeys, now: number): void {
    this.linkByReceivedIn(e.qid, now);
    for (const k of this.s.keysByGuid.all({ guid: e.guid }) as MessageKeysRow[]) this.strongLink(e.qid, k.qid, 'guid', now);
    this.linkByMessageIdIn(e.qid, e.messageId, e.tsUs, now);
  }

  /** Links a PoD maillog event just stored (inside its transaction, only when new). */
  linkMaillogEventIn(e: StoredMaillogEventKeys, now: number): void {
    if (e.queuedAs && this.s.hasKeys.get(e.queuedAs)) this.strongLink(e.qid, e.queuedAs, 'queued-as', now);
    this.linkByReceivedIn(e.qid, now);
    this.linkByMessageIdIn(e.qid, e.messageId, e.tsUs, now);
  }

  private linkByReceivedIn(upstreamQid: string, now: number): void {
    for (const k of this.s.keysByUpstreamQid.all(upstreamQid) as MessageKeysRow[]) this.strongLink(upstreamQid, k.qid, 'received', now);
  }

  private linkByMessageIdIn(upstreamQid: string, messageId: string | null, tsUs: number, now: number): void {
    if (!messageId || this.s.upstreamHasStrong.get(upstreamQid)) return;
    // The receipts (whole ms) within the window of the event's µs time, as `linkMessageIn` and
    // the pruning rule compare them: flooring both ends would take in a receipt up to 1 ms too
    // early, linked when the event comes second and not when the message does.
    const from = Math.ceil(tsUs / 1000) - MESSAGE_ID_WINDOW_MS;
    const to = Math.floor(tsUs / 1000) + MESSAGE_ID_WINDOW_MS;
    for (const r of this.s.keysByMessageIdWithin.all(messageId, from, to) as { qid: string }[]) {
      if (!this.s.qidHasStrong.get(r.qid)) this.s.link.run(upstreamQid, r.qid, 'message-id', now);
    }
  }

  /** A link of a stronger kind than Message-ID: the fallback links of both sides go. */
  private strongLink(upstreamQid: string, qid: string, via: Exclude<LinkVia, 'message-id'>, now: number): void {
    this.s.link.run(upstreamQid, qid, via, now);
    this.s.dropFallbackOfQid.run(qid);
    this.s.dropFallbackOfUpstream.run(upstreamQid);
  }

  /** Records that `qid` was made from `originQid` (a bounce, an IMP forward). Idempotent. */
  recordOrigin(qid: string, originQid: string, kind: OriginKind, now = Date.now()): void {
    this.s.insertOrigin.run(qid, originQid, kind, now);
  }

  hasKeys(qid: string): boolean {
    return this.s.hasKeys.get(qid) !== undefined;
  }

  keys(qid: string): MessageKeysRow | undefined {
    return this.s.keys.get(qid) as MessageKeysRow | undefined;
  }

  /** Newest first. `messageId` as `normaliseMessageId` writes it. */
  keysByMessageId(messageId: string): MessageKeysRow[] {
    return this.s.keysByMessageId.all(messageId) as MessageKeysRow[];
  }

  /** Messages whose Received field names this upstream queue id, newest first. */
  keysByUpstreamQid(upstreamQid: string): MessageKeysRow[] {
    return this.s.keysByUpstreamQid.all(upstreamQid) as MessageKeysRow[];
  }

  /** Messages whose X-Proofpoint-GUID or -ORIG-GUID is `guid`, newest first. */
  keysByGuid(guid: string): MessageKeysRow[] {
    return this.s.keysByGuid.all({ guid }) as MessageKeysRow[];
  }

  /** Upstream queue ids linked to this mailbag qid. */
  linksOfQid(qid: string): UpstreamLinkRow[] {
    return this.s.linksOfQid.all(qid) as UpstreamLinkRow[];
  }

  /** mailbag qids linked to this upstream queue id. */
  linksOfUpstream(upstreamQid: string): UpstreamLinkRow[] {
    return this.s.linksOfUpstream.all(upstreamQid) as UpstreamLinkRow[];
  }

  /** Upstream queue ids whose maillog lines hand a message to mailbag as this qid (`queued as QID`). */
  upstreamQidsQueuedAs(qid: string): string[] {
    return (this.s.maillogQueuedAs.all(qid) as { qid: string }[]).map((r) => r.qid);
  }

  /** Upstream queue ids of the message events with this guid. */
  upstreamQidsByGuid(guid: string): string[] {
    return (this.s.eventQidsByGuid.all(guid) as { qid: string }[]).map((r) => r.qid);
  }

  origin(qid: string): MessageOriginRow | undefined {
    return this.s.origin.get(qid) as MessageOriginRow | undefined;
  }

  /** Messages made from this one (its bounces, IMP forwards). */
  derived(qid: string): MessageOriginRow[] {
    return this.s.derived.all(qid) as MessageOriginRow[];
  }

  /**
   * PoD retention pruned events of this upstream queue id (call inside the pruning
   * transaction): its links that no stored event supports any more go, so `trace` never
   * follows a link to nothing; the report's link counters follow by trigger. A Message-ID
   * link that a stronger one had replaced is not made again. Returns the links removed.
   */
  dropLinksWithoutEvents(upstreamQid: string): number {
    const d = this.dropUnsupported;
    const u = { u: upstreamQid };
    return (
      d.noEventLeft.run(u).changes +
      d.queuedAs.run(u).changes +
      d.guid.run(u).changes +
      d.messageId.run({ ...u, window: MESSAGE_ID_WINDOW_MS }).changes
    );
  }

  /**
   * Retention: the message is pruned, its keys, links and origin go with it (inside the
   * pruning transaction). Upstream events stay until their own retention
   * (`store.podRetention`, `dropLinksWithoutEvents`).
   */
  forget(qid: string): void {
    this.s.forgetKeys.run(qid);
    this.s.forgetLinks.run(qid);
    this.s.forgetOrigin.run(qid);
  }
}
