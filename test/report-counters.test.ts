// The report's hourly counters (migration 16) against a recount from the rows: random
// sequences of what the gateway writes (receipts, attempt rounds with retries, bounces,
// correlation keys, PoD events and their re-imports, language decisions and their changes,
// retention pruning of messages and of PoD events) and, after each step, random windows
// (whole hours or not, by hour or by day) where every figure read through the counters must
// equal the same figure counted from the rows (`RawReportCounts`, the report's queries before the counters).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { latencyBucket } from '../src/store/latency-buckets.js';
import { COUNTER_LATENCY_BINS_MS } from '../src/store/report-counters-sql.js';
import type { ReportWindow } from '../src/store/report-store.js';
import type { AttemptRecord } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { prng } from '../bench/lib/prng.js';
import { LATENCY_BINS_MS } from '../src/cli/report/build.js';
import { fromLine, maillogEvent, messageEvent, sentToMailbagLine } from './helpers/report-pod-events.js';

const H = 3_600_000;
const BASE = Date.UTC(2026, 10, 27);
const SPAN = 3 * 24 * H;


const dir = mkdtempSync(join(tmpdir(), 'mailbag-report-counters-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Every figure of the window, through the counters and from the rows. */
function figures(store: Store, w: ReportWindow, viaCounters: boolean) {
  const r = viaCounters ? store.report : store.report.raw;
  const byBucketState = (list: { bucket: number; state: string; n: number }[]) =>
    list.map(({ bucket, state, n }) => ({ bucket, state, n })).sort((a, b) => a.bucket - b.bucket || a.state.localeCompare(b.state));
  let latency;
  if (viaCounters) {
    latency = store.report.latencyCounts(w);
  } else {
    const byHop = new Map<string, { bins: number[]; buckets: Map<number, number> }>();
    for (const [nexthop, ms] of store.report.raw.deliveryLatencies(w)) {
      const v = Math.max(0, ms);
      let hop = byHop.get(nexthop);
      if (!hop) byHop.set(nexthop, (hop = { bins: new Array<number>(COUNTER_LATENCY_BINS_MS.length + 1).fill(0), buckets: new Map() }));
      const bin = COUNTER_LATENCY_BINS_MS.findIndex((edge) => v < edge);
      hop.bins[bin === -1 ? COUNTER_LATENCY_BINS_MS.length : bin]!++;
      hop.buckets.set(latencyBucket(v), (hop.buckets.get(latencyBucket(v)) ?? 0) + 1);
    }
    latency = [...byHop.keys()].sort().map((nexthop) => {
      const hop = byHop.get(nexthop)!;
      return { nexthop, delivered: hop.bins.reduce((a, n) => a + n, 0), bins: hop.bins, buckets: [...hop.buckets].sort((a, b) => a[0] - b[0]) };
    });
  }
  return {
    received: r.received(w),
    finished: byBucketState(r.finished(w)),
    deferred: r.deferred(w),
    latency,
    languages: r.languages(w),
    podMessages: r.podMessages(w),
    podMaillog: r.podMaillog(w),
    dispositions: r.dispositions(w),
    topRules: r.topRules(w, -1),
    linkCoverage: r.linkCoverage(w),
    linksByVia: r.linksByVia(w),
    upstreamCoverage: r.upstreamCoverage(w),
  };
}

function randomWindow(random: () => number): ReportWindow {
  const pick = () => (random() < 0.5 ? BASE - H + Math.floor(random() * (SPAN + 2 * H) / H) * H : BASE - H + Math.floor(random() * (SPAN + 2 * H)));
  let since = pick();
  let until = random() < 0.2 ? since + Math.floor(random() * H) + 1 : pick();
  if (until < since) [since, until] = [until, since];
  if (until === since) until += 1;
  return { since, until, bucketMs: random() < 0.5 ? H : 24 * H };
}

interface Model {
  qid: string;
  receivedAt: number;
  open: string[];
}

function run(seed: number, steps: number): { checked: number; saw: Set<string> } {
  const random = prng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const store = Store.open(join(dir, `seed-${seed}.db`));
  const messages: Model[] = [];
  const payloads: string[] = [];
  const hops = ['smtp://a.example:25', 'lmtp://b.example:24', 'maildir:/var/mail'];
  const upstreams = Array.from({ length: 12 }, (_, i) => `4UP${String(i).padStart(4, '0')}`);
  const messageIds = Array.from({ length: 12 }, (_, i) => `m${i}@up.example`);
  const saw = new Set<string>();
  let n = 0;
  let checked = 0;
  const at = () => BASE + Math.floor(random() * SPAN);
  const check = (step: number) => {
    for (let k = 0; k < 3; k++) {
      const w = randomWindow(random);
      const counted = figures(store, w, true);
      const recount = figures(store, w, false);
      if (JSON.stringify(counted) !== JSON.stringify(recount)) {
        store.close();
        throw new Error(`seed ${seed}, step ${step}, window ${JSON.stringify(w)}:\ncounters ${JSON.stringify(counted)}\nrows     ${JSON.stringify(recount)}`);
      }
      checked++;
    }
  };

  step: for (let step = 0; step < steps; step++) {
    if (step % 10 === 0 && step > 0) check(step);
    const op = random();
    if (op < 0.2 || messages.length === 0) {
      const qid = `Q${String(n++).padStart(12, '0')}`;
      const receivedAt = at();
      const rcpts = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => `r${i}@m.example`);
      const origin = messages.length && random() < 0.15 ? { qid: pick(messages).qid, kind: 'bounce' as const } : undefined;
      store.queue.insertMessage({ qid, receivedAt, envelopeFrom: 's@up.example', size: 100, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: rcpts, origin });
      if (origin) saw.add('bounce');
      messages.push({ qid, receivedAt, open: [...rcpts] });
    } else if (op < 0.45) {
      const m = pick(messages);
      if (!m.open.length) continue step;
      const startedAt = m.receivedAt + pick([0, 1, 999, 1000, 4096, Math.floor(random() * 2 * H), Math.floor(random() * 2 * 24 * H)]);
      const outcomes = m.open.filter(() => random() < 0.8).map((rcpt) => [rcpt, pick(['delivered', 'delivered', 'deferred', 'failed'] as const)] as const);
      if (!outcomes.length) continue step;
      const outcome: AttemptRecord['outcome'] = outcomes.every(([, s]) => s === outcomes[0]![1]) ? outcomes[0]![1] : 'partial';
      const nexthop = pick(hops);
      store.queue.recordRound(
        m.qid,
        [{ qid: m.qid, nexthop, startedAt, durationMs: 5, reply: '250 ok', outcome, recipients: outcomes.map(([rcpt, state]) => ({ rcpt, state, reply: state, nextAttemptAt: startedAt + H })) }],
        outcomes.map(([rcpt]) => rcpt),
        startedAt,
      );
      for (const [rcpt, state] of outcomes) {
        if (state !== 'deferred') m.open = m.open.filter((r) => r !== rcpt);
        else saw.add('retry');
      }
    } else if (op < 0.55) {
      const m = pick(messages);
      store.correlation.recordMessageKeys(
        { qid: m.qid, receivedAt: m.receivedAt, keys: { messageId: pick(messageIds), upstreamQid: random() < 0.5 ? pick(upstreams) : undefined, upstreamHost: 'mx.up.example', proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 's@up.example', rcpts: [], clientAddress: '192.0.2.1', size: 100 },
        m.receivedAt,
      );
    } else if (op < 0.75) {
      const batch: string[] = [];
      for (let k = 1 + Math.floor(random() * 4); k > 0; k--) {
        const up = pick(upstreams);
        const when = at();
        const kind = random();
        if (kind < 0.3) {
          batch.push(messageEvent({ guid: `g${n++}`, at: when, upstreamQid: up, messageId: pick(messageIds), disposition: pick(['continue', 'discard', 'quarantine']), rules: random() < 0.2 ? [] : [[pick(['spam', 'access']), pick(['bulk', 'system', 'notspam'])], [pick(['spam', 'dmarc']), pick(['pass', 'bulk'])]] }));
        } else if (kind < 0.5) {
          batch.push(maillogEvent({ id: `l${n++}`, at: when, upstreamQid: up, fields: fromLine('s@up.example', pick(messageIds)) }));
        } else {
          // a hand-over to mailbag, to a qid it has or not; an upstream qid often hands over in several hours
          const target = random() < 0.7 && messages.length ? pick(messages).qid : `QX${String(n).padStart(11, '0')}`;
          batch.push(maillogEvent({ id: `l${n++}`, at: when, upstreamQid: up, fields: sentToMailbagLine('r0@m.example', target) }));
        }
      }
      if (payloads.length && random() < 0.4) {
        batch.push(...payloads.filter(() => random() < 0.3));
        saw.add('re-import');
      }
      payloads.push(...batch);
      store.pod.storeBatch(batch.map((p) => ingestToBatchItem(p, 'test')), { source: 'test' });
    } else if (op < 0.85) {
      const m = pick(messages);
      const choices = ['r0@m.example', 'r1@m.example'].map((rcpt) => {
        const mode = pick(['select', 'reorder', 'unchanged'] as const);
        const tags = mode === 'select' ? pick(['de', 'fr', 'en-GB', 'ja']) : null;
        return { rcpt, mode, partIndex: tags ? 1 : null, tags, translationType: null, rule: 'exact', why: 'test', preferences: 'de', fromMismatch: false, dkim: null };
      });
      store.multilingual.recordChoices(m.qid, choices, m.receivedAt + Math.floor(random() * H));
      saw.add('language split');
    } else if (op < 0.9) {
      if (store.pruneFinished(at(), 1 + Math.floor(random() * 5)) > 0) saw.add('pruned');    } else if (op < 0.93) {
      // PoD retention: events (and dead letters) before a random time, with the links they alone made
      const pruned = store.prunePodBefore(at(), 1 + Math.floor(random() * 5));
      if (pruned.messageEvents + pruned.maillogEvents > 0) saw.add('pod pruned');
      if (pruned.links > 0) saw.add('links pruned');
    } else if (op < 0.96) {
      // `queue delete`: its unfinished recipients marked deleted, the message finished when nothing is left
      const m = pick(messages);
      const when = m.receivedAt + Math.floor(random() * 2 * H);
      if (store.queue.markDeleted(m.qid, when) > 0) saw.add('queue delete');
      store.queue.finishIfDone(m.qid, when);
      m.open = [];
    }
  }
  check(steps);
  const all = figures(store, { since: BASE - 24 * H, until: BASE + SPAN + 24 * H, bucketMs: 24 * H }, true);
  if (all.linkCoverage.linked > 0) saw.add('linked');
  if (all.upstreamCoverage.messages > 0) saw.add('handed over');
  store.close();
  return { checked, saw };
}

t.test('the counters equal a recount from the rows over random histories and windows', async (t) => {
  const saw = new Set<string>();
  let checked = 0;
  for (const seed of [1, 2, 3]) {
    const r = run(seed, 200);
    checked += r.checked;
    for (const s of r.saw) saw.add(s);
  }
  t.equal(checked, 3 * 20 * 3, 'every window checked');
  t.same([...saw].sort(), ['bounce', 'handed over', 'language split', 'linked', 'links pruned', 'pod pruned', 'queue delete', 're-import', 'retry', 'pruned'].sort(), 'the histories covered every kind of write');
});

t.test('an upstream message handed to mailbag in several hours is counted once per window', async (t) => {
  const store = Store.open(join(dir, 'spanning.db'));
  t.teardown(() => store.close());
  const day = Date.UTC(2026, 10, 29);
  store.pod.storeBatch(
    [
      maillogEvent({ id: 'a', at: day + 1 * H + 10, upstreamQid: '4USPAN1', fields: sentToMailbagLine('a@m.example', 'QSPAN00000001') }),
      maillogEvent({ id: 'b', at: day + 5 * H + 10, upstreamQid: '4USPAN1', fields: sentToMailbagLine('b@m.example', 'QSPAN00000002') }),
      maillogEvent({ id: 'c', at: day + 3 * H + 10, upstreamQid: '4UONE01', fields: sentToMailbagLine('c@m.example', 'QSPAN00000003') }),
    ].map((p) => ingestToBatchItem(p, 'test')),
    { source: 'test' },
  );
  for (const [since, until, messages] of [
    [day, day + 24 * H, 2],
    [day + 2 * H, day + 24 * H, 2],
    [day + 2 * H, day + 4 * H, 1],
    [day + 1 * H + 11, day + 5 * H + 10, 1],
    [day + 1 * H + 10, day + 1 * H + 11, 1],
  ] as const) {
    const w = { since, until, bucketMs: H };
    t.same(store.report.upstreamCoverage(w), { messages, linked: 0 }, `${new Date(since).toISOString()} .. ${new Date(until).toISOString()}`);
    t.same(store.report.upstreamCoverage(w), store.report.raw.upstreamCoverage(w));
  }
});

t.test('the triggers bin latencies as the report does', async (t) => {
  t.same([...LATENCY_BINS_MS], [...COUNTER_LATENCY_BINS_MS]);
  const store = Store.open(join(dir, 'bins.db'));
  t.teardown(() => store.close());
  const at = Date.UTC(2026, 10, 29);
  // edges of bins and of doublings, where a rounding would show
  const latencies = [0, 1, 2, 3, 999, 1000, 1023, 1024, 4999, 5000, 65_536, 86_399_999, 86_400_000, 200_000_000];
  latencies.forEach((ms, i) => {
    const qid = `QBIN${String(i).padStart(9, '0')}`;
    store.queue.insertMessage({ qid, receivedAt: at, envelopeFrom: 's@x', size: 1, spoolPath: '/nonexistent', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['r@x'] });
    store.queue.recordRound(qid, [{ qid, nexthop: 'smtp://x:25', startedAt: at + ms, durationMs: 1, reply: '250', outcome: 'delivered', recipients: [{ rcpt: 'r@x', state: 'delivered', reply: '250' }] }], ['r@x'], at + ms);
  });
  const w = { since: at, until: at + 3 * 24 * H, bucketMs: 24 * H };
  t.same(figures(store, w, true).latency, figures(store, w, false).latency);
});

t.test('a message whose origin and upstream links were stored before it is counted with them', async (t) => {
  // the insert trigger counts a new message's origin and links when they were stored before it
  const store = Store.open(join(dir, 'related-first.db'));
  t.teardown(() => store.close());
  const at = Date.UTC(2026, 10, 29) + 10 * H;
  const insert = (qid: string) =>
    store.queue.insertMessage({ qid, receivedAt: at, envelopeFrom: 's@x', size: 1, spoolPath: '/nonexistent', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['r@x'] });
  insert('QREL000000001');
  store.db.prepare("INSERT INTO message_origins (qid, origin_qid, kind, recorded_at) VALUES ('QREL000000002', 'QREL000000001', 'bounce', ?)").run(at);
  store.db.prepare("INSERT INTO upstream_links (upstream_qid, qid, via, linked_at) VALUES ('4UREL1', 'QREL000000003', 'received', ?), ('4UREL1', 'QREL000000003', 'guid', ?)").run(at, at);
  insert('QREL000000002');
  insert('QREL000000003');
  const w = { since: at - H, until: at + H, bucketMs: H };
  const counted = figures(store, w, true);
  t.same(counted, figures(store, w, false));
  t.same(counted.linkCoverage, { messages: 2, linked: 1 }, 'the bounce is not counted as received from upstream; the linked one is linked');
  t.same(counted.linksByVia, [{ name: 'guid', n: 1 }, { name: 'received', n: 1 }]);
});

t.test('a report over whole hours reads the counters, not the rows', async (t) => {
  const Database = (await import('better-sqlite3')).default;
  const { buildReport } = await import('../src/cli/report/build.js');
  const { seedReportStore } = await import('./helpers/report-seed.js');
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<'get' | 'all' | 'iterate', (...args: unknown[]) => unknown>;
  probe.close();
  const sqls = new Set<string>();
  const originals = (['get', 'all', 'iterate'] as const).map((m) => [m, proto[m]] as const);
  for (const [m, original] of originals) {
    proto[m] = function (this: { source: string }, ...args: unknown[]) {
      sqls.add(this.source);
      return original.apply(this, args);
    };
  }
  t.teardown(() => {
    for (const [m, original] of originals) proto[m] = original;
  });
  const store = Store.open(join(dir, 'reads.db'));
  t.teardown(() => store.close());
  seedReportStore(store);
  sqls.clear();
  const report = buildReport(store, { since: Date.UTC(2026, 9, 31), until: Date.UTC(2026, 10, 30), by: 'day' });
  t.equal(report.messages.received, 6, 'the seeded messages are in the window');
  t.equal(report.latencyPercentiles, 'exact', 'few deliveries: exact percentiles, from the rows');
  // Counted from the rows by design: dead letters, IMP receipts, the few upstream messages
  // handed over in several hours, and the exact latencies of a small window.
  const fromRows = [...sqls].map((sql) => sql.replace(/\s+/g, ' ')).filter((sql) => !/FROM (report_hourly|report_latency_hourly|report_upstream|pod_dead_letters|imp_inbound)\b/.test(sql));
  t.same(
    fromRows.map((sql) => sql.slice(0, 60)),
    ["SELECT COALESCE(r.nexthop, '') AS nexthop, r.updated_at - m."],
    'only the exact latencies read rows',
  );
  // imp.accepted walks the IMP rows and probes messages, not every message of the window
  const imp = [...sqls].find((sql) => /FROM imp_inbound\b/.test(sql))!;
  const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${imp}`).all(0, 1) as { detail: string }[]).map((p) => p.detail);
  t.notOk(plan.some((d) => /messages_received/.test(d)), plan.join('; '));
});
