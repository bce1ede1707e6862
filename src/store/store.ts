import { openDatabase, type OpenStoreOptions, type SqliteDatabase } from './db.js';
import { explainOpenError } from './open-error.js';
import { PodStore } from './pod-store.js';
import { QueueStore } from './queue-store.js';
import { MultilingualStore } from './multilingual-store.js';
import { UsersStore } from './users-store.js';

/**
 * The gateway's SQLite store: one database, one accessor per concern. Later concerns
 * (PoD events, correlation by qid) add their accessor here and their tables as migrations.
 */
export class Store {
  readonly queue: QueueStore;
  readonly users: UsersStore;
  readonly pod: PodStore;
  readonly multilingual: MultilingualStore;
  private closed = false;

  constructor(readonly db: SqliteDatabase) {
    this.queue = new QueueStore(db);
    this.users = new UsersStore(db);
    this.pod = new PodStore(db);
    this.multilingual = new MultilingualStore(db);
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
