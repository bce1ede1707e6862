// Every query `mailbag trace` runs, for each kind of key, is an index search: none scans a
// table (at a million messages a scan is seconds, and trace's p99 target is 2 ms). The
// statements are caught as trace runs them, with their parameters, and each is asked for
// its EXPLAIN QUERY PLAN on the store the report tests seed.
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trace, type KeyKind } from '../src/cli/trace/collect.js';
import { Store } from '../src/store/store.js';
import { SEEDED_TRACE_KEYS, seedReportStore } from './helpers/report-seed.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-trace-plans-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  sql: string;
  args: unknown[];
}
let caught: Run[] | undefined;

// Catch what every statement runs (the Statement class is shared by all connections).
const probe = new Database(':memory:');
const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<'get' | 'all' | 'iterate', (...args: unknown[]) => unknown>;
probe.close();
for (const method of ['get', 'all', 'iterate'] as const) {
  const original = statementProto[method];
  statementProto[method] = function (this: { source: string }, ...args: unknown[]) {
    caught?.push({ sql: this.source, args });
    return original.apply(this, args);
  };
}

const path = join(dir, 'store.db');
const seeded = Store.open(path);
seedReportStore(seeded);
seeded.close();

const KEYS = SEEDED_TRACE_KEYS;

/** A plan step that reads a whole table or index rather than searching it. */
function scans(detail: string): boolean {
  return /^SCAN /.test(detail) && !/^SCAN (CONSTANT ROW|json_each)/.test(detail) && !/VIRTUAL TABLE/.test(detail);
}

for (const kind of Object.keys(KEYS) as KeyKind[]) {
  t.test(`trace --by ${kind}: every query searches an index`, async (t) => {
    const store = Store.openExisting(path);
    t.teardown(() => store.close());
    caught = [];
    const result = trace(store, KEYS[kind], kind);
    const runs = caught;
    caught = undefined;
    t.ok(result && result.matches.length > 0, 'the key is found');
    const distinct = new Map(runs.map((r) => [r.sql, r]));
    t.ok(distinct.size >= 3, `${distinct.size} distinct queries ran`);
    for (const { sql, args } of distinct.values()) {
      const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((p) => p.detail);
      t.notOk(plan.some(scans), `${sql.replace(/\s+/g, ' ').slice(0, 100)}: ${plan.join('; ')}`);
    }
  });
}
