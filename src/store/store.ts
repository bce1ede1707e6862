import { openDatabase, writeTransaction, type OpenStoreOptions, type SqliteDatabase } from './db.js';
import { describeSchema, latestVersion, schemaState, type SchemaState } from './migrations.js';
import { explainOpenError } from './open-error.js';
import { CorrelationStore } from './correlation-store.js';
import { PodStore } from './pod-store.js';
import { PodPublisherStore } from './pod-publisher-store.js';
import { PodStreamStore } from './pod-stream-store.js';
import { PodRetentionStore } from './pod-retention-store.js';
import { QueueStore } from './queue-store.js';
import { MultilingualStore } from './multilingual-store.js';
import { ImpReplyStore } from './imp-reply-store.js';
import { ImpTnStore } from './imp-tn-store.js';
import { ReportStore } from './report-store.js';
import { UsersStore } from './users-store.js';

export interface PodPruneResult {
  messageEvents: number;
  maillogEvents: number;
  deadLetters: number;
  /** Correlation links dropped because no stored event supports them any more. */
  links: number;
  /** Rows counted against the batch limit: events and dead letters. */
  rows: number;
}

/** The store's schema is not the one this code was written for. */
export class StoreVersionError extends Error {
  readonly code = 'ERR_MAILBAG_STORE_VERSION';
  constructor(
    readonly path: string,
    readonly state: SchemaState,
    readonly expected: number,
  ) {
    super(`store ${path} is at schema ${describeSchema(state)}, this mailbag expects ${expected}`);
    this.name = 'StoreVersionError';
  }

  /** The store has migrations this code does not know: a newer mailbag wrote it. */
  get newer(): boolean {
    return this.state.unknown.length > 0;
  }
}

/**
 * The gateway's SQLite store: one database, one accessor per concern. Later concerns
 * (PoD events, correlation by qid) add their accessor here and their tables as migrations.
 */
export class Store {
  readonly queue: QueueStore;
  readonly users: UsersStore;
  readonly pod: PodStore;
  readonly podPublisher: PodPublisherStore;
  readonly podStreams: PodStreamStore;
  readonly multilingual: MultilingualStore;
  readonly impTns: ImpTnStore;
  readonly impReplies: ImpReplyStore;
  readonly correlation: CorrelationStore;
  readonly report: ReportStore;
  readonly podRetention: PodRetentionStore;
  private closed = false;

  constructor(readonly db: SqliteDatabase) {
    this.correlation = new CorrelationStore(db);
    this.queue = new QueueStore(db, this.correlation);
    this.users = new UsersStore(db);
    this.pod = new PodStore(db, this.correlation);
    this.podPublisher = new PodPublisherStore(db);
    this.podStreams = new PodStreamStore(db);
    this.multilingual = new MultilingualStore(db);
    this.impTns = new ImpTnStore(db);
    this.impReplies = new ImpReplyStore(db);
    this.report = new ReportStore(db);
    this.podRetention = new PodRetentionStore(db);
  }

  /** Opens (and migrates) the store; a failure to open it says which file and what to do. */
  static open(path: string, opts?: OpenStoreOptions): Store {
    let db: SqliteDatabase;
    try {
      db = openDatabase(path, opts);
    } catch (err) {
      throw explainOpenError(path, err);
    }
    return new Store(db);
  }

  /**
   * Opens an existing store without migrating it (the queue CLI, possibly beside a
   * running gateway of another version): a schema other than this code's is refused
   * before any statement is prepared against it.
   */
  static openExisting(path: string): Store {
    let db: SqliteDatabase;
    try {
      db = openDatabase(path, { mustExist: true, migrate: false, role: 'cli' });
    } catch (err) {
      throw explainOpenError(path, err);
    }
    try {
      const state = schemaState(db);
      if (state.missing.length || state.unknown.length) throw new StoreVersionError(path, state, latestVersion());
      return new Store(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Retention: removes up to `limit` messages finished before `cutoff`, oldest first,
   * with everything kept about them (recipients, attempts, language decisions), in one
   * short write transaction. Returns how many went; call again while it returns `limit`.
   * A concern that keeps rows per qid adds its cleanup here.
   */
  pruneFinished(cutoff: number, limit: number): number {
    return writeTransaction(this.db, () => {
      const qids = this.queue.finishedBefore(cutoff, limit);
      this.impReplies.pruneEarly(cutoff);
      for (const qid of qids) {
        this.multilingual.forget(qid);
        this.correlation.forget(qid);
        this.impReplies.forget(qid);
        this.queue.removeFinished(qid);
      }
      return qids.length;
    });
  }

  /**
   * PoD retention: removes up to `limit` rows in all (PoD events older than `cutoff` by their
   * own time, then dead letters received before it) in one short write transaction, with the
   * links those events alone supported; rule rows and report counters go with the rows.
   * Stream checkpoints stay. Call again while `rows` is `limit`.
   */
  prunePodBefore(cutoff: number, limit: number): PodPruneResult {
    return writeTransaction(this.db, () => {
      const batch = this.podRetention.pruneIn(cutoff, limit);
      let links = 0;
      for (const u of batch.upstreamQids) links += this.correlation.dropLinksWithoutEvents(u);
      const { messageEvents, maillogEvents, deadLetters } = batch;
      return { messageEvents, maillogEvents, deadLetters, links, rows: messageEvents + maillogEvents + deadLetters };
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.closeOwnConnections();
    this.db.close();
  }
}
