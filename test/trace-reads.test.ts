// What one `mailbag trace` costs the store: every row it needs is read once (following the
// links and building the timeline ask for the same links, origins, messages and events), and
// its statements are prepared once per connection, not per call. Both are work on the path
// whose p99 issue 11 bounds (2 ms).
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trace, type KeyKind } from '../src/cli/trace/collect.js';
import { Store } from '../src/store/store.js';
import { SEEDED_TRACE_KEYS, seedReportStore } from './helpers/report-seed.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-trace-reads-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let runs: string[] | undefined;
let prepares = 0;
/** PoD event rows (with their JSON) handed to trace. */
let eventRows = 0;

// Catch every statement run, with its parameters, and every prepare (shared by all connections).
const probe = new Database(':memory:');
const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<'get' | 'all' | 'iterate', (...args: unknown[]) => unknown>;
probe.close();
for (const method of ['get', 'all', 'iterate'] as const) {
  const original = statementProto[method];
  statementProto[method] = function (this: { source: string }, ...args: unknown[]) {
    runs?.push(`${this.source.replace(/\s+/g, ' ')} <- ${JSON.stringify(args)}`);
    const result = original.apply(this, args);
    const rows = Array.isArray(result) ? result : [result];
    eventRows += rows.filter((r) => typeof r === 'object' && r !== null && 'content_sha256' in r && 'event' in r).length;
    return result;
  };
}
const databaseProto = Database.prototype as unknown as { prepare: (...args: unknown[]) => unknown };
const prepare = databaseProto.prepare;
databaseProto.prepare = function (this: unknown, ...args: unknown[]) {
  prepares++;
  return prepare.apply(this, args);
};

const path = join(dir, 'store.db');
const seeded = Store.open(path);
seedReportStore(seeded);
seeded.close();

const KEYS = SEEDED_TRACE_KEYS;

for (const by of [...(Object.keys(KEYS) as KeyKind[]), undefined]) {
  const kind = by ?? 'qid';
  t.test(`trace ${by ? `--by ${by}` : `(${kind} detected)`}: no read twice with the same parameters`, async (t) => {
    const store = Store.openExisting(path);
    t.teardown(() => store.close());
    runs = [];
    eventRows = 0;
    const result = trace(store, KEYS[kind], by);
    const seen = runs;
    runs = undefined;
    t.ok(result && result.matches.length > 0 && result.matches[0]!.timeline.length > 0, 'the key is found, with a timeline');
    t.ok(result!.matches[0]!.upstreamQids.length > 0 && result!.matches[0]!.mailbagQids.length > 0, 'both sides of the hop');
    const twice = seen.filter((r, i) => seen.indexOf(r) !== i);
    t.same([...new Set(twice)], [], `${seen.length} reads, none repeated`);
    const upstreamEntries = result!.matches.flatMap((m) => m.timeline).filter((e) => e.hop === 'upstream').length;
    t.equal(eventRows, upstreamEntries, 'every PoD event read (with its JSON) is an entry of the timeline');
  });
}

t.test('a second trace on the same connection prepares no statement', async (t) => {
  const store = Store.openExisting(path);
  t.teardown(() => store.close());
  for (const kind of Object.keys(KEYS) as KeyKind[]) t.ok(trace(store, KEYS[kind], kind), `first trace --by ${kind}`);
  const before = prepares;
  runs = [];
  for (const kind of Object.keys(KEYS) as KeyKind[]) t.ok(trace(store, KEYS[kind], kind), `second trace --by ${kind}`);
  const ran = runs.length;
  runs = undefined;
  t.ok(ran > 0, `${ran} statements ran`);
  t.equal(prepares - before, 0, 'none prepared');
});
