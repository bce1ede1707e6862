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

  /**
   * Reserves `block` tns for `ihn` from `from`, or from the stored mark when another
   * process reserved past `from` (the mark is ahead of it by less than half the tn space:
   * further "ahead" is behind, after a wrap). Returns the block's first tn.
   */
  reserve(ihn: number, from: number, block: number): number {
    return writeTransaction(this.db, () => {
      const mark = this.s.get.get(ihn | 0)?.next_tn;
      const ahead = mark === undefined ? 0 : (mark - from + 0x10000) % 0x10000;
      const start = ahead > 0 && ahead < 0x8000 ? mark! : from;
      this.s.set.run(ihn | 0, (start + block) % 0x10000, Date.now());
      return start;
    });
  }
}
