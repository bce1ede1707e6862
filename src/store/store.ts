import { openDatabase, type OpenStoreOptions, type SqliteDatabase } from './db.js';
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
  readonly multilingual: MultilingualStore;
  private closed = false;

  constructor(readonly db: SqliteDatabase) {
    this.queue = new QueueStore(db);
    this.users = new UsersStore(db);
    this.multilingual = new MultilingualStore(db);
  }

  static open(path: string, opts?: OpenStoreOptions): Store {
    return new Store(openDatabase(path, opts));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
