// Migration 29: the report's delivered figure is read from the latency counters, so a delivery
// costs one counter upsert in the recipients' triggers instead of two. Figures read through the
// counters must equal the rows across an upgrade from a store at migration 28 (whose delivered
// counts it drops), new deliveries, failures, an IMP answer that turns a delivery into a failure,
// and retention.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, migrations } from '../src/store/migrations.js';
import { QueueStore } from '../src/store/queue-store.js';
import type { ReportWindow } from '../src/store/report-store.js';
import { Store } from '../src/store/store.js';

const H = 3_600_000;
const BASE = Date.UTC(2026, 10, 27);
const dir = mkdtempSync(join(tmpdir(), 'mailbag-report-delivered-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const windows: ReportWindow[] = [
  { since: BASE - H, until: BASE + 60 * H, bucketMs: H },
  { since: BASE + 2 * H, until: BASE + 5 * H, bucketMs: H },
  { since: BASE + 90 * 60_000, until: BASE + 30 * H + 5 * 60_000, bucketMs: 24 * H },
];

function figuresAgree(t: Test, store: Store, what: string): void {
  for (const w of windows) {
    t.same(store.report.finished(w), store.report.raw.finished(w), `${what}: delivered and failed ${w.since}..${w.until}`);
    t.same(
      store.report.latencyCounts(w).map((h) => [h.nexthop, h.delivered]),
      deliveredByHop(store, w),
      `${what}: delivered per next hop ${w.since}..${w.until}`,
    );
  }
}

function deliveredByHop(store: Store, w: ReportWindow): [string, number][] {
  const by = new Map<string, number>();
  for (const [hop] of store.report.raw.deliveryLatencies(w)) by.set(hop, (by.get(hop) ?? 0) + 1);
  return [...by].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** n messages of two recipients each, received 37 minutes apart, then one round each: delivered, failed or both. */
function traffic(queue: QueueStore, from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const qid = `Q${String(i).padStart(12, '0')}`;
    const receivedAt = BASE + i * 37 * 60_000;
    queue.insertMessage({ qid, receivedAt, envelopeFrom: 's@up.example', size: 10, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['a@x.example', 'b@x.example'] });
    const at = receivedAt + (i % 5) * 20 * 60_000;
    const state = (r: number) => ((i + r) % 3 === 0 ? 'failed' : 'delivered') as 'failed' | 'delivered';
    queue.recordRound(
      qid,
      [{ qid, nexthop: i % 2 ? 'smtp://a.example:25' : 'lmtp://b.example:24', startedAt: at, durationMs: 1, reply: '250', outcome: 'partial', recipients: ['a@x.example', 'b@x.example'].map((rcpt, r) => ({ rcpt, state: state(r), reply: state(r) })) }],
      ['a@x.example', 'b@x.example'],
      at,
    );
  }
}

t.test('delivered counts come from the latency counters across the upgrade, new traffic and retention', async (t) => {
  const path = join(dir, 'upgrade.db');
  // A store as the previous release left it: every migration but 29, with deliveries in it.
  const before = new Database(path);
  before.pragma('foreign_keys = ON');
  migrate(before, migrations.filter((m) => m.version !== 29));
  traffic(new QueueStore(before), 0, 40);
  const oldDelivered = before.prepare("SELECT COALESCE(SUM(n), 0) FROM report_hourly WHERE kind = 'delivered'").pluck().get() as number;
  before.close();
  t.ok(oldDelivered > 0, 'migration 16 counted deliveries in report_hourly');

  const store = Store.open(path);
  t.teardown(() => store.close());
  t.ok(store.db.prepare('SELECT 1 FROM schema_migrations WHERE version = 29').get(), 'migration 29 applied');
  t.equal(store.db.prepare("SELECT COUNT(*) FROM report_hourly WHERE kind = 'delivered'").pluck().get(), 0, 'the delivered counters are dropped');
  t.equal(store.db.prepare('SELECT COALESCE(SUM(n), 0) FROM report_latency_hourly').pluck().get(), oldDelivered, 'the latency counters hold as many deliveries');
  figuresAgree(t, store, 'after the upgrade');

  traffic(store.queue, 40, 40);
  t.equal(store.db.prepare("SELECT COUNT(*) FROM report_hourly WHERE kind = 'delivered'").pluck().get(), 0, 'a delivery is no longer counted in report_hourly');
  figuresAgree(t, store, 'after new traffic');

  // an IMP destination's answer: a delivered recipient becomes failed (imp-reply-store's update)
  const changed = store.db
    .prepare("UPDATE recipients SET state = 'failed', updated_at = updated_at + 7200000 WHERE state = 'delivered' AND rowid % 4 = 0")
    .run().changes;
  t.ok(changed > 0);
  figuresAgree(t, store, 'after deliveries turned into failures');

  const pruned = store.pruneFinished(BASE + 30 * H, 1000);
  t.ok(pruned > 0, 'retention pruned finished messages');
  figuresAgree(t, store, 'after retention');
});
