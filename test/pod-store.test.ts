import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deadLetterRow, eventRow, ingestPayload, ingestToBatchItem } from '../src/pod/ingest.js';
import type { PodBatchItem } from '../src/store/pod-store.js';
import { Store } from '../src/store/store.js';
import { corpusEvents, podFixture } from './helpers/pod-corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-pod-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function openStore(): Store {
  const store = Store.open(join(dir, `s${n++}.db`));
  t.teardown(() => store.close());
  return store;
}

const corpus = corpusEvents();
const items = (): PodBatchItem[] => corpus.map((c) => ingestToBatchItem(c.payload, c.source));

t.test('the corpus stores once; a replay and an overlapping batch store nothing twice', async (t) => {
  const store = openStore();
  t.same(store.pod.storeBatch(items(), { source: 'test' }), { stored: 40, duplicates: 0, deadLettered: 0 });
  t.same(store.pod.storeBatch(items(), { source: 'test' }), { stored: 0, duplicates: 40, deadLettered: 0 }, 'replayed whole');
  const overlap = [...items().slice(30), ingestToBatchItem(podFixture('document-maillog-example.json'), 'doc')];
  t.same(store.pod.storeBatch(overlap, { source: 'test' }), { stored: 1, duplicates: 10, deadLettered: 0 }, 'an overlapping window adds only the new event');
  t.same(store.pod.counts(), { messages: 22, maillogs: 19, deadLetters: 0 });
  const inOneBatch = items().slice(0, 2);
  t.same(openStore().pod.storeBatch([...inOneBatch, ...inOneBatch], { source: 'test' }), { stored: 2, duplicates: 2, deadLettered: 0 }, 'duplicates within one batch');
});

t.test('two different events sharing a guid, or an id, are both kept', async (t) => {
  const store = openStore();
  store.pod.storeBatch(items(), { source: 'test' });
  const rows = store.db.prepare('SELECT guid, COUNT(*) AS n FROM pod_message_events GROUP BY guid HAVING n > 1').all() as { n: number }[];
  t.ok(rows.length >= 1, 'the samples hold guids used by several events');
  const first = JSON.parse(corpus.find((c) => c.source === 'elastic-test-message.jsonl:1')!.payload) as { filter: Record<string, unknown> };
  const same = JSON.stringify({ ...first, filter: { ...first.filter, disposition: 'quarantine' } });
  t.same(store.pod.storeBatch([ingestToBatchItem(same, 'x')], { source: 'test' }), { stored: 1, duplicates: 0, deadLettered: 0 }, 'same guid and ts, other content');
  const ids = store.db.prepare("SELECT COUNT(*) AS n FROM pod_maillog_events WHERE event_id = 'ZeYABCDefghN0123456OyA'").get() as { n: number };
  t.equal(ids.n, 3, 'three maillog samples share one id');
});

t.test('parsed sendmail fields are columns; qid and message-id lookups use their indexes', async (t) => {
  const store = openStore();
  store.pod.storeBatch(items(), { source: 'test' });
  const byQid = store.pod.maillogEventsByQid('45ABSW12341234');
  t.equal(byQid.length, 12);
  const from = byQid.find((r) => r.mail_from === 'mailive@example.com')!;
  t.match(from, { message_id: '171012345678974.123456.3315712345678901186@test.example.net', nrcpts: 1, size: 1557, rcpts: null });
  const to = byQid.find((r) => r.rcpts !== null)!;
  t.match(to, { relay: 'test4.example.net. [216.160.83.56]', stat: 'Sent (Ok: queued)', dsn: '2.0.0', mailer: 'relay', queued_as: null });
  t.equal(store.pod.maillogEventsByMessageId('171012345678974.123456.3315712345678901186@test.example.net').length, 6);
  const msg = store.pod.messageEventsByQid('11AAa1AA1111111');
  t.match(msg, [{ guid: 'AAaaA1a30A6A5AA6aaacAAa11a1aAAAA', ts: '2025-05-11T14:05:02.318134Z', message_id: '111111111111.11AA111A110111@a0011111.abc.net', cid: 'pod_hosted' }]);
  t.same((JSON.parse(msg[0]!.event) as { pps: unknown }).pps, { agent: 'a0072552.ppops.net', cid: 'pod_hosted', version: '8.22.0.1767' }, 'the normalised event is stored');
  t.equal(store.pod.messageEventsByMessageId('111111111111.11AA111A110111@a0011111.abc.net').length, 1);

  const plan = (sql: string) => (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('x') as { detail: string }[]).map((r) => r.detail).join('; ');
  t.match(plan('SELECT * FROM pod_maillog_events WHERE qid = ?'), /USING INDEX pod_maillog_events_qid/);
  t.match(plan('SELECT * FROM pod_maillog_events WHERE message_id = ?'), /USING INDEX pod_maillog_events_message_id/);
  t.match(plan('SELECT * FROM pod_maillog_events WHERE queued_as = ?'), /USING INDEX pod_maillog_events_queued_as/);
  t.match(plan('SELECT * FROM pod_message_events WHERE qid = ?'), /USING INDEX pod_message_events_qid/);
  t.match(plan('SELECT * FROM pod_message_events WHERE message_id = ?'), /USING INDEX pod_message_events_message_id/);
});

t.test("the raw line's values win over sm.* (cut at '=', or simply different)", async (t) => {
  const store = openStore();
  const doc = JSON.parse(podFixture('document-maillog-example.json')) as Record<string, unknown>;
  const line =
    '2017-08-17T14:54:13.000001-07:00 example sendmail[30642]: v7HLqYbx029425: to=<alice@example.test>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120812, relay=mailbag.example.test. [10.0.0.5], dsn=2.0.0, stat=Sent (2.6.0 Ok: queued as 0MWVXTKU30000)';
  const ev = { ...doc, id: 'verp1', ts: '2017-08-17T14:54:13.000001-07:00', data: line, sm: { qid: 'v7HLqYbx029425', stat: 'Sent (2.6.0 Ok: queued as 0MWVXTKU30000)', to: ['<alice@example.test>'] } };
  const from = {
    ...doc,
    id: 'verp2',
    data: 'v7HLqYbx029425: from=<bounce-alice=example.test@lists.example.org>, size=5, class=0, nrcpts=1, msgid=<a=b@x>, relay=x [10.0.0.1]',
    sm: { qid: 'v7HLqYbx029425', from: '<bounce-alice', msgid: '<a' },
  };
  store.pod.storeBatch([ingestToBatchItem(JSON.stringify(ev), 'x'), ingestToBatchItem(JSON.stringify(from), 'x')], { source: 'test' });
  const rows = store.pod.maillogEventsByQid('v7HLqYbx029425');
  t.match(rows, [{ mail_from: 'bounce-alice=example.test@lists.example.org', message_id: 'a=b@x' }, { queued_as: '0MWVXTKU30000', rcpts: '["alice@example.test"]' }]);
  t.equal(store.db.prepare('SELECT qid FROM pod_maillog_events WHERE queued_as = ?').pluck().get('0MWVXTKU30000'), 'v7HLqYbx029425', "a mailbag qid finds the upstream line");
});

t.test('message events and maillog lines join on one Message-ID form (domain case, brackets, comments)', async (t) => {
  const store = openStore();
  const dd = JSON.parse(corpus.find((c) => c.source.startsWith('datadog'))!.payload) as { msg: { header: Record<string, unknown> } };
  const message = { ...dd, guid: 'join1', msg: { ...dd.msg, header: { ...dd.msg.header, 'message-id': ['<Part.One@Mail.Example.COM> (comment)'] } } };
  const doc = JSON.parse(podFixture('document-maillog-example.json')) as Record<string, unknown>;
  const line = { ...doc, id: 'join2', data: 'q2q2q2q2q2: from=<a@b>, size=1, class=0, nrcpts=1, msgid=<Part.One@mail.example.com>, relay=x', sm: { qid: 'q2q2q2q2q2' } };
  store.pod.storeBatch([ingestToBatchItem(JSON.stringify(message), 'x'), ingestToBatchItem(JSON.stringify(line), 'x')], { source: 'test' });
  t.equal(store.pod.messageEventsByMessageId('Part.One@mail.example.com').length, 1);
  t.equal(store.pod.maillogEventsByMessageId('Part.One@mail.example.com').length, 1);
});

t.test('dead letters: kept with reason and source, once per payload', async (t) => {
  const store = openStore();
  const bad = [ingestToBatchItem('not json', 'stream-a'), ingestToBatchItem('{"x":1}', 'stream-a')];
  t.same(store.pod.storeBatch(bad, { source: 'test' }), { stored: 0, duplicates: 0, deadLettered: 2 });
  t.same(store.pod.storeBatch([ingestToBatchItem('not json', 'stream-b')], { source: 'test' }), { stored: 0, duplicates: 1, deadLettered: 0 }, 'the same bad payload again');
  const big = Buffer.alloc(200 * 1024, 0x61);
  const outcome = ingestPayload(big, { maxEventBytes: 100 * 1024 });
  if (outcome.ok) throw new Error('expected too large');
  store.pod.storeBatch([deadLetterRow(big, outcome.code, outcome.reason, 'stream-a')], { source: 'test' });
  const rows = store.pod.deadLetters();
  t.match(rows, [
    { source: 'stream-a', code: 'ERR_POD_JSON', reason: /^not JSON/, rawTruncated: false },
    { source: 'stream-a', code: 'ERR_POD_KIND' },
    { code: 'ERR_POD_TOO_LARGE', reason: 'event of 204800 bytes is over the 102400-byte limit', rawBytes: 204800, rawTruncated: true },
  ]);
  t.equal(rows[0]!.raw.toString(), 'not json');
  t.equal(rows[2]!.raw.length, 64 * 1024, 'an oversize payload keeps its first 64 KiB');
  t.equal(store.pod.deadLetters(1).length, 1);
});

// After every event of the corpus: a checkpoint never runs ahead of when its batch was stored.
const STORED_AT = Date.parse('2024-08-01T00:00:00Z');

t.test('checkpoints follow the newest stored event of a stream, never backwards, never past when stored', async (t) => {
  const store = openStore();
  const all = corpus.filter((c) => c.source.startsWith('elastic-test-mail')).map((c) => ingestPayload(c.payload));
  const events = all.flatMap((r) => (r.ok ? [r.event] : []));
  const newest = events.reduce((a, b) => (b.tsUs > a.tsUs ? b : a));
  store.pod.storeBatch(events.map(eventRow), { source: 'maillog-a', checkpointStream: 'maillog-a', now: STORED_AT });
  t.match(store.pod.checkpoint('maillog-a'), { stream: 'maillog-a', newestTs: newest.ts.utc, newestTsUs: newest.tsUs, updatedAt: STORED_AT });
  t.equal(newest.ts.utc, '2024-07-03T12:18:32.325542Z');
  const older = events.filter((e) => e.tsUs < newest.tsUs).slice(0, 3);
  store.pod.storeBatch(older.map(eventRow), { source: 'maillog-a', checkpointStream: 'maillog-a', now: STORED_AT + 1000 });
  t.match(store.pod.checkpoint('maillog-a'), { newestTsUs: newest.tsUs, updatedAt: STORED_AT }, 'a replay of older events does not move it');
  store.pod.storeBatch(events.map(eventRow), { source: 'import' });
  t.equal(store.pod.checkpoint('import'), undefined, 'batches without a stream leave checkpoints alone');
  t.equal(store.pod.checkpoint('other'), undefined);
  // An event stamped after the batch is stored (a wrong offset): the checkpoint stops at then.
  const storedAtMs = Math.floor(newest.tsUs / 1000) - 3_600_000;
  store.pod.storeBatch([eventRow(newest)], { source: 'maillog-b', checkpointStream: 'maillog-b', now: storedAtMs });
  t.match(store.pod.checkpoint('maillog-b'), { newestTs: '2024-07-03T11:18:32.325000Z', newestTsUs: storedAtMs * 1000 });
});

t.test('the rules of each new message event are stored once, by the store (no trigger since migration 18)', async (t) => {
  const store = openStore();
  const triggers = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%INTO pod_message_rules%'").all();
  t.same(triggers, [], 'no trigger writes the rule rows (it would parse the stored JSON again, and double them)');
  store.pod.storeBatch(items(), { source: 'test' });
  store.pod.storeBatch(items(), { source: 'test' });
  const expected: string[] = [];
  for (const c of corpus) {
    const e = JSON.parse(c.payload) as { guid?: string; filter?: { actions?: Array<{ module: string; rule: string }> } };
    if (e.guid) for (const a of e.filter?.actions ?? []) expected.push(`${e.guid} ${a.module} ${a.rule}`);
  }
  t.ok(expected.length > 10, 'the samples trigger rules');
  const rows = store.db
    .prepare('SELECT e.guid, r.module, r.rule, r.ts_us = e.ts_us AS sameTs FROM pod_message_rules r JOIN pod_message_events e ON e.id = r.event_id')
    .all() as Array<{ guid: string; module: string; rule: string; sameTs: number }>;
  t.same(rows.map((r) => `${r.guid} ${r.module} ${r.rule}`).sort(), expected.sort(), 'one row per action, a replay adds none');
  t.ok(rows.every((r) => r.sameTs === 1));
});

t.test('a failing batch stores nothing of itself (one transaction)', async (t) => {
  const store = openStore();
  const good = items().slice(18, 21);
  t.equal(good[0]!.kind, 'message');
  const broken = { ...good[0]!, row: { ...good[0]!.row, guid: null } } as unknown as PodBatchItem;
  t.throws(() => store.pod.storeBatch([...good, broken], { source: 'test' }), /NOT NULL/);
  t.same(store.pod.counts(), { messages: 0, maillogs: 0, deadLetters: 0 });
});
