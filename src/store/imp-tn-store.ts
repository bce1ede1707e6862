// The IMP shipper's transaction-number high-water mark (migration 14): one row per ihn,
// written once per reserved block of tns.
import { writeTransaction, type SqliteDatabase } from './db.js';

export class ImpTnStore {
  private readonly s;

  constructor(private readonly db: SqliteDatabase) {
    this.s = {
      get: db.prepare<[number], { next_tn: number }>('SELECT next_tn FROM imp_tn_mark WHERE ihn = ?'),
      set: db.prepare<[number, number, number]>(
        `INSERT INTO imp_tn_mark (ihn, next_tn, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (ihn) DO UPDATE SET next_tn = excluded.next_tn, updated_at = excluded.updated_at`,
      ),
    };
  }

  /** The first tn not yet reserved for `ihn` (signed 32-bit), if one was ever saved. */
  mark(ihn: number): number | undefined {
    return this.s.get.get(ihn | 0)?.next_tn;
  }

  setMark(ihn: number, nextTn: number): void {
    writeTransaction(this.db, () => this.s.set.run(ihn | 0, nextTn, Date.now()));
  }
}
