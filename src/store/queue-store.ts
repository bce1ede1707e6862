import { CorrelationStore, type MessageKeysInput, type OriginKind } from './correlation-store.js';
import type { Statement } from 'better-sqlite3';
import { durably, openDurableWriter, openNoWaitWriter, writeTransaction, type SqliteDatabase, type WriteTransactionOptions } from './db.js';
import { INSERT_POD_FACTS_SQL } from './pod-publisher-store.js';
import { MESSAGE_SELECT, messageRowOf, RECIPIENT_SELECT, recipientRowOf, RowStatement } from './queue-rows.js';

export type RecipientState = 'queued' | 'deferred' | 'delivered' | 'failed' | 'deleted';
export type AttemptOutcome = 'delivered' | 'deferred' | 'failed' | 'partial';

/** MAIL FROM parameters the client gave (RFC 6152, 6531, 1870, 3461); absent = not given. */
export interface MessageParams {
  bodyType?: '7bit' | '8bitmime' | undefined;
  smtpUtf8?: boolean | undefined;
  /** SIZE= as declared by the client (the spooled size is `size`). */
  declaredSize?: number | undefined;
  dsnRet?: 'FULL' | 'HDRS' | undefined;
  /** ENVID, decoded from xtext. */
  dsnEnvid?: string | undefined;
}

export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** RCPT TO parameters (RFC 3461); absent = not given. */
export interface RecipientParams {
  notify?: readonly DsnNotify[] | undefined;
  /** ORCPT as `addr-type;address`, decoded from xtext. */
  orcpt?: string | undefined;
}

export interface NewMessage {
  qid: string;
  receivedAt: number;
  envelopeFrom: string;
  size: number;
  spoolPath: string;
  /** Where the message starts in its spool file (after the envelope header). */
  spoolOffset: number;
  /** sha256 (hex) of the message octets, computed while they were spooled. */
  sha256: string;
  clientAddress?: string | undefined;
  clientHostname?: string | undefined;
  helo?: string | undefined;
  authUser?: string | undefined;
  recipients: string[];
  params?: MessageParams | undefined;
  /** Parameters per recipient address (as in `recipients`). */
  recipientParams?: Readonly<Record<string, RecipientParams>> | undefined;
  /** A message mailbag made from another (a bounce): recorded with it, for `trace`. */
  origin?: { qid: string; kind: OriginKind } | undefined;
  /** For a message accepted over IMP: the RFC 753 tid and stamp it came with. */
  imp?: ImpOrigin | undefined;
  /**
   * The PoD publisher's facts of the message (JSON the pod layer defines), recorded in the
   * same commit as the message, so they exist before the queue can claim it.
   */
  podFacts?: { recordedAt: number; facts: string } | undefined;
}

/** The RFC 753 transaction a message came with (its DELIVER's tid and stamp). */
export interface ImpOrigin {
  tid: { tn: number; ihn: number };
  /** The stamp as received (before this MPM's ihn). */
  stamp: readonly number[];
  /** The peer's address. */
  peer?: string | undefined;
}

export interface MessageRow {
  qid: string;
  received_at: number;
  envelope_from: string;
  size: number;
  spool_path: string;
  client_address: string | null;
  client_hostname: string | null;
  helo: string | null;
  auth_user: string | null;
  state: 'queued' | 'done';
  finished_at: number | null;
  spool_offset: number;
  sha256: string | null;
  /** Set while the message is held (its spool file failed the check before delivery). */
  held_at: number | null;
  hold_reason: string | null;
  body_type: '7bit' | '8bitmime' | null;
  smtputf8: 0 | 1;
  declared_size: number | null;
  dsn_ret: 'FULL' | 'HDRS' | null;
  dsn_envid: string | null;
}

/**
 * A message its round (or the CLI) just finished: its qid and every spool file it had (the
 * original and its recorded rewrite copies), read in the transaction that finished it, for
 * the caller to remove once that transaction committed. Only these: the finishing UPDATE
 * returns them for every message on the queue's hot path, and nothing reads more.
 */
export interface FinishedMessage {
  qid: string;
  spoolFiles: readonly string[];
}

export interface RecipientRow {
  qid: string;
  rcpt: string;
  state: RecipientState;
  next_attempt_at: number;
  attempts: number;
  last_reply: string | null;
  nexthop: string | null;
  inflight_until: number | null;
  delivered_as: string | null;
  updated_at: number;
  /** Bumped by `queue retry`: an attempt claimed under an older generation leaves the recipient due. */
  retry_gen: number;
  /** 1 once the rewrite step decided this recipient's bytes (copy_path null: the original). */
  rewritten: number;
  /** The spooled rewrite copy this recipient gets, if its bytes differ from the original. */
  copy_path: string | null;
  /** The copy's message octets, where they start in its file, and their sha256 (checked before delivery). */
  copy_size: number | null;
  copy_offset: number | null;
  copy_sha256: string | null;
  /** NOTIFY values joined with commas (`SUCCESS,FAILURE`, `NEVER`); null = not given. */
  dsn_notify: string | null;
  dsn_orcpt: string | null;
}

export interface AttemptRow {
  id: number;
  qid: string;
  nexthop: string;
  started_at: number;
  duration_ms: number;
  reply: string | null;
  outcome: AttemptOutcome;
  /** JSON array of `{ rcpt, state, reply, imp? }` (imp: an ImpHop). */
  recipients: string;
}

/** A recipient's state after an attempt, as the queue decided it. */
export interface RecipientUpdate {
  rcpt: string;
  state: 'delivered' | 'deferred' | 'failed';
  reply: string;
  nextAttemptAt?: number;
  deliveredAs?: string;
  /**
   * The recipient's retry generation when the attempt claimed it: a `queue retry` since
   * then wins over a deferred recipient's next attempt time.
   */
  claimedGen?: number;
  /** The recipient's IMP hop when the next hop was `imp://` and its DELIVER was shipped. */
  imp?: ImpHop;
}

/**
 * One recipient's DELIVER shipped to a peer MPM and what came back (RFC 753 section 3.4),
 * kept in its attempt's `recipients` JSON for `mailbag trace`. ihns as unsigned numbers.
 */
export interface ImpHop {
  /** The `imp://host:port` next hop. */
  peer: string;
  tid: { tn: number; ihn: number };
  /** The bag it travelled in: an id (random, per bag), its messages and octets on the wire. */
  bag: { id: string; messages: number; octets: number; compressed: boolean };
  /** When the bag was written to the connection (ms). */
  shippedAt: number;
  /** The ACKNOWLEDGE; null when none came (the connection ended or went silent first). */
  acknowledge: ImpAcknowledgeRecord | null;
}

export interface ImpAcknowledgeRecord {
  answer: boolean;
  reasons: string[];
  howDelivered: string[];
  /** The stamp that reached the acknowledging MPM plus its ihn. */
  trail: number[];
  /** The reply's error-list, when it names an error (class not 0). */
  error?: { errorClass: number; errorString: string };
}

/** The bytes the rewrite step decided for one recipient (copyPath undefined: the original). */
export interface RecipientCopy {
  rcpt: string;
  copy?: { path: string; size: number; offset: number; sha256: string } | undefined;
}

export interface AttemptRecord {
  qid: string;
  nexthop: string;
  startedAt: number;
  durationMs: number;
  reply: string;
  outcome: AttemptOutcome;
  recipients: RecipientUpdate[];
}

/** A message claimed for an attempt round: its row and the recipients leased to the round. */
export interface ClaimedMessage {
  message: MessageRow;
  recipients: RecipientRow[];
}

/** The claims `recordRounds` makes in its transaction, for the queue whose rounds it records. */
export interface ClaimNext {
  /** Inside the transaction, the rounds recorded: the messages to claim and the lease (none: claim nothing). */
  pick(now: number): { qids: readonly string[]; until: number } | undefined;
  /** After the commit: the messages claimed (those with nothing due left out). Must not throw. */
  claimed(claims: ClaimedMessage[]): void;
  /**
   * The picked messages were not claimed: the claim failed (`roundsRecorded`: in its savepoint,
   * the rounds are recorded all the same) or the whole transaction did. They are in the store.
   */
  notClaimed(err: unknown, roundsRecorded: boolean): void;
  /**
   * Asked before the transaction begins: messages accepted on another thread to commit in
   * it (before the claims, which may take them), durably. None: the commit is not durable.
   */
  accepted?(): AcceptedToCommit | undefined;
}

/** Accepted messages committed by a transaction of the queue's (`ClaimNext.accepted`). */
export interface AcceptedToCommit {
  rows: readonly NewMessage[];
  /** After the commit, which was durable (synchronous=FULL), and after `ClaimNext.claimed`. Must not throw. */
  committed(): void;
  /** Not committed: the inserts failed in their savepoint (`whole` false: the rounds are recorded) or the whole transaction did. */
  notCommitted(err: unknown, whole: boolean): void;
}

/** One message's attempt round to record (`recordRounds`). */
export interface RoundToRecord {
  qid: string;
  attempts: readonly AttemptRecord[];
  leased: readonly string[];
  /** The message's correlation keys, recorded in the same transaction (its first round). */
  keys?: MessageKeysInput | undefined;
}

export interface QueueSummary {
  qid: string;
  received_at: number;
  envelope_from: string;
  size: number;
  pending: number;
  delivered: number;
  failed: number;
  next_attempt_at: number | null;
  hold_reason: string | null;
}

/** Finished messages past the retention cutoff, oldest first: walks the `messages_done` index. */
export const PRUNE_CANDIDATES_SQL = `SELECT qid FROM messages
  WHERE state = 'done' AND finished_at < @cutoff ORDER BY finished_at LIMIT @limit`;

/**
 * next_attempt_at of a held message's open recipients: never due, so the queue leaves
 * them alone, without a state of their own (which the recipients table's CHECK does
 * not allow). Releasing the hold makes them due again.
 */
export const HELD_UNTIL = 8_640_000_000_000_000;

/** The parts of the queue's transactions the store may refuse without failing the rest (`QueueStore.refusable`). */
type RefusablePart = 'keys' | 'accepted' | 'claims';

/** A part of a transaction the store refused while the transaction stayed open: it is rolled back whole and run again without it. */
class PartRefused extends Error {
  constructor(
    readonly part: RefusablePart,
    readonly refusal: unknown,
  ) {
    super(`the store refused the transaction's ${part}`);
  }
}

/**
 * The statements that insert an accepted message, on the store's own connection or on
 * the accept path's (`openDurableWriter`). The IMP and PoD ones are prepared on first
 * use: a CLI may open a store from before their tables.
 */
export class MessageInserter {
  private readonly insertMessage: Statement;
  private readonly insertMessageIfNew: Statement;
  private readonly insertRecipient: Statement;
  private readonly insertOrigin: Statement;
  private insertImp: Statement | undefined;
  private insertPodFacts: Statement | undefined;

  constructor(readonly db: SqliteDatabase) {
    const insertMessage = `INSERT INTO messages
      (qid, received_at, envelope_from, size, spool_path, spool_offset, sha256, client_address, client_hostname, helo, auth_user,
       body_type, smtputf8, declared_size, dsn_ret, dsn_envid)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.insertMessage = db.prepare(insertMessage);
    this.insertMessageIfNew = db.prepare(`${insertMessage} ON CONFLICT (qid) DO NOTHING`);
    this.insertRecipient = db.prepare(`INSERT OR IGNORE INTO recipients (qid, rcpt, next_attempt_at, updated_at, dsn_notify, dsn_orcpt, inflight_until)
      VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.insertOrigin = db.prepare('INSERT INTO message_origins (qid, origin_qid, kind, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT (qid) DO NOTHING');
  }

  /**
   * `insertOne` (ifNew) with the recipients leased until `until`, for a round of the queue
   * whose transaction this is: the rows a claim would read are built from what was
   * inserted (a test holds them to the store's), so the claim reads and updates nothing.
   * Undefined when the store has the qid already (claimed the usual way then).
   */
  insertClaimed(m: NewMessage, until: number): ClaimedMessage | undefined {
    const params = this.messageParams(m);
    if (this.insertMessageIfNew.run(...params).changes === 0) return undefined;
    this.insertExtras(m);
    const recipients: RecipientRow[] = [];
    this.insertRecipients(m, until, recipients);
    // in the order a claim reads them (ORDER BY rcpt: SQLite compares the UTF-8 bytes)
    if (recipients.length > 1) recipients.sort((a, b) => Buffer.compare(Buffer.from(a.rcpt), Buffer.from(b.rcpt)));
    return { message: newMessageRow(params), recipients };
  }

  /**
   * Inside a write transaction: the message row, its recipients and what comes with it.
   * `ifNew`: nothing when the store has the qid already (a commit whose outcome its
   * caller could not learn, made again); false then.
   */
  insertOne(m: NewMessage, ifNew = false): boolean {
    const inserted = (ifNew ? this.insertMessageIfNew : this.insertMessage).run(...this.messageParams(m));
    if (inserted.changes === 0) return false;
    this.insertExtras(m);
    this.insertRecipients(m, null);
    return true;
  }

  /**
   * The message's recipients, leased until `until` (null: not leased); `rows` gets the row
   * of each one inserted (an address listed twice is inserted once).
   */
  private insertRecipients(m: NewMessage, until: number | null, rows?: RecipientRow[]): void {
    for (const rcpt of m.recipients) {
      const p = m.recipientParams?.[rcpt];
      const notify = p?.notify?.join(',') ?? null;
      const orcpt = p?.orcpt ?? null;
      const { changes } = this.insertRecipient.run(m.qid, rcpt, m.receivedAt, m.receivedAt, notify, orcpt, until);
      if (changes && rows && until !== null) rows.push(newRecipientRow(m.qid, rcpt, m.receivedAt, until, notify, orcpt));
    }
  }

  /** The insert's parameters, in its column order (positional: binding by name looks each one up). */
  private messageParams(m: NewMessage): MessageInsertParams {
    return [
      m.qid,
      m.receivedAt,
      m.envelopeFrom,
      m.size,
      m.spoolPath,
      m.spoolOffset,
      m.sha256,
      m.clientAddress ?? null,
      m.clientHostname ?? null,
      m.helo ?? null,
      m.authUser ?? null,
      m.params?.bodyType ?? null,
      m.params?.smtpUtf8 ? 1 : 0,
      m.params?.declaredSize ?? null,
      m.params?.dsnRet ?? null,
      m.params?.dsnEnvid ?? null,
    ];
  }

  /** What comes with a message row: its origin, IMP transaction and PoD facts. */
  private insertExtras(m: NewMessage): void {
    if (m.origin) this.insertOrigin.run(m.qid, m.origin.qid, m.origin.kind, m.receivedAt);
    if (m.imp) {
      this.insertImp ??= this.db.prepare('INSERT INTO imp_inbound (qid, tid_tn, tid_ihn, stamp, peer) VALUES (?, ?, ?, ?, ?)');
      this.insertImp.run(m.qid, m.imp.tid.tn, m.imp.tid.ihn, JSON.stringify(m.imp.stamp), m.imp.peer ?? null);
    }
    if (m.podFacts) (this.insertPodFacts ??= this.db.prepare(INSERT_POD_FACTS_SQL)).run(m.qid, m.podFacts.recordedAt, m.podFacts.facts);
  }
}

/**
 * Delivery-queue persistence: every statement prepared once, every multi-row change in
 * one transaction. Pure data access; the policy (backoff, expiry, bounces) is the queue's.
 */
export class QueueStore {
  private readonly s;

  /** `correlation`: where `recordRounds` records the keys a round carries. */
  constructor(
    readonly db: SqliteDatabase,
    private readonly correlation?: CorrelationStore,
  ) {
    this.inserter = new MessageInserter(db);
    this.s = {
      maxQid: db.prepare('SELECT MAX(qid) AS qid FROM messages'),
      clearLeases: db.prepare('UPDATE recipients SET inflight_until = NULL WHERE inflight_until IS NOT NULL'),
      // Walks the partial index in due order and stops early: no GROUP BY over the backlog.
      dueRows: db.prepare(`SELECT qid FROM recipients
        WHERE state IN ('queued', 'deferred') AND next_attempt_at <= @now
          AND (inflight_until IS NULL OR inflight_until < @now)
        ORDER BY next_attempt_at LIMIT @limit`),
      nextDue: db.prepare(`SELECT MIN(next_attempt_at) AS due FROM recipients
        WHERE state IN ('queued', 'deferred') AND (inflight_until IS NULL OR inflight_until < @now)`),
      message: new RowStatement(db.prepare(`SELECT ${MESSAGE_SELECT} FROM messages WHERE qid = ?`), messageRowOf),
      dueRecipients: new RowStatement(
        db.prepare(`SELECT ${RECIPIENT_SELECT} FROM recipients
        WHERE qid = ? AND state IN ('queued', 'deferred') AND next_attempt_at <= ?
          AND (inflight_until IS NULL OR inflight_until < ?) ORDER BY rcpt`),
        recipientRowOf,
      ),
      lease: db.prepare('UPDATE recipients SET inflight_until = ? WHERE qid = ? AND rcpt = ?'),
      release: db.prepare('UPDATE recipients SET inflight_until = NULL WHERE qid = ? AND rcpt = ?'),
      postpone: db.prepare(`UPDATE recipients SET inflight_until = NULL, next_attempt_at = ?, last_reply = ?, updated_at = ?
        WHERE qid = ? AND rcpt = ? AND state IN ('queued', 'deferred')`),
      insertAttempt: db.prepare(`INSERT INTO attempts (qid, nexthop, started_at, duration_ms, reply, outcome, recipients)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      // A retry requested while the attempt ran (retry_gen moved on) keeps the recipient due.
      // anonymous parameters (`recordOne` passes a repeated one twice): better-sqlite3 binds
      // named ones, ?NNN included, by looking each up in an object
      updateRecipient: db.prepare(`UPDATE recipients SET state = ?, last_reply = ?, nexthop = ?,
          next_attempt_at = CASE WHEN ? IS NOT NULL AND retry_gen <> ?
            THEN MIN(next_attempt_at, COALESCE(?, next_attempt_at))
            ELSE COALESCE(?, next_attempt_at) END,
          attempts = attempts + 1,
          delivered_as = COALESCE(?, delivered_as), inflight_until = NULL, updated_at = ?
        WHERE qid = ? AND rcpt = ? AND state IN ('queued', 'deferred')`),
      setDeliveredAs: db.prepare('UPDATE recipients SET delivered_as = ? WHERE qid = ? AND rcpt = ?'),
      recipientAttempts: db.prepare('SELECT attempts FROM recipients WHERE qid = ? AND rcpt = ?'),
      extendLease: db.prepare(`UPDATE recipients SET inflight_until = ? WHERE qid = ? AND rcpt = ? AND inflight_until IS NOT NULL`),
      setCopy: db.prepare('UPDATE recipients SET rewritten = 1, copy_path = ?, copy_size = ?, copy_offset = ?, copy_sha256 = ? WHERE qid = ? AND rcpt = ?'),
      copyPaths: db.prepare('SELECT DISTINCT copy_path FROM recipients WHERE qid = ? AND copy_path IS NOT NULL'),
      openCount: db
        .prepare(`SELECT
          SUM(state IN ('queued', 'deferred')),
          SUM(inflight_until IS NOT NULL AND inflight_until >= ?),
          SUM(copy_path IS NOT NULL)
        FROM recipients WHERE qid = ?`)
        .raw(true),
      // the finished message's spool path comes back from the UPDATE itself: no second look-up under the write lock
      finish: db.prepare(`UPDATE messages SET state = 'done', finished_at = ? WHERE qid = ? AND state = 'queued' RETURNING spool_path`).pluck(),
      recipients: new RowStatement(db.prepare(`SELECT ${RECIPIENT_SELECT} FROM recipients WHERE qid = ? ORDER BY rcpt`), recipientRowOf),
      attempts: db.prepare('SELECT * FROM attempts WHERE qid = ? ORDER BY id'),
      list: db.prepare(`SELECT m.qid, m.received_at, m.envelope_from, m.size, m.hold_reason,
          SUM(r.state IN ('queued', 'deferred')) AS pending,
          SUM(r.state = 'delivered') AS delivered,
          SUM(r.state = 'failed') AS failed,
          MIN(CASE WHEN r.state IN ('queued', 'deferred') THEN r.next_attempt_at END) AS next_attempt_at
        FROM messages m JOIN recipients r ON r.qid = m.qid
        WHERE m.state = 'queued' GROUP BY m.qid ORDER BY m.qid`),
      retry: db.prepare(`UPDATE recipients SET next_attempt_at = ?, retry_gen = retry_gen + 1, updated_at = ?
        WHERE qid = ? AND state IN ('queued', 'deferred')`),
      markDeleted: db.prepare(`UPDATE recipients SET state = 'deleted', last_reply = 'deleted by operator', updated_at = ?
        WHERE qid = ? AND state IN ('queued', 'deferred')`),
      hold: db.prepare('UPDATE messages SET held_at = ?, hold_reason = ? WHERE qid = ? AND state = \'queued\''),
      holdRecipients: db.prepare(`UPDATE recipients SET next_attempt_at = ${HELD_UNTIL}, inflight_until = NULL, updated_at = ?
        WHERE qid = ? AND state IN ('queued', 'deferred')`),
      unhold: db.prepare('UPDATE messages SET held_at = NULL, hold_reason = NULL WHERE qid = ? AND held_at IS NOT NULL'),
      unholdRecipients: db.prepare(`UPDATE recipients SET next_attempt_at = ?, updated_at = ?
        WHERE qid = ? AND state IN ('queued', 'deferred') AND next_attempt_at = ${HELD_UNTIL}`),
      depth: db.prepare(`SELECT COUNT(*) AS n FROM recipients WHERE state IN ('queued', 'deferred')`),
      pruneCandidates: db.prepare(PRUNE_CANDIDATES_SQL),
      pruneAttempts: db.prepare('DELETE FROM attempts WHERE qid = ?'),
      pruneRecipients: db.prepare('DELETE FROM recipients WHERE qid = ?'),
      pruneMessage: db.prepare("DELETE FROM messages WHERE qid = ? AND state = 'done'"),

    };
  }

  /** The accept path: message row and every recipient commit together, durably, or not at all. */
  insertMessage(m: NewMessage): void {
    this.insertMessages([m]);
  }

  /**
   * Group commit: several accepted messages in one synchronous=FULL transaction, so
   * concurrent sessions share one fsync. `waitForLock: false` (the accept path on the
   * SMTP thread): on a connection of its own (`openDurableWriter`), which throws
   * SQLITE_BUSY at once when another connection holds the write lock.
   */
  insertMessages(batch: readonly NewMessage[], opts: { waitForLock?: boolean; ifNew?: boolean } = {}): void {
    const ifNew = opts.ifNew ?? false;
    if (opts.waitForLock === false && !this.db.inTransaction) {
      const writer = this.durableWriter();
      if (writer) {
        // not waiting: a busy BEGIN is expected under load and retried, so it is thrown
        // without a stack trace (most of its cost), as for every no-wait transaction
        writeTransaction(
          writer.db,
          () => {
            for (const m of batch) writer.insertOne(m, ifNew);
          },
          { waitForLock: false },
        );
        return;
      }
    }
    durably(this.db, () => {
      for (const m of batch) this.inserter.insertOne(m, ifNew);
    });
  }

  /**
   * Messages the accept path handed to the queue, inserted on the queue's connection in
   * one synchronous=FULL transaction (as `insertMessages`), with the queue's next claims
   * (`claim`: those messages among them) in the same one. One connection then writes
   * the whole hot path: no commit of another connection drops this one's page cache
   * before each transaction, and a new message needs no claim transaction of its own.
   * Idempotent (`insertOne`'s `ifNew`): the accept path commits on its own connection
   * when it cannot learn whether this one did. A claim the store refuses never costs the
   * messages their commit (`claimRefused`, after it).
   */
  insertAndClaim(
    batch: readonly NewMessage[],
    claim: { qids: readonly string[]; until: number } | undefined,
    now: number,
    claimRefused: (err: unknown) => void,
    opts?: WriteTransactionOptions,
  ): ClaimedMessage[] {
    const twin = this.noWaitFor(opts);
    if (twin) return twin.insertAndClaim(batch, claim, now, claimRefused);
    const refused = new Map<RefusablePart, unknown>();
    const claimed = this.untilCommitted(refused, () =>
      durably(this.db, () => {
        const inserted = this.insertBatchIn(batch, claim);
        return claim ? this.claimRestIn(claim, inserted, now, refused) : [];
      }),
    );
    if (refused.has('claims')) claimRefused(refused.get('claims'));
    return claimed;
  }

  /** Accepted messages: those `claim` names are inserted leased (`insertClaimed`), and returned by qid. */
  private insertBatchIn(batch: readonly NewMessage[], claim: { qids: readonly string[]; until: number } | undefined): Map<string, ClaimedMessage> {
    const claimed = new Map<string, ClaimedMessage>();
    const wanted = new Set(claim?.qids);
    for (const m of batch) {
      if (!wanted.has(m.qid)) {
        this.inserter.insertOne(m, true);
        continue;
      }
      const c = this.inserter.insertClaimed(m, claim!.until);
      if (c) claimed.set(m.qid, c);
    }
    return claimed;
  }

  /**
   * The claims of `want`: those inserted leased already, and the rest claimed here unless
   * the store refused them in an earlier try of this transaction (`refused`).
   */
  private claimRestIn(want: { qids: readonly string[]; until: number }, inserted: Map<string, ClaimedMessage>, now: number, refused: ReadonlyMap<RefusablePart, unknown>): ClaimedMessage[] {
    const claims = [...inserted.values()];
    const rest = want.qids.filter((q) => !inserted.has(q));
    if (rest.length && !refused.has('claims')) claims.push(...this.refusable('claims', () => this.claimManyIn(rest, now, want.until)));
    return claims;
  }

  /**
   * The parts of the queue's transactions that must not cost the rest its commit when the
   * store refuses them (a constraint, a trigger's error) run in no savepoint: a savepoint
   * copies every page it changes to a sub-journal first, which cost the queue's connection
   * as much as the statements themselves. Instead a refusal that left the transaction open
   * ends it (`PartRefused`, rolled back whole) and `untilCommitted` runs it again without
   * that part. An error that ended the transaction itself (disk full, I/O) is thrown as is.
   */
  private refusable<T>(part: RefusablePart, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!this.db.inTransaction) throw err;
      throw new PartRefused(part, err);
    }
  }

  /** Runs `transaction` until it commits, each refused part recorded in `refused` and left out of the next try. */
  private untilCommitted<T>(refused: Map<RefusablePart, unknown>, transaction: () => T): T {
    for (;;) {
      try {
        return transaction();
      } catch (err) {
        if (!(err instanceof PartRefused) || refused.has(err.part)) throw err;
        refused.set(err.part, err.refusal);
      }
    }
  }

  private readonly inserter: MessageInserter;
  private writer: MessageInserter | undefined;

  /**
   * The accept path's own connection, opened on first use (the group commit opens it when
   * it is built, so a store it cannot open stops the start-up rather than the first
   * accept); none for an in-memory store, nor once the store is closed (a late commit then
   * fails on the closed connection instead of opening one nobody closes).
   */
  durableWriter(): MessageInserter | undefined {
    if (this.writer || this.db.memory || !this.db.name || !this.db.open) return this.writer;
    return (this.writer = new MessageInserter(openDurableWriter(this.db.name)));
  }

  /** undefined: not opened yet; null: none for this store (in memory, closed, or this is the twin). */
  private twin: QueueStore | null | undefined;

  /**
   * The no-wait transactions' own connection (`openNoWaitWriter`), with every statement of
   * this store prepared on it, opened on first use: `waitForLock: false` there is a plain
   * BEGIN IMMEDIATE, with no busy_timeout switched around it. None for an in-memory store
   * (the PRAGMA switch is used there), nor once the store is closed, nor inside a
   * transaction of this connection (its own lock would make the other's BEGIN busy).
   */
  private noWaitTwin(): QueueStore | undefined {
    if (this.twin !== undefined) return this.twin !== null && !this.db.inTransaction ? this.twin : undefined;
    if (this.db.memory || !this.db.name) {
      this.twin = null;
      return undefined;
    }
    if (!this.db.open || this.db.inTransaction) return undefined;
    const db = openNoWaitWriter(this.db.name);
    try {
      const twin = new QueueStore(db, this.correlation ? new CorrelationStore(db) : undefined);
      twin.twin = null;
      return (this.twin = twin);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The no-wait connection's store when `opts` asks not to wait and it can serve (`noWaitTwin`). */
  private noWaitFor(opts: WriteTransactionOptions | undefined): QueueStore | undefined {
    return opts?.waitForLock === false ? this.noWaitTwin() : undefined;
  }

  /**
   * Opens the no-wait connection now (the queue's start), so a store it cannot open stops
   * the start rather than every later claim.
   */
  openNoWaitConnection(): void {
    this.noWaitTwin();
  }

  /** Closes the connections this store opened for itself (the accept path's, the no-wait one); the store's own is the caller's. */
  closeOwnConnections(): void {
    this.writer?.db.close();
    this.writer = undefined;
    if (this.twin) this.twin.db.close();
    this.twin = null;
  }

  maxQid(): string | undefined {
    return (this.s.maxQid.get() as { qid: string | null }).qid ?? undefined;
  }

  /** After a restart nothing is in flight any more: every lease is stale. */
  clearLeases(): number {
    return this.s.clearLeases.run().changes;
  }

  /** Up to `limit` distinct messages with a recipient due, most overdue first. */
  dueMessages(now: number, limit: number): string[] {
    const qids = new Set<string>();
    for (const r of this.s.dueRows.all({ now, limit: limit * 4 }) as { qid: string }[]) {
      qids.add(r.qid);
      if (qids.size >= limit) break;
    }
    return [...qids];
  }

  /** When the next recipient falls due (undefined: nothing waiting). */
  nextDueAt(now: number): number | undefined {
    return (this.s.nextDue.get({ now }) as { due: number | null }).due ?? undefined;
  }

  message(qid: string): MessageRow | undefined {
    return this.s.message.get(qid);
  }

  /** Claims the message's due recipients for one attempt round (lease until `until`). */
  claim(qid: string, now: number, until: number): RecipientRow[] {
    return writeTransaction(this.db, () => {
      const rows = this.s.dueRecipients.all(qid, now, now);
      for (const r of rows) this.s.lease.run(until, qid, r.rcpt);
      return rows;
    });
  }

  /** `claim` for several messages in one transaction; messages with nothing due are left out. */
  claimMany(qids: readonly string[], now: number, until: number, opts?: WriteTransactionOptions): ClaimedMessage[] {
    const twin = this.noWaitFor(opts);
    if (twin) return twin.claimMany(qids, now, until, opts);
    return writeTransaction(this.db, () => this.claimManyIn(qids, now, until), opts);
  }

  private claimManyIn(qids: readonly string[], now: number, until: number): ClaimedMessage[] {
    const out: ClaimedMessage[] = [];
    for (const qid of qids) {
      const message = this.message(qid);
      if (!message || message.state !== 'queued') continue;
      const rows = this.s.dueRecipients.all(qid, now, now);
      if (rows.length === 0) continue;
      for (const r of rows) this.s.lease.run(until, qid, r.rcpt);
      out.push({ message, recipients: rows });
    }
    return out;
  }

  /** Releases the leases and makes the recipients due at `until` (not an attempt: a busy next hop). */
  postpone(qid: string, rcpts: readonly string[], until: number, reason: string, now = Date.now()): void {
    writeTransaction(this.db, () => {
      for (const rcpt of rcpts) this.s.postpone.run(until, reason, now, qid, rcpt);
    });
  }

  release(qid: string, rcpts: string[]): void {
    writeTransaction(this.db, () => {
      for (const rcpt of rcpts) this.s.release.run(qid, rcpt);
    });
  }

  /**
   * Keeps an attempt's leases alive (its result waits in memory for the store); only
   * recipients still leased, so a restart's `clearLeases` is never undone.
   */
  extendLeases(qid: string, rcpts: readonly string[], until: number): void {
    writeTransaction(this.db, () => {
      for (const rcpt of rcpts) this.s.extendLease.run(until, qid, rcpt);
    });
  }

  /**
   * Records which bytes the rewrite step decided for each recipient (a spooled copy's
   * path, or the original), so every later attempt delivers the same bytes.
   */
  recordCopies(qid: string, copies: readonly RecipientCopy[]): void {
    writeTransaction(this.db, () => {
      for (const c of copies) this.s.setCopy.run(c.copy?.path ?? null, c.copy?.size ?? null, c.copy?.offset ?? null, c.copy?.sha256 ?? null, qid, c.rcpt);
    });
  }

  /** Every spool file of a message: the original and its recorded rewrite copies. */
  spoolFiles(message: Pick<MessageRow, 'qid' | 'spool_path'>): string[] {
    const copies = (this.s.copyPaths.all(message.qid) as { copy_path: string }[]).map((r) => r.copy_path);
    return [message.spool_path, ...copies];
  }

  /** Maildir exactly-once: the file name is recorded before the file becomes visible in new/. */
  setDeliveredAs(qid: string, rcpt: string, name: string): void {
    this.s.setDeliveredAs.run(name, qid, rcpt);
  }

  /** Records one attempt and the recipients' new states in one transaction. */
  recordAttempt(a: AttemptRecord, now = Date.now()): void {
    this.recordAttempts([a], now);
  }

  /**
   * Records an attempt round (one attempt per next hop) and releases the leases in one
   * transaction; when that leaves the message finished, marks it done and returns its
   * row so the caller removes the spool file (only after this commit).
   */
  recordRound(qid: string, attempts: readonly AttemptRecord[], leased: readonly string[], now = Date.now()): FinishedMessage | undefined {
    return writeTransaction(this.db, () => this.recordRoundIn(qid, attempts, leased, now));
  }

  /**
   * Several messages' `recordRound`s in one transaction (one WAL commit instead of many),
   * with the correlation keys the rounds carry. Keys the store refuses (reported to
   * `keysFailed`) never cost a round its result (`refusable`).
   * `next`: the queue's next claims, made in the same transaction once the rounds are
   * recorded (the slots they held are free then), instead of a transaction of their own;
   * with the accepted messages it hands over (`ClaimNext.accepted`), committed durably.
   */
  recordRounds(
    rounds: readonly RoundToRecord[],
    now = Date.now(),
    keysFailed?: (qids: string[], err: unknown) => void,
    next?: ClaimNext,
    opts?: WriteTransactionOptions,
  ): (FinishedMessage | undefined)[] {
    const twin = this.noWaitFor(opts);
    if (twin) return twin.recordRounds(rounds, now, keysFailed, next, opts);
    let claims: ClaimedMessage[] | undefined;
    const accepted = next?.accepted?.();
    const refused = new Map<RefusablePart, unknown>();
    // picked once: picking takes the qids from the queue's lists, so a second try reuses them
    let want: { qids: readonly string[]; until: number } | undefined | null = null;
    let done: (FinishedMessage | undefined)[];
    try {
      done = this.untilCommitted(refused, () =>
        (accepted ? durably : writeTransaction)(
          this.db,
          () => {
            claims = undefined;
            const finished = rounds.map((r) => this.recordRoundIn(r.qid, r.attempts, r.leased, now));
            this.recordKeysIn(rounds, now, refused);
            if (want === null) want = next ? this.pickNextIn(next, now) : undefined;
            // picked before the accepted messages go in: those it picks are inserted leased
            const inserted = accepted && !refused.has('accepted') ? this.refusable('accepted', () => this.insertBatchIn(accepted.rows, want ?? undefined)) : new Map<string, ClaimedMessage>();
            const claimed = want ? this.claimRestIn(want, inserted, now, refused) : [];
            if (claimed.length) claims = claimed;
            return finished;
          },
          opts,
        ),
      );
    } catch (err) {
      if (claims) next!.notClaimed(err, false);
      accepted?.notCommitted(err, true);
      throw err;
    }
    this.reportKeysRefused(rounds, refused, keysFailed);
    if (refused.has('claims')) next!.notClaimed(refused.get('claims'), true);
    if (claims) next!.claimed(claims);
    if (refused.has('accepted')) accepted!.notCommitted(refused.get('accepted'), false);
    else accepted?.committed();
    return done;
  }

  /**
   * The queue's next picks (`ClaimNext.pick`) in `recordRounds`; undefined when none, or
   * when the pick failed (reported to `next`: it never costs the rounds their results).
   */
  private pickNextIn(next: ClaimNext, now: number): { qids: readonly string[]; until: number } | undefined {
    try {
      const want = next.pick(now);
      return want?.qids.length ? want : undefined;
    } catch (err) {
      // an error that ended the whole transaction (disk full, I/O) fails the rounds too
      if (!this.db.inTransaction) throw err;
      next.notClaimed(err, true);
      return undefined;
    }
  }

  /**
   * `recordRounds` for results kept across a stop (the results journal), idempotent: a
   * round is recorded only while each recipient it claimed still has the attempt count
   * of its claim. Recording the round counted one more attempt for each (and nothing
   * else does), so a round recorded before (a crash before the journal was cleared) is
   * skipped, as is one whose message was pruned.
   */
  replayRounds(
    rounds: readonly { qid: string; attempts: readonly AttemptRecord[]; claimed: readonly { rcpt: string; attempts: number }[]; keys?: MessageKeysInput | undefined }[],
    now = Date.now(),
    keysFailed?: (qids: string[], err: unknown) => void,
    opts?: WriteTransactionOptions,
  ): { finished: (FinishedMessage | undefined)[]; skipped: number } {
    const twin = this.noWaitFor(opts);
    if (twin) return twin.replayRounds(rounds, now, keysFailed, opts);
    const refused = new Map<RefusablePart, unknown>();
    let recorded: typeof rounds[number][] = [];
    const result = this.untilCommitted(refused, () =>
      writeTransaction(
        this.db,
        () => {
          let skipped = 0;
          recorded = [];
          const finished = rounds.map((r) => {
            const unrecorded = r.claimed.every((c) => (this.s.recipientAttempts.get(r.qid, c.rcpt) as { attempts: number } | undefined)?.attempts === c.attempts);
            if (!unrecorded) {
              skipped++;
              return undefined;
            }
            recorded.push(r);
            return this.recordRoundIn(r.qid, r.attempts, r.claimed.map((c) => c.rcpt), now);
          });
          this.recordKeysIn(recorded, now, refused);
          return { finished, skipped };
        },
        opts,
      ),
    );
    this.reportKeysRefused(recorded, refused, keysFailed);
    return result;
  }

  /** The keys the rounds carry, unless the store refused them in an earlier try (`refusable`). */
  private recordKeysIn(rounds: readonly { keys?: MessageKeysInput | undefined }[], now: number, refused: ReadonlyMap<RefusablePart, unknown>): void {
    if (!this.correlation || refused.has('keys')) return;
    const keys = rounds.flatMap((r) => (r.keys ? [r.keys] : []));
    if (!keys.length) return;
    const correlation = this.correlation;
    this.refusable('keys', () => correlation.recordManyMessageKeysIn(keys, now));
  }

  /** After the commit: keys the store refused, reported with the qids they were for. */
  private reportKeysRefused(rounds: readonly { keys?: MessageKeysInput | undefined }[], refused: ReadonlyMap<RefusablePart, unknown>, keysFailed?: (qids: string[], err: unknown) => void): void {
    if (!refused.has('keys')) return;
    keysFailed?.(rounds.flatMap((r) => (r.keys ? [r.keys.qid] : [])), refused.get('keys'));
  }

  private recordAttempts(list: readonly AttemptRecord[], now: number): void {
    writeTransaction(this.db, () => {
      for (const a of list) this.recordOne(a, now);
    });
  }

  // The *In methods run inside the caller's transaction: a nested db.transaction() would
  // cost a SAVEPOINT and its RELEASE per call, several per message on the queue's hot path.
  private recordRoundIn(qid: string, attempts: readonly AttemptRecord[], leased: readonly string[], now: number): FinishedMessage | undefined {
    const updated = new Set<string>();
    for (const a of attempts) this.recordOne(a, now, updated);
    // an updated recipient's lease went with its update; the rest (not attempted, or
    // deleted by the CLI meanwhile) are released here
    for (const rcpt of leased) if (!updated.has(rcpt)) this.s.release.run(qid, rcpt);
    return this.finishIfDoneIn(qid, now);
  }

  private recordOne(a: AttemptRecord, now: number, updated?: Set<string>): void {
    this.s.insertAttempt.run(
      a.qid,
      a.nexthop,
      a.startedAt,
      a.durationMs,
      a.reply,
      a.outcome,
      JSON.stringify(a.recipients.map((r) => (r.imp ? { rcpt: r.rcpt, state: r.state, reply: r.reply, imp: r.imp } : { rcpt: r.rcpt, state: r.state, reply: r.reply }))),
    );
    for (const r of a.recipients) {
      const gen = r.claimedGen ?? null;
      const next = r.nextAttemptAt ?? null;
      const { changes } = this.s.updateRecipient.run(r.state, r.reply, a.nexthop, gen, gen, next, next, r.deliveredAs ?? null, now, a.qid, r.rcpt);
      if (changes) updated?.add(r.rcpt);
    }
  }

  /**
   * Marks the message done when no recipient is open or in flight; returns its row then,
   * so the caller can remove the spool file (only after this commit).
   */
  finishIfDone(qid: string, now = Date.now()): FinishedMessage | undefined {
    return writeTransaction(this.db, () => this.finishIfDoneIn(qid, now));
  }

  private finishIfDoneIn(qid: string, now: number): FinishedMessage | undefined {
    const [open, inflight, copies] = this.s.openCount.get(now, qid) as [number | null, number | null, number | null];
    if ((open ?? 0) > 0 || (inflight ?? 0) > 0) return undefined;
    const spoolPath = this.s.finish.get(now, qid) as string | undefined;
    if (spoolPath === undefined) return undefined;
    // the count above tells whether there are copies: no second statement for most messages
    return { qid, spoolFiles: (copies ?? 0) > 0 ? this.spoolFiles({ qid, spool_path: spoolPath }) : [spoolPath] };
  }

  recipients(qid: string): RecipientRow[] {
    return this.s.recipients.all(qid);
  }

  attempts(qid: string): AttemptRow[] {
    return this.s.attempts.all(qid) as AttemptRow[];
  }

  list(): QueueSummary[] {
    return this.s.list.all() as QueueSummary[];
  }

  /** Makes every open recipient due now; returns how many. */
  retryNow(qid: string, now = Date.now()): number {
    return this.s.retry.run(now, now, qid).changes;
  }

  /**
   * Holds a message whose spool file cannot be delivered as it is (missing, truncated,
   * changed): its open recipients are never due and their leases are released, until
   * `releaseHold`. Returns whether the message was open.
   */
  hold(qid: string, reason: string, now = Date.now()): boolean {
    return this.db.transaction(() => {
      if (this.s.hold.run(now, reason, qid).changes === 0) return false;
      this.s.holdRecipients.run(now, qid);
      return true;
    }).immediate();
  }

  /** Ends a hold: the open recipients are due now. Returns whether the message was held. */
  releaseHold(qid: string, now = Date.now()): boolean {
    return this.db.transaction(() => {
      if (this.s.unhold.run(qid).changes === 0) return false;
      this.s.unholdRecipients.run(now, now, qid);
      return true;
    }).immediate();
  }

  markDeleted(qid: string, now = Date.now()): number {
    return this.s.markDeleted.run(now, qid).changes;
  }

  /**
   * Retention: up to `limit` messages finished before `cutoff` (ms since the epoch),
   * oldest first. Unfinished messages are never among them. Call inside the write
   * transaction that removes them (`Store.pruneFinished`).
   */
  finishedBefore(cutoff: number, limit: number): string[] {
    return (this.s.pruneCandidates.all({ cutoff, limit }) as { qid: string }[]).map((r) => r.qid);
  }

  /** Removes a finished message with its recipients and attempts (no-op for an unfinished one). */
  removeFinished(qid: string): void {
    if (this.s.pruneMessage.run(qid).changes === 0) return;
    this.imp().prune.run(qid);
    this.s.pruneAttempts.run(qid);
    this.s.pruneRecipients.run(qid);
  }

  private impStatements: ReturnType<QueueStore['prepareImp']> | undefined;
  /** Prepared on first use: a CLI may open a store (read-only, never migrated) from before imp_inbound. */
  private imp(): ReturnType<QueueStore['prepareImp']> {
    return (this.impStatements ??= this.prepareImp());
  }
  private prepareImp() {
    const db = this.db;
    return {
      byTid: db.prepare(`SELECT i.qid, i.stamp, i.peer, m.state FROM imp_inbound i JOIN messages m ON m.qid = i.qid
        WHERE i.tid_ihn = ? AND i.tid_tn = ? ORDER BY i.qid`),
      origin: db.prepare('SELECT tid_tn, tid_ihn, stamp, peer FROM imp_inbound WHERE qid = ?'),
      prune: db.prepare('DELETE FROM imp_inbound WHERE qid = ?'),
    };
  }

  /**
   * RFC 753 CANCEL: deletes the unfinished recipients of a message unless an attempt
   * for one of them is in flight (it might deliver), in one IMMEDIATE transaction so
   * the queue cannot claim a recipient in between. Returns the recipients deleted and
   * the message row when that finished it (its spool files can then go).
   */
  withdraw(qid: string, now = Date.now()): { deleted: number; inFlight: boolean; finished: FinishedMessage | undefined } {
    return writeTransaction(this.db, () => {
      const busy = this.db
        .prepare(`SELECT COUNT(*) AS n FROM recipients WHERE qid = ? AND state IN ('queued', 'deferred') AND inflight_until >= ?`)
        .get(qid, now) as { n: number };
      if (busy.n > 0) return { deleted: 0, inFlight: true, finished: undefined };
      const deleted = this.db
        .prepare(`UPDATE recipients SET state = 'deleted', last_reply = 'canceled by RFC 753 CANCEL', updated_at = ?
          WHERE qid = ? AND state IN ('queued', 'deferred')`)
        .run(now, qid).changes;
      return { deleted, inFlight: false, finished: deleted > 0 ? this.finishIfDoneIn(qid, now) : undefined };
    });
  }

  /** Messages accepted over IMP with this tid (one per DELIVER of that transaction), oldest first. */
  impMessagesByTid(tid: { tn: number; ihn: number }): { qid: string; state: string; stamp: number[]; peer: string | undefined }[] {
    return (this.imp().byTid.all(tid.ihn | 0, tid.tn) as { qid: string; stamp: string; peer: string | null; state: string }[]).map((r) => ({
      qid: r.qid,
      state: r.state,
      stamp: JSON.parse(r.stamp) as number[],
      peer: r.peer ?? undefined,
    }));
  }

  /** The IMP transaction a message came with, if it came over IMP. */
  impOrigin(qid: string): ImpOrigin | undefined {
    const r = this.imp().origin.get(qid) as { tid_tn: number; tid_ihn: number; stamp: string; peer: string | null } | undefined;
    return r ? { tid: { tn: r.tid_tn, ihn: r.tid_ihn }, stamp: JSON.parse(r.stamp) as number[], peer: r.peer ?? undefined } : undefined;
  }

  /** Recipients waiting for delivery (the queue-depth gauge). */
  depth(): number {
    return (this.s.depth.get() as { n: number }).n;
  }
}

/** The MAIL FROM parameters stored with a message. */
export function messageParams(m: MessageRow): MessageParams {
  return {
    bodyType: m.body_type ?? undefined,
    smtpUtf8: m.smtputf8 === 1,
    declaredSize: m.declared_size ?? undefined,
    dsnRet: m.dsn_ret ?? undefined,
    dsnEnvid: m.dsn_envid ?? undefined,
  };
}

/** The RCPT TO parameters stored with a recipient. */
export function recipientParams(r: RecipientRow): RecipientParams {
  return {
    notify: r.dsn_notify ? (r.dsn_notify.split(',') as DsnNotify[]) : undefined,
    orcpt: r.dsn_orcpt ?? undefined,
  };
}

/** `MessageInserter`'s parameters of a message row, in the insert's column order. */
type MessageInsertParams = [
  qid: string,
  receivedAt: number,
  envelopeFrom: string,
  size: number,
  spoolPath: string,
  spoolOffset: number,
  sha256: string,
  clientAddress: string | null,
  clientHostname: string | null,
  helo: string | null,
  authUser: string | null,
  bodyType: MessageRow['body_type'],
  smtpUtf8: 0 | 1,
  declaredSize: number | null,
  dsnRet: MessageRow['dsn_ret'],
  dsnEnvid: string | null,
];

/** The row a message inserted with `params` has: the rest are the table's defaults. */
function newMessageRow(p: MessageInsertParams): MessageRow {
  return {
    qid: p[0],
    received_at: p[1],
    envelope_from: p[2],
    size: p[3],
    spool_path: p[4],
    client_address: p[7],
    client_hostname: p[8],
    helo: p[9],
    auth_user: p[10],
    state: 'queued',
    finished_at: null,
    spool_offset: p[5],
    sha256: p[6],
    held_at: null,
    hold_reason: null,
    body_type: p[11],
    smtputf8: p[12],
    declared_size: p[13],
    dsn_ret: p[14],
    dsn_envid: p[15],
  };
}

/** The row of a recipient inserted leased: the rest are the table's defaults. */
function newRecipientRow(qid: string, rcpt: string, receivedAt: number, until: number, notify: string | null, orcpt: string | null): RecipientRow {
  return {
    qid,
    rcpt,
    state: 'queued',
    next_attempt_at: receivedAt,
    attempts: 0,
    last_reply: null,
    nexthop: null,
    inflight_until: until,
    delivered_as: null,
    updated_at: receivedAt,
    retry_gen: 0,
    rewritten: 0,
    copy_path: null,
    copy_size: null,
    copy_offset: null,
    copy_sha256: null,
    dsn_notify: notify,
    dsn_orcpt: orcpt,
  };
}
