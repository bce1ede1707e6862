import type { SqliteDatabase } from './db.js';

/** Which language part a recipient got, and why. */
export interface LanguageChoice {
  rcpt: string;
  mode: 'select' | 'reorder' | 'unchanged';
  /** Part index in the multilingual body (0 is the preface); null when delivered unchanged. */
  partIndex: number | null;
  tags: string | null;
  translationType: string | null;
  /** How the part was found (exact, filter, lookup, wildcard, independent, default) or why nothing was rewritten. */
  rule: string;
  why: string;
  preferences: string;
  fromMismatch: boolean;
  dkim: string | null;
}

export interface LanguageChoiceRow {
  qid: string;
  rcpt: string;
  mode: string;
  part_index: number | null;
  tags: string | null;
  translation_type: string | null;
  rule: string;
  why: string;
  preferences: string;
  from_mismatch: number;
  dkim: string | null;
  decided_at: number;
}

/** The multilingual rewrite's per-recipient decisions (for `queue show` and `trace`). */
export class MultilingualStore {
  private readonly s;

  constructor(readonly db: SqliteDatabase) {
    this.s = {
      insert: db.prepare(`INSERT INTO language_choices
        (qid, rcpt, mode, part_index, tags, translation_type, rule, why, preferences, from_mismatch, dkim, decided_at)
        VALUES (@qid, @rcpt, @mode, @partIndex, @tags, @translationType, @rule, @why, @preferences, @fromMismatch, @dkim, @now)
        ON CONFLICT (qid, rcpt) DO UPDATE SET mode = excluded.mode, part_index = excluded.part_index, tags = excluded.tags,
          translation_type = excluded.translation_type, rule = excluded.rule, why = excluded.why,
          preferences = excluded.preferences, from_mismatch = excluded.from_mismatch, dkim = excluded.dkim,
          decided_at = excluded.decided_at`),
      byQid: db.prepare('SELECT * FROM language_choices WHERE qid = ? ORDER BY rcpt'),
      forget: db.prepare('DELETE FROM language_choices WHERE qid = ?'),
    };
  }

  /** One immediate transaction for the message's recipients. */
  recordChoices(qid: string, choices: readonly LanguageChoice[], now = Date.now()): void {
    this.db
      .transaction(() => {
        for (const c of choices) {
          this.s.insert.run({ qid, rcpt: c.rcpt, mode: c.mode, partIndex: c.partIndex, tags: c.tags, translationType: c.translationType, rule: c.rule, why: c.why, preferences: c.preferences, fromMismatch: c.fromMismatch ? 1 : 0, dkim: c.dkim, now });
        }
      })
      .immediate();
  }

  /** Retention: the message is pruned, its decisions go with it. */
  forget(qid: string): void {
    this.s.forget.run(qid);
  }

  choices(qid: string): LanguageChoiceRow[] {
    return this.s.byQid.all(qid) as LanguageChoiceRow[];
  }
}
