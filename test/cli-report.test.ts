import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { percentile } from '../src/cli/report/build.js';
import { parseReportTime, reportWindow } from '../src/cli/report/time.js';
import { UsageError } from '../src/cli/command.js';
import { latestVersion } from '../src/store/migrations.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { DAY, EXPECTED, seedReportStore } from './helpers/report-seed.js';
import { messageEvent } from './helpers/report-pod-events.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-report-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function config(dbPath: string): string {
  const cfg = join(dir, `c${n++}.yaml`);
  writeFileSync(cfg, `store: { path: ${JSON.stringify(dbPath)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);
  return cfg;
}

const seededDb = join(dir, 'seeded.db');
{
  const store = Store.open(seededDb);
  seedReportStore(store);
  store.close();
}
const seeded = config(seededDb);
const DAY_ARGS = ['--since', '2026-11-29', '--until', '2026-11-30T00:00:00Z'];

interface JsonReport {
  window: { since: string; until: string; by: string };
  messages: Record<string, number>;
  latency: unknown[];
  languages: unknown;
  imp: { forwarded: number; accepted: number; note: string };
  pod: Record<string, unknown>;
  correlation: { messages: number; linked: number; coverage: number | null; definition: string; byVia: Record<string, number>; upstream: { messages: number; linked: number; coverage: number | null } };
  buckets: Record<string, string | number>[];
}

t.test('--format json: every figure of the seeded day', async (t) => {
  const r = await cli(['report', ...DAY_ARGS, '--format', 'json', '--config', seeded]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as JsonReport;
  t.same(j.window, EXPECTED.window);
  t.same(j.messages, EXPECTED.messages);
  t.same(j.latency, EXPECTED.latency);
  t.same(j.languages, EXPECTED.languages);
  t.same(j.pod, EXPECTED.pod);
  t.same(
    {
      messages: j.correlation.messages,
      linked: j.correlation.linked,
      byVia: j.correlation.byVia,
      upstream: { messages: j.correlation.upstream.messages, linked: j.correlation.upstream.linked },
    },
    EXPECTED.correlation,
  );
  t.equal(j.correlation.coverage, 3 / 4);
  t.equal(j.correlation.upstream.coverage, 2 / 3);
  t.match(j.correlation.definition, /linked to an upstream message by correlation/);
  t.same({ forwarded: j.imp.forwarded, accepted: j.imp.accepted }, { forwarded: 0, accepted: 0 }, 'IMP section present, zero');
  t.match(j.imp.note, /accepted: messages received over IMP/);
  t.equal(j.buckets.length, 24, 'one bucket per hour');
  t.same(j.buckets[0], { start: '2026-11-29T00:00:00.000Z', received: 0, delivered: 1, deferred: 0, bounced: 0, podMessage: 1, podMaillog: 1, podDeadLettered: 0 });
  t.same(j.buckets[1], { start: '2026-11-29T01:00:00.000Z', received: 1, delivered: 1, deferred: 1, bounced: 0, podMessage: 0, podMaillog: 1, podDeadLettered: 0 });
  t.same(j.buckets[8], { start: '2026-11-29T08:00:00.000Z', received: 0, delivered: 0, deferred: 0, bounced: 0, podMessage: 0, podMaillog: 0, podDeadLettered: 1 });
  const totals = (key: string) => j.buckets.reduce((acc, b) => acc + (b[key] as number), 0);
  t.same(
    { received: totals('received'), delivered: totals('delivered'), deferred: totals('deferred'), bounced: totals('bounced') },
    EXPECTED.messages,
    'the buckets add up to the totals',
  );
});

t.test('--by day over two days; the day after holds QE only', async (t) => {
  const r = await cli(['report', '--since', '2026-11-29', '--until', '2026-12-01', '--by', 'day', '--format', 'json', '--config', seeded]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as JsonReport;
  t.equal(j.window.by, 'day');
  t.same(j.buckets.map((b) => [b.start, b.received, b.deferred]), [
    ['2026-11-29T00:00:00.000Z', 5, 1],
    ['2026-11-30T00:00:00.000Z', 1, 1],
  ]);
});

t.test('--format csv: a header and one row per bucket', async (t) => {
  const r = await cli(['report', ...DAY_ARGS, '--format', 'csv', '--config', seeded]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().split('\r\n');
  t.equal(lines.pop(), '', 'ends with CRLF');
  t.equal(lines[0], 'start,received,delivered,deferred,bounced,podMessage,podMaillog,podDeadLettered');
  t.equal(lines.length, 25);
  t.equal(lines[2], '2026-11-29T01:00:00.000Z,1,1,1,0,0,1,0');
  t.equal(lines[4], '2026-11-29T03:00:00.000Z,2,0,0,1,0,0,0', 'QB and its bounce');
});

t.test('table: every section, with its figures', async (t) => {
  const r = await cli(['report', ...DAY_ARGS, '--config', seeded]);
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  t.match(out, /^mailbag report 2026-11-29T00:00:00.000Z \.\. 2026-11-30T00:00:00.000Z \(by hour\)\n/);
  t.match(out, /received\s+delivered\s+deferred\s+bounced\n\s+5\s+6\s+1\s+1\n/);
  t.match(out, /smtp:\/\/hop1\.example:25\s+3\s+1\.0 h\s+1\.2 h\s+1\.2 h/);
  t.match(out, /maildir:\/var\/mail\s+3\s+500 ms\s+500 ms\s+500 ms/);
  t.match(out, /de\s+2\n\s+decisions by mode: select 2, unchanged 1/);
  t.match(out, /IMP traffic\n\s+forwarded\s+accepted\n\s+0\s+0\n/);
  t.match(out, /message\s+maillog\s+dead-lettered\n\s+4\s+5\s+1\n/);
  t.match(out, /continue\s+3\n\s+discard\s+1/);
  t.match(out, /access\s+system\s+3/);
  t.match(out, /3 of 4 messages linked: 75\.0% \(by message-id 1, queued-as 2, received 1\)/);
  t.match(out, /2 of 3 upstream messages handed to mailbag found: 66\.7%/);
  const widest = Math.max(...out.split('\n').map((l) => l.length));
  t.ok(widest <= 80, `fits 80 columns (widest line ${widest})`);
});

t.test('an empty window: zeros, coverage n/a, exit 0', async (t) => {
  const r = await cli(['report', '--since', '2020-01-01', '--until', '2020-01-02', '--format', 'json', '--config', seeded]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as JsonReport;
  t.same(j.messages, { received: 0, delivered: 0, deferred: 0, bounced: 0 });
  t.same({ message: j.pod.message, maillog: j.pod.maillog, deadLettered: j.pod.deadLettered }, { message: 0, maillog: 0, deadLettered: 0 });
  t.same({ messages: j.correlation.messages, linked: j.correlation.linked, coverage: j.correlation.coverage }, { messages: 0, linked: 0, coverage: null });
  const table = await cli(['report', '--since', '2020-01-01', '--until', '2020-01-02', '--config', seeded]);
  t.match(table.stdout.toString(), /no deliveries in the window/);
  t.match(table.stdout.toString(), /n\/a \(no messages in the window\)/);
});

t.test('relative times and the default window (the last 24 hours)', async (t) => {
  const before = Date.now();
  const r = await cli(['report', '--format', 'json', '--config', seeded]);
  const after = Date.now();
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as JsonReport;
  const until = Date.parse(j.window.until);
  t.ok(until >= before && until <= after, 'until is now');
  t.equal(until - Date.parse(j.window.since), 86_400_000);
  t.equal(j.window.by, 'hour');
  const week = JSON.parse((await cli(['report', '--since', '7d', '--format', 'json', '--config', seeded])).stdout.toString()) as JsonReport;
  t.equal(Date.parse(week.window.until) - Date.parse(week.window.since), 7 * 86_400_000);
  t.equal(week.window.by, 'day', 'more than two days: by day');
});

t.test('parseReportTime', async (t) => {
  const now = Date.UTC(2026, 10, 30, 12);
  t.equal(parseReportTime('--since', '24h', now), now - 86_400_000);
  t.equal(parseReportTime('--since', '-30m', now), now - 1_800_000);
  t.equal(parseReportTime('--since', '2w', now), now - 14 * 86_400_000);
  t.equal(parseReportTime('--since', 'now', now), now);
  t.equal(parseReportTime('--since', '2026-11-29', now), Date.UTC(2026, 10, 29));
  t.equal(parseReportTime('--since', '2026-11-29T08:30', now), Date.UTC(2026, 10, 29, 8, 30));
  t.equal(parseReportTime('--since', '2026-11-29T08:30:15.250Z', now), Date.UTC(2026, 10, 29, 8, 30, 15, 250));
  t.equal(parseReportTime('--since', '2026-11-29T08:30:00+01:00', now), Date.UTC(2026, 10, 29, 7, 30));
  t.equal(parseReportTime('--since', '2026-11-29 08:30-0700', now), Date.UTC(2026, 10, 29, 15, 30));
  for (const bad of ['yesterday', '2026-02-30', '2026-11-29T25:00', '24', 'h', '2026/11/29', '7 d', '', '2026-11-29T08:30+1']) {
    t.throws(() => parseReportTime('--since', bad, now), UsageError, `'${bad}'`);
  }
  t.throws(() => reportWindow({ since: '1h', until: '2h' }, now), /--since .* must be before --until/);
  // an offset out of range is a malformed time, not one silently shifted by a day or more
  for (const bad of ['2026-11-29T08:30+24:00', '2026-11-29T08:30-01:60', '2026-11-29T08:30+9999', '2026-11-29 08:30+99:00']) {
    t.throws(() => parseReportTime('--since', bad, now), UsageError, `'${bad}'`);
  }
  // a window across a DST change, spelled in local offsets (March 29 2026: CET to CEST), and across a month end
  const dst = reportWindow({ since: '2026-03-29T01:30+01:00', until: '2026-03-29T03:30+02:00' }, now);
  t.same([dst.since, dst.until, dst.by], [Date.UTC(2026, 2, 29, 0, 30), Date.UTC(2026, 2, 29, 1, 30), 'hour']);
  const monthEnd = reportWindow({ since: '2026-02-28T22:00-01:00', until: '2026-03-01T00:30:00.000z' }, now);
  t.same([monthEnd.since, monthEnd.until], [Date.UTC(2026, 1, 28, 23), Date.UTC(2026, 2, 1, 0, 30)]);
  t.throws(() => reportWindow({ by: 'week' }, now), /--by must be hour or day/);
});

t.test('percentile: nearest rank', async (t) => {
  const list = Array.from({ length: 100 }, (_, i) => i + 1);
  t.same([percentile(list, 50), percentile(list, 90), percentile(list, 99)], [50, 90, 99]);
  t.same([percentile([7], 50), percentile([7], 99)], [7, 7]);
  t.same([percentile([1, 2], 50), percentile([1, 2], 90)], [1, 2]);
});

t.test('bad input: one clear line and the right exit code', async (t) => {
  const cases: [string[], number, RegExp][] = [
    [['--since', 'yesterday'], 2, /^mailbag report: --since 'yesterday' is not a time: use ISO 8601/],
    [['--until', '2026-13-01'], 2, /^mailbag report: --until '2026-13-01' is not a time/],
    [['--since', '2026-11-30', '--until', '2026-11-29'], 2, /^mailbag report: --since \(2026-11-30T00:00:00\.000Z\) must be before --until \(2026-11-29T00:00:00\.000Z\)/],
    [['--since', '1h', '--until', '1h'], 2, /must be before --until/],
    [['--format', 'xml'], 2, /^mailbag report: --format must be table, json or csv, not 'xml'/],
    [['--by', 'week'], 2, /^mailbag report: --by must be hour or day/],
    [['extra'], 2, /^mailbag report: unexpected argument 'extra'/],
    [['--bogus'], 2, /^mailbag report: Unknown option '--bogus'/],
    [['--since', '1000w', '--by', 'hour'], 1, /^mailbag report: the window holds \d+ hours: use --by day/],
  ];
  for (const [argv, code, message] of cases) {
    const r = await cli(['report', ...argv, '--config', seeded]);
    t.equal(r.code, code, argv.join(' '));
    t.match(r.stderr, message, argv.join(' '));
    t.equal(r.stderr.split('\n').length, 2, 'one line');
    t.equal(r.stdout.length, 0, 'nothing on stdout');
  }
});

t.test('a missing store, an empty file, an older schema: exit 1, one line', async (t) => {
  const missing = join(dir, 'missing.db');
  let r = await cli(['report', '--config', config(missing)]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `mailbag report: no store at ${missing} (has the gateway run with this config?)\n`);

  const empty = join(dir, 'empty.db');
  writeFileSync(empty, '');
  r = await cli(['report', '--config', config(empty)]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `mailbag report: store ${empty} is empty (no schema yet): has the gateway run with this config?\n`);

  const old = join(dir, 'old.db');
  const store = Store.open(old);
  store.db.exec('DELETE FROM schema_migrations WHERE version = 15');
  store.close();
  r = await cli(['report', '--config', config(old)]);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^mailbag report: store .* is at schema 9 \\(without 15\\)|^mailbag report: store .* this mailbag expects ${latestVersion()}`));
  t.equal(r.stderr.split('\n').length, 2);
});

t.test('migration 15 fills pod_message_rules for events stored before it', async (t) => {
  const path = join(dir, 'before15.db');
  const store = Store.open(path);
  store.pod.storeBatch([ingestToBatchItem(messageEvent({ guid: 'g', at: DAY + 1000, upstreamQid: '4Q', messageId: 'm@x', disposition: 'continue', rules: [['spam', 'bulk'], ['access', 'system']] }), 'x')], { source: 'x' });
  // Play a store written before migration 15 (so before 18 too): no rule table, no rule rows.
  store.db.exec('DROP TABLE pod_message_rules; DELETE FROM schema_migrations WHERE version IN (15, 18)');
  for (const name of ['messages_received', 'recipients_finished', 'attempts_started', 'language_choices_decided', 'pod_dead_letters_received', 'pod_message_events_ts_disposition', 'pod_maillog_events_ts_queued_as']) {
    store.db.exec(`DROP INDEX ${name}`);
  }
  store.close();
  const again = Store.open(path);
  t.teardown(() => again.close());
  t.same(again.report.topRules({ since: DAY, until: DAY + 86_400_000, bucketMs: 3_600_000 }, 10), [
    { module: 'access', rule: 'system', n: 1 },
    { module: 'spam', rule: 'bulk', n: 1 },
  ]);
});

t.test('imp.accepted counts the messages of the window that came over IMP', async (t) => {
  const dbPath = join(dir, 'imp.db');
  const store = Store.open(dbPath);
  const inWindow = Date.parse('2026-11-29T10:00:00Z');
  for (const [qid, at] of [
    ['0IMPACCEPT001', inWindow],
    ['0IMPACCEPT002', inWindow + 1000],
    ['0IMPACCEPT003', Date.parse('2026-11-30T10:00:00Z')],
  ] as const) {
    store.queue.insertMessage({ qid, receivedAt: at, envelopeFrom: 'a@example.test', size: 10, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['b@example.test'] });
  }
  // the acceptor records the transaction of a message accepted over IMP (migration 13)
  const record = store.db.prepare('INSERT INTO imp_inbound (qid, tid_tn, tid_ihn, stamp, peer) VALUES (?, ?, ?, ?, ?)');
  record.run('0IMPACCEPT001', 1, 167772404, '[167772404]', '127.0.0.1');
  record.run('0IMPACCEPT003', 2, 167772404, '[167772404]', '127.0.0.1');
  store.close();
  const r = await cli(['report', ...DAY_ARGS, '--format', 'json', '--config', config(dbPath)]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as JsonReport;
  t.equal(j.imp.accepted, 1, 'one of the day\'s two messages came over IMP; the third is outside the window');
});
