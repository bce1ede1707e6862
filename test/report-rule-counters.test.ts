// Migration 26: the report's rule counters follow pod_message_rules (written by the store
// with each event) instead of parsing each stored message event's JSON again in a trigger.
// Counts read through the counters must equal the counts from the rows across an upgrade from
// a store at migration 16/18, new events, re-imports and deletes (cascading to the rule rows).
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { migrate, migrations } from '../src/store/migrations.js';
import type { ReportWindow } from '../src/store/report-store.js';
import { PodStore } from '../src/store/pod-store.js';
import { Store } from '../src/store/store.js';
import { messageEvent } from './helpers/report-pod-events.js';

const H = 3_600_000;
const BASE = Date.UTC(2026, 10, 27);
const dir = mkdtempSync(join(tmpdir(), 'mailbag-report-rule-counters-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const events = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) =>
    messageEvent({
      guid: `g${from + i}`,
      at: BASE + (from + i) * 17 * 60_000,
      upstreamQid: `4Q${String(from + i).padStart(6, '0')}`,
      messageId: `<m${from + i}@up.example>`,
      disposition: i % 3 ? 'continue' : 'discard',
      rules: i % 4 === 0 ? [] : [['spam', i % 2 ? 'bulk' : 'system'], ['dmarc', 'pass']],
    }),
  );
const windows: ReportWindow[] = [
  { since: BASE - H, until: BASE + 40 * H, bucketMs: H },
  { since: BASE + 2 * H, until: BASE + 5 * H, bucketMs: H },
  { since: BASE + 90 * 60_000, until: BASE + 7 * H + 5 * 60_000, bucketMs: 24 * H },
];

function countsAgree(t: Test, store: Store, what: string): void {
  for (const w of windows) {
    t.same(store.report.topRules(w, -1), store.report.raw.topRules(w, -1), `${what}: rules ${w.since}..${w.until}`);
    t.same(store.report.podMessages(w), store.report.raw.podMessages(w), `${what}: events ${w.since}..${w.until}`);
    t.same(store.report.dispositions(w), store.report.raw.dispositions(w), `${what}: dispositions ${w.since}..${w.until}`);
  }
}

t.test('no trigger parses a stored PoD event again', async (t) => {
  const store = Store.open(join(dir, 'triggers.db'));
  t.teardown(() => store.close());
  const triggers = store.db
    .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('pod_message_events', 'pod_maillog_events')")
    .all() as { name: string; sql: string }[];
  t.ok(triggers.some((tr) => tr.name === 'report_pod_messages_insert'), 'the event counters are still kept by a trigger');
  for (const tr of triggers) t.notMatch(tr.sql, /(new|old)\.event\b/, `${tr.name} does not read the event's JSON`);
});

t.test('counters equal the rows across the upgrade, new events, re-imports and deletes', async (t) => {
  const path = join(dir, 'upgrade.db');
  // A store as the previous release left it: every migration but 26, with events in it.
  const before = new Database(path);
  before.pragma('foreign_keys = ON');
  migrate(before, migrations.filter((m) => m.version !== 26));
  new PodStore(before).storeBatch(events(0, 40).map((p) => ingestToBatchItem(p, 'test')), { source: 'test' });
  before.close();

  const store = Store.open(path);
  t.teardown(() => store.close());
  t.ok(store.db.prepare('SELECT 1 FROM schema_migrations WHERE version = 26').get(), 'migration 26 applied');
  countsAgree(t, store, 'after the upgrade');

  const more = events(40, 60);
  store.pod.storeBatch(more.map((p) => ingestToBatchItem(p, 'test')), { source: 'test' });
  const again = store.pod.storeBatch([...more.slice(0, 10), ...events(0, 5)].map((p) => ingestToBatchItem(p, 'test')), { source: 'test' });
  t.equal(again.duplicates, 15, 're-imported events are duplicates');
  countsAgree(t, store, 'after new events and re-imports');
  t.ok((store.db.prepare("SELECT n FROM report_hourly WHERE kind = 'rule' AND n > 0 LIMIT 1").get() as { n: number } | undefined)?.n, 'rules were counted');

  const deleted = store.db.prepare('DELETE FROM pod_message_events WHERE id % 3 = 0').run().changes;
  t.ok(deleted > 0, 'events deleted');
  t.equal((store.db.prepare('SELECT COUNT(*) AS n FROM pod_message_rules AS r WHERE NOT EXISTS (SELECT 1 FROM pod_message_events AS e WHERE e.id = r.event_id)').get() as { n: number }).n, 0, 'their rule rows went with them');
  countsAgree(t, store, 'after deletes');
  t.throws(() => store.db.prepare("UPDATE pod_message_rules SET rule = 'x'").run(), /never changed/, 'rule rows are never updated');
});
