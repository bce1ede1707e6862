import type { Database } from 'better-sqlite3';
import { REPORT_COUNTERS_SQL } from './report-counters-sql.js';
import { POD_RULE_COUNTERS_SQL } from './report-rule-counters-sql.js';
import { REPORT_DELIVERED_COUNTERS_SQL } from './report-delivered-counters-sql.js';

/**
 * Numbered, append-only schema migrations. A migration is never edited once released:
 * later issues (PoD events, correlation) add new entries at the end.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'delivery queue: messages, recipients, attempts',
    sql: `
      CREATE TABLE messages (
        qid TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        envelope_from TEXT NOT NULL,
        size INTEGER NOT NULL,
        spool_path TEXT NOT NULL,
        client_address TEXT,
        client_hostname TEXT,
        helo TEXT,
        auth_user TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
        finished_at INTEGER
      );
      CREATE TABLE recipients (
        qid TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,
        rcpt TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
          CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'deleted')),
        next_attempt_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT,
        nexthop TEXT,
        inflight_until INTEGER,
        delivered_as TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (qid, rcpt)
      );
      CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE state IN ('queued', 'deferred');
      CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        qid TEXT NOT NULL,
        nexthop TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        reply TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'failed', 'partial')),
        recipients TEXT NOT NULL
      );
      CREATE INDEX attempts_qid ON attempts (qid);
    `,
  },
  {
    version: 2,
    name: 'delivery queue: retry generation, spooled rewrite copies',
    sql: `
      ALTER TABLE recipients ADD COLUMN retry_gen INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE recipients ADD COLUMN rewritten INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE recipients ADD COLUMN copy_path TEXT;
      ALTER TABLE recipients ADD COLUMN copy_size INTEGER;
      ALTER TABLE recipients ADD COLUMN copy_offset INTEGER;
      ALTER TABLE recipients ADD COLUMN copy_sha256 TEXT;
    `,
  },
  {
    version: 3,
    name: 'spool integrity: envelope offset, checksum and hold state of a message',
    // spool_offset 0 and sha256 NULL: a file written before spool files carried their
    // envelope and checksum (its size is still checked).
    sql: `
      ALTER TABLE messages ADD COLUMN spool_offset INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN sha256 TEXT;
      ALTER TABLE messages ADD COLUMN held_at INTEGER;
      ALTER TABLE messages ADD COLUMN hold_reason TEXT;
    `,
  },
  {
    version: 4,
    name: 'MAIL FROM and RCPT TO parameters (BODY, SMTPUTF8, SIZE, DSN)',
    // NULL means the client did not give the parameter; ENVID and ORCPT are kept decoded from xtext.
    sql: `
      ALTER TABLE messages ADD COLUMN body_type TEXT CHECK (body_type IN ('7bit', '8bitmime'));
      ALTER TABLE messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN declared_size INTEGER;
      ALTER TABLE messages ADD COLUMN dsn_ret TEXT CHECK (dsn_ret IN ('FULL', 'HDRS'));
      ALTER TABLE messages ADD COLUMN dsn_envid TEXT;
      ALTER TABLE recipients ADD COLUMN dsn_notify TEXT;
      ALTER TABLE recipients ADD COLUMN dsn_orcpt TEXT;
    `,
  },
  {
    version: 7,
    name: 'multilingual: recipient language preferences',
    sql: `
      CREATE TABLE user_languages (
        address TEXT PRIMARY KEY,
        languages TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    name: 'multilingual: the part each recipient got and why',
    sql: `
      CREATE TABLE language_choices (
        qid TEXT NOT NULL,
        rcpt TEXT NOT NULL,
        mode TEXT NOT NULL,
        part_index INTEGER,
        tags TEXT,
        translation_type TEXT,
        rule TEXT NOT NULL,
        why TEXT NOT NULL,
        preferences TEXT NOT NULL,
        from_mismatch INTEGER NOT NULL DEFAULT 0,
        dkim TEXT,
        decided_at INTEGER NOT NULL,
        PRIMARY KEY (qid, rcpt)
      );
    `,
  },
  {
    version: 8,
    name: 'pod: message and maillog events, dead letters, stream checkpoints',
    sql: `
      CREATE TABLE pod_message_events (
        id INTEGER PRIMARY KEY,
        guid TEXT NOT NULL,
        ts TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        content_sha256 TEXT NOT NULL,
        qid TEXT NOT NULL,
        message_id TEXT,
        sid TEXT,
        envelope_from TEXT,
        disposition TEXT,
        cid TEXT,
        agent TEXT,
        source TEXT NOT NULL,
        event TEXT NOT NULL,
        stored_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX pod_message_events_identity ON pod_message_events (guid, ts_us, content_sha256);
      CREATE INDEX pod_message_events_qid ON pod_message_events (qid);
      CREATE INDEX pod_message_events_message_id ON pod_message_events (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX pod_message_events_ts ON pod_message_events (ts_us);
      CREATE TABLE pod_maillog_events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        content_sha256 TEXT NOT NULL,
        qid TEXT NOT NULL,
        message_id TEXT,
        mail_from TEXT,
        rcpts TEXT,
        relay TEXT,
        stat TEXT,
        dsn TEXT,
        queued_as TEXT,
        mailer TEXT,
        delay TEXT,
        xdelay TEXT,
        nrcpts INTEGER,
        size INTEGER,
        ctladdr TEXT,
        cid TEXT,
        agent TEXT,
        source TEXT NOT NULL,
        event TEXT NOT NULL,
        stored_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX pod_maillog_events_identity ON pod_maillog_events (event_id, ts_us, content_sha256);
      CREATE INDEX pod_maillog_events_qid ON pod_maillog_events (qid);
      CREATE INDEX pod_maillog_events_message_id ON pod_maillog_events (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX pod_maillog_events_queued_as ON pod_maillog_events (queued_as) WHERE queued_as IS NOT NULL;
      CREATE INDEX pod_maillog_events_ts ON pod_maillog_events (ts_us);
      CREATE TABLE pod_dead_letters (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL,
        raw_bytes INTEGER NOT NULL,
        raw_sha256 TEXT NOT NULL,
        raw_truncated INTEGER NOT NULL DEFAULT 0
      );
      CREATE UNIQUE INDEX pod_dead_letters_raw ON pod_dead_letters (raw_sha256);
      CREATE TABLE pod_checkpoints (
        stream TEXT PRIMARY KEY,
        newest_ts TEXT NOT NULL,
        newest_ts_us INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'retention: finished messages by finish time',
    // The pruner walks finished messages oldest first and stops at the cutoff.
    sql: `CREATE INDEX messages_done ON messages (finished_at) WHERE state = 'done';`,
  },
  {
    version: 10,
    name: 'correlation: message keys, upstream links, message origins',
    // Correlation (issue 11; src/store/correlation-store.ts, docs/correlation.md).
    // - message_keys: one row per mailbag message (qid), written when the queue first claims it:
    //   message_id (normalised like pod_*_events.message_id), upstream_qid and upstream_host (the
    //   topmost Received that is not mailbag's own), pp_guid / pp_orig_guid (X-Proofpoint-GUID,
    //   -ORIG-GUID), envelope_from, rcpts (JSON array), client_address, size, received_at (ms, as
    //   messages.received_at), recorded_at (ms).
    // - upstream_links: many-to-many, upstream message <-> mailbag message. upstream_qid is the
    //   upstream filter's queue id (pod_message_events.qid = filter.qid, pod_maillog_events.qid =
    //   the sendmail line's qid); qid is mailbag's. One row per (upstream_qid, qid, via); via says
    //   why: 'queued-as' (a maillog stat=Sent (... queued as QID)), 'received' (the Received id),
    //   'guid' (X-Proofpoint-GUID or -ORIG-GUID = a message event's guid), 'message-id' (same
    //   Message-ID within 2 days; only while neither side has a link of another kind). A row
    //   exists only once both sides are stored.
    // - message_origins: a message mailbag made from another (qid -> origin_qid), kind 'bounce'
    //   (a DSN) or 'imp' (an IMP forward). Multilingual copies keep their message's qid.
    sql: `
      CREATE TABLE message_keys (
        qid TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        message_id TEXT,
        upstream_qid TEXT,
        upstream_host TEXT,
        pp_guid TEXT,
        pp_orig_guid TEXT,
        envelope_from TEXT NOT NULL,
        rcpts TEXT NOT NULL,
        client_address TEXT,
        size INTEGER NOT NULL,
        recorded_at INTEGER NOT NULL
      );
      CREATE INDEX message_keys_message_id ON message_keys (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX message_keys_upstream_qid ON message_keys (upstream_qid) WHERE upstream_qid IS NOT NULL;
      CREATE INDEX message_keys_pp_guid ON message_keys (pp_guid) WHERE pp_guid IS NOT NULL;
      CREATE INDEX message_keys_pp_orig_guid ON message_keys (pp_orig_guid) WHERE pp_orig_guid IS NOT NULL;
      CREATE INDEX message_keys_received_at ON message_keys (received_at);
      CREATE TABLE upstream_links (
        upstream_qid TEXT NOT NULL,
        qid TEXT NOT NULL,
        via TEXT NOT NULL CHECK (via IN ('queued-as', 'received', 'guid', 'message-id')),
        linked_at INTEGER NOT NULL,
        PRIMARY KEY (upstream_qid, qid, via)
      );
      CREATE INDEX upstream_links_qid ON upstream_links (qid);
      CREATE TABLE message_origins (
        qid TEXT PRIMARY KEY,
        origin_qid TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('bounce', 'imp')),
        recorded_at INTEGER NOT NULL
      );
      CREATE INDEX message_origins_origin ON message_origins (origin_qid);
    `,
  },
  {
    version: 11,
    name: 'pod: stream status for `pod status`, archive gaps still to fill',
    sql: `
      CREATE TABLE pod_stream_status (
        stream TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        state_since INTEGER NOT NULL,
        detail TEXT,
        last_error TEXT,
        last_error_at INTEGER,
        received INTEGER NOT NULL,
        stored INTEGER NOT NULL,
        duplicates INTEGER NOT NULL,
        dead_lettered INTEGER NOT NULL,
        last_event_ts TEXT,
        last_event_at INTEGER,
        started_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE pod_gaps (
        id INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        until_ms INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX pod_gaps_stream ON pod_gaps (stream, since_ms);
    `,
  },
  {
    version: 12,
    name: 'pod publisher: message facts and session resume points',
    // Facts a published message event needs that the queue's rows do not keep (session,
    // headers, MIME parts), recorded once per message after its 250 while the spool file
    // exists; seq orders them for live streams. A session's resume point lets a token that
    // reconnects within the hour carry on from where its stream dropped.
    sql: `
      CREATE TABLE pod_message_facts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        qid TEXT NOT NULL UNIQUE,
        recorded_at INTEGER NOT NULL,
        facts TEXT NOT NULL
      );
      CREATE INDEX pod_message_facts_recorded ON pod_message_facts (recorded_at);
      CREATE TABLE pod_publisher_sessions (
        token_id TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('message', 'maillog')),
        dropped_at INTEGER NOT NULL,
        resume_from TEXT NOT NULL,
        PRIMARY KEY (token_id, type)
      );
    `,
  },
  {
    version: 13,
    name: 'imp: the RFC 753 transaction each message accepted over IMP came with',
    // Written in the accept transaction (a message and its tid commit together), so a
    // CANCEL finds the message and a reply can name the tid and trail after a restart.
    sql: `
      CREATE TABLE imp_inbound (
        qid TEXT PRIMARY KEY,
        tid_tn INTEGER NOT NULL,
        tid_ihn INTEGER NOT NULL,
        stamp TEXT NOT NULL,
        peer TEXT
      );
      CREATE INDEX imp_inbound_tid ON imp_inbound (tid_ihn, tid_tn);
    `,
  },
  {
    version: 14,
    name: 'imp: the transaction-number high-water mark per ihn',
    // The shipper reserves tns in blocks and records where the block ends before using
    // it, so a restart resumes past every tn that may still be in the network.
    sql: `
      CREATE TABLE imp_tn_mark (
        ihn INTEGER PRIMARY KEY,
        next_tn INTEGER NOT NULL CHECK (next_tn BETWEEN 0 AND 65535),
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 15,
    name: 'report: time indexes, triggered PoD rules',
    // Only a `filter.actions` array of objects yields rows; any other shape yields none rather
    // than failing the batch that stores the event.
    // `mailbag report` reads time windows: messages by receipt, finished recipients by the time
    // they finished, attempts, language decisions and dead letters by time. The rules a PoD
    // message event triggered (filter.actions[]) are kept one row each by a trigger, so a
    // 30-day report counts rows instead of parsing every event's JSON; the INSERT ... SELECT
    // fills them in for events stored before this migration.
    sql: `
      CREATE INDEX messages_received ON messages (received_at);
      CREATE INDEX recipients_finished ON recipients (updated_at, state, nexthop) WHERE state IN ('delivered', 'failed');
      CREATE INDEX attempts_started ON attempts (started_at);
      CREATE INDEX language_choices_decided ON language_choices (decided_at);
      CREATE INDEX pod_dead_letters_received ON pod_dead_letters (received_at);
      CREATE INDEX pod_message_events_ts_disposition ON pod_message_events (ts_us, disposition);
      CREATE INDEX pod_maillog_events_ts_queued_as ON pod_maillog_events (ts_us, qid, queued_as) WHERE queued_as IS NOT NULL;
      CREATE TABLE pod_message_rules (
        event_id INTEGER NOT NULL REFERENCES pod_message_events(id) ON DELETE CASCADE,
        ts_us INTEGER NOT NULL,
        module TEXT NOT NULL,
        rule TEXT NOT NULL
      );
      CREATE INDEX pod_message_rules_ts ON pod_message_rules (ts_us, module, rule);
      CREATE INDEX pod_message_rules_event ON pod_message_rules (event_id);
      CREATE TRIGGER pod_message_rules_insert AFTER INSERT ON pod_message_events BEGIN
        INSERT INTO pod_message_rules (event_id, ts_us, module, rule)
          SELECT new.id, new.ts_us, r.module, r.rule FROM (
            SELECT CASE WHEN a.type = 'object' THEN COALESCE(json_extract(a.value, '$.module'), '') END AS module,
              CASE WHEN a.type = 'object' THEN json_extract(a.value, '$.rule') END AS rule
            FROM json_each(CASE WHEN json_valid(new.event) THEN new.event ELSE '{}' END, '$.filter.actions') AS a) AS r
          WHERE typeof(r.rule) = 'text';
      END;
      INSERT INTO pod_message_rules (event_id, ts_us, module, rule)
        SELECT r.id, r.ts_us, r.module, r.rule FROM (
          SELECT e.id, e.ts_us, CASE WHEN a.type = 'object' THEN COALESCE(json_extract(a.value, '$.module'), '') END AS module,
            CASE WHEN a.type = 'object' THEN json_extract(a.value, '$.rule') END AS rule
          FROM pod_message_events AS e, json_each(CASE WHEN json_valid(e.event) THEN e.event ELSE '{}' END, '$.filter.actions') AS a) AS r
        WHERE typeof(r.rule) = 'text';
    `,
  },
  {
    version: 20,
    name: 'imp: end-to-end ACKNOWLEDGEs: messages awaiting theirs, replies to pass back',
    // imp_awaiting: a message of ours that a relay accepted for forwarding (ACKNOWLEDGE yes
    // FORWARD), kept until the destination's ACKNOWLEDGE comes back by its tid; the header
    // section is kept for the bounce, since the spool file goes once the hop took it.
    // imp_reply_outbox: ACKNOWLEDGEs this MPM passes back towards their originating MPM
    // (RFC 753 Example 2 view 4), durable until that MPM took them, then kept as the record.
    // imp_early_answer: a destination's answer that came back before the hop's own answer
    // (a relay may ship on while it is still accepting the rest of a large bag), kept for it.
    sql: `
      CREATE TABLE imp_awaiting (
        tid_ihn INTEGER NOT NULL,
        tid_tn INTEGER NOT NULL,
        qid TEXT NOT NULL,
        rcpt TEXT NOT NULL,
        peer TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        dsn_notify TEXT,
        dsn_orcpt TEXT,
        dsn_envid TEXT,
        headers BLOB NOT NULL,
        hop_reply TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        answer INTEGER CHECK (answer IN (0, 1)),
        final_reply TEXT,
        answered_at INTEGER,
        bounce_qid TEXT,
        PRIMARY KEY (tid_ihn, tid_tn)
      );
      CREATE INDEX imp_awaiting_qid ON imp_awaiting (qid);
      CREATE TABLE imp_reply_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_ihn INTEGER NOT NULL,
        tid_ihn INTEGER NOT NULL,
        tid_tn INTEGER NOT NULL,
        qid TEXT,
        message BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        sent_at INTEGER
      );
      CREATE INDEX imp_reply_outbox_due ON imp_reply_outbox (next_attempt_at) WHERE state = 'queued';
      CREATE TABLE imp_early_answer (
        tid_ihn INTEGER NOT NULL,
        tid_tn INTEGER NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed')),
        reply TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (tid_ihn, tid_tn)
      );
    `,
  },
  {
    version: 16,
    name: 'report: hourly counters kept by triggers, filled for existing rows',
    // A 30-day report reads about 720 counter rows per figure instead of every row of the
    // window (src/store/report-counters-sql.ts, docs/report.md "Counters").
    sql: REPORT_COUNTERS_SQL,
  },
  {
    version: 18,
    name: 'pod: message event rules written by the store, not by a trigger',
    // The trigger of migration 15 parsed every stored event's JSON again (twice) inside
    // SQLite: about half the cost of storing a message event. The store writes the rows
    // itself from the event it has already parsed (PodStore.storeBatch); rows already
    // written stay.
    sql: `
      DROP TRIGGER IF EXISTS pod_message_rules_insert;
    `,
  },
  {
    version: 26,
    name: 'report: rule counters kept from pod_message_rules, not from the event JSON',
    sql: POD_RULE_COUNTERS_SQL,
  },
  {
    version: 27,
    name: 'correlation: drop message_keys_received_at, which no query reads',
    // Every look-up of message_keys goes by qid, message_id, upstream_qid or a GUID (their
    // indexes); received_at only orders or bounds those few rows. The index cost a page per
    // queue recording transaction and an entry per message to write and to prune.
    sql: `DROP INDEX IF EXISTS message_keys_received_at;`,
  },
  {
    version: 28,
    name: 'pod: drop pod_message_events_ts, the leading column of pod_message_events_ts_disposition',
    // Every read by time (the retention pass, the report's partial hours) uses
    // (ts_us, disposition) as well; the narrower index was one more B-tree written per
    // stored message event and pruned per removed one.
    sql: `DROP INDEX IF EXISTS pod_message_events_ts;`,
  },
  {
    version: 29,
    name: 'report: delivered counts read from the latency counters, one upsert per delivery instead of two',
    sql: REPORT_DELIVERED_COUNTERS_SQL,
  },
];

/** The schema version this code expects: the highest of the list. */
export function latestVersion(list: readonly Migration[] = migrations): number {
  return list.reduce((max, m) => Math.max(max, m.version), 0);
}

/**
 * A store's schema against a list of migrations. Versions are reserved per feature and
 * merged in any order, so a store can lack a version lower than its highest one: what
 * counts is the set applied, not only the maximum.
 */
export interface SchemaState {
  /** Highest version applied (0: no schema yet). */
  version: number;
  /** Versions of the list the store lacks, in list order. */
  missing: number[];
  /** Versions applied that the list does not know (a newer mailbag wrote them). */
  unknown: number[];
}

function appliedVersions(db: Database): number[] {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!table) return [];
  return (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
}

/** Reads only. */
export function schemaState(db: Database, list: readonly Migration[] = migrations): SchemaState {
  const applied = appliedVersions(db);
  const known = new Set(list.map((m) => m.version));
  const done = new Set(applied);
  return {
    version: applied.length ? applied[applied.length - 1]! : 0,
    missing: list.map((m) => m.version).filter((v) => !done.has(v)),
    unknown: applied.filter((v) => !known.has(v)),
  };
}

/** The store's highest schema version (0: no schema yet). Reads only. */
export function schemaVersion(db: Database): number {
  return schemaState(db).version;
}

/** `9`, `9 (without 5)`, `9 (with 6, unknown here)`: the store's schema in one phrase. */
export function describeSchema(state: SchemaState): string {
  // A newer store is described by what this code does not know; an older one by its gaps.
  const strays = state.unknown.filter((v) => v < state.version);
  const gaps = state.missing.filter((v) => v < state.version);
  const note = state.unknown.length ? (strays.length ? `with ${strays.join(', ')}, unknown here` : '') : gaps.length ? `without ${gaps.join(', ')}` : '';
  return note ? `${state.version} (${note})` : String(state.version);
}

function newerThanCode(db: Database, state: SchemaState, latest: number): Error {
  return Object.assign(
    new Error(`store ${db.name} is at schema ${describeSchema(state)}, newer than this mailbag (${latest}): use the mailbag version that wrote it`),
    { code: 'ERR_MAILBAG_STORE_VERSION' },
  );
}

/**
 * Applies every migration the store has not recorded, in array order (versions are
 * reserved per change and may be appended out of numeric order, so "applied" is a set
 * of versions, not a high-water mark), each in its own BEGIN IMMEDIATE transaction that
 * reads the applied versions again once it holds the write lock: when two processes
 * migrate one file at once, the second waits for the first (busy_timeout) and then
 * finds the work done, instead of applying a migration twice. A store that records a
 * version this code does not know is newer than this mailbag: refused untouched.
 */
export function migrate(db: Database, list: readonly Migration[] = migrations): number {
  const latest = latestVersion(list);
  const byVersion = new Map(list.map((m) => [m.version, m]));
  for (;;) {
    const step = db
      .transaction(() => {
        const state = schemaState(db, list);
        if (state.unknown.length) throw newerThanCode(db, state, latest);
        const next = byVersion.get(state.missing[0] ?? -1);
        if (!next) return undefined;
        db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
        db.exec(next.sql);
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(next.version, next.name, Date.now());
        return next;
      })
      .immediate();
    if (!step) return latest;
  }
}
