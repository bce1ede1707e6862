import type { SqliteDatabase } from './db.js';

/** A recipient's stored language priority list (RFC 3282 form, as validated by the caller). */
export interface UserLanguagesRow {
  address: string;
  languages: string;
  updated_at: number;
}

/**
 * Recipient language preferences for the multilingual rewrite. Addresses are stored in
 * the normal form the caller gives (lower case, A-label domain); the store compares them
 * as given.
 */
export class UsersStore {
  private readonly s;

  constructor(readonly db: SqliteDatabase) {
    this.s = {
      get: db.prepare('SELECT * FROM user_languages WHERE address = ?'),
      upsert: db.prepare(`INSERT INTO user_languages (address, languages, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (address) DO UPDATE SET languages = excluded.languages, updated_at = excluded.updated_at`),
      remove: db.prepare('DELETE FROM user_languages WHERE address = ?'),
      list: db.prepare('SELECT * FROM user_languages ORDER BY address'),
    };
  }

  get(address: string): UserLanguagesRow | undefined {
    return this.s.get.get(address) as UserLanguagesRow | undefined;
  }

  set(address: string, languages: string, now = Date.now()): void {
    this.s.upsert.run(address, languages, now);
  }

  /** Every row or none: one immediate transaction. */
  setMany(rows: readonly { address: string; languages: string }[], now = Date.now()): void {
    this.db
      .transaction(() => {
        for (const r of rows) this.s.upsert.run(r.address, r.languages, now);
      })
      .immediate();
  }

  /** True when there was a row to delete. */
  delete(address: string): boolean {
    return this.s.remove.run(address).changes > 0;
  }

  list(): UserLanguagesRow[] {
    return this.s.list.all() as UserLanguagesRow[];
  }
}
