import type { SqliteDatabase } from '../../src/store/db.js';

/**
 * The PRAGMA assignments a connection runs from now on, through `db.pragma()` or `db.exec()`
 * (the store's hot paths use the latter), white space collapsed: `['synchronous = FULL']`.
 * Reads (`db.pragma('synchronous', ...)`) are not listed.
 */
export function spyPragmaAssignments(db: SqliteDatabase): string[] {
  const seen: string[] = [];
  const note = (assignment: string) => {
    if (assignment.includes('=')) seen.push(assignment.trim().replace(/;$/, '').replace(/\s+/g, ' '));
  };
  const pragma = db.pragma.bind(db);
  db.pragma = ((source: string, options?: { simple?: boolean }) => {
    note(source);
    return pragma(source, options);
  }) as typeof db.pragma;
  const exec = db.exec.bind(db);
  db.exec = ((source: string) => {
    const m = /^\s*PRAGMA\s+(.*)$/is.exec(source);
    if (m) note(m[1]!);
    return exec(source);
  }) as typeof db.exec;
  return seen;
}
