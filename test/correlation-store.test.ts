import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { MESSAGE_ID_WINDOW_MS } from '../src/store/correlation-store.js';
import { Store } from '../src/store/store.js';
import { batch, maillogPair, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-correlation-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function openStore(): Store {
  const store = Store.open(join(dir, `s${n++}.db`));
  t.teardown(() => store.close());
  return store;
}

const T0 = Date.parse('2026-11-30T09:12:00Z');
const UPSTREAM = '4AUGx1Zq012345';
const QID = '0MBQ7ZK2T4H1A';

function header(o: { messageId?: string; upstreamQid?: string; guid?: string }): string {
  return [
    `Received: from mx.example.test (mx.example.test [198.51.100.2]) by gw.example.test (mailbag) with ESMTP id ${QID}; Mon, 30 Nov 2026 09:12:03 +0000`,
    ...(o.upstreamQid ? [`Received: from mail.sender.test (mail.sender.test [192.0.2.10])\r\n\tby mx0a-00123.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id ${o.upstreamQid}\r\n\tfor <bob@example.test>; Mon, 30 Nov 2026 02:12:01 -0700`] : []),
    ...(o.guid ? [`X-Proofpoint-GUID: ${o.guid}`] : []),
    ...(o.messageId ? [`Message-ID: ${o.messageId}`] : []),
    'Subject: Quarterly figures',
    '',
    '',
  ].join('\r\n');
}

function recordMessage(store: Store, qid: string, h: string, at = T0 + 3000): boolean {
  return store.correlation.recordMessageKeys({ qid, receivedAt: at, keys: extractCorrelationKeys(h), envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: '198.51.100.2', size: 1200 });
}

const links = (store: Store) =>
  (store.db.prepare('SELECT upstream_qid, qid, via FROM upstream_links ORDER BY upstream_qid, qid, via').all() as { upstream_qid: string; qid: string; via: string }[]).map((r) => `${r.upstream_qid}>${r.qid}:${r.via}`);

t.test('the stat line links the upstream qid to the qid mailbag answered with, whichever is stored first', async (t) => {
  const events = batch([messageEvent({ guid: 'g-stat', qid: UPSTREAM, at: T0 }), ...maillogPair({ idPrefix: 'stat', qid: UPSTREAM, at: T0, queuedAs: QID })]);
  const before = openStore();
  before.pod.storeBatch(events, { source: 'test' });
  t.same(links(before), [], 'no link while the message is unknown');
  t.ok(recordMessage(before, QID, header({})));
  t.same(links(before), [`${UPSTREAM}>${QID}:queued-as`], 'events first, message after');

  const after = openStore();
  recordMessage(after, QID, header({}));
  after.pod.storeBatch(events, { source: 'test' });
  t.same(links(after), links(before), 'message first, events after: the same link');
  t.same(after.correlation.linksOfQid(QID).map((l) => l.upstream_qid), [UPSTREAM]);
  t.same(after.correlation.linksOfUpstream(UPSTREAM).map((l) => l.qid), [QID]);
});

t.test("the Received field's id links to the upstream events by their qid", async (t) => {
  const store = openStore();
  recordMessage(store, QID, header({ upstreamQid: UPSTREAM }));
  t.equal(store.correlation.keys(QID)?.upstream_host, 'mx0a-00123.pphosted.com');
  t.same(links(store), []);
  // only a maillog line without a queued-as (a relay whose reply mailbag did not shape)
  store.pod.storeBatch(batch([maillogPair({ idPrefix: 'rcv', qid: UPSTREAM, at: T0 })[0]!]), { source: 'test' });
  t.same(links(store), [`${UPSTREAM}>${QID}:received`]);
});

t.test('X-Proofpoint-GUID links to the message event with that guid', async (t) => {
  const store = openStore();
  store.pod.storeBatch(batch([messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: UPSTREAM, at: T0 })]), { source: 'test' });
  recordMessage(store, QID, header({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x' }));
  t.same(links(store), [`${UPSTREAM}>${QID}:guid`]);
});

t.test('Message-ID is the fallback: within the window, and only while no stronger link exists', async (t) => {
  const mid = '<20261130091200.ABC@Sender.TEST>';
  const store = openStore();
  store.pod.storeBatch(batch([messageEvent({ guid: 'g-mid', qid: UPSTREAM, at: T0, messageId: mid })]), { source: 'test' });
  recordMessage(store, QID, header({ messageId: '<20261130091200.ABC@sender.test>' }));
  t.same(links(store), [`${UPSTREAM}>${QID}:message-id`], 'normalised Message-IDs match');

  const far = '0MBQ7ZK2T4H1B';
  recordMessage(store, far, header({ messageId: mid }), T0 + MESSAGE_ID_WINDOW_MS + 120_000);
  t.same(links(store), [`${UPSTREAM}>${QID}:message-id`], 'a reuse outside the window does not link');

  // the maillog naming QID arrives later: the fallback gives way to the stronger link
  store.pod.storeBatch(batch(maillogPair({ idPrefix: 'mid', qid: UPSTREAM, at: T0, queuedAs: QID })), { source: 'test' });
  t.same(links(store), [`${UPSTREAM}>${QID}:queued-as`]);

  // another upstream message reusing the Message-ID does not claim a message that has a strong link
  store.pod.storeBatch(batch([messageEvent({ guid: 'g-mid2', qid: '4AUGx1Zq099999', at: T0 + 60_000, messageId: mid })]), { source: 'test' });
  t.same(links(store), [`${UPSTREAM}>${QID}:queued-as`]);
});

t.test('links do not depend on the order events and messages arrive in', async (t) => {
  const mid = '<order@sender.test>';
  const pieces: { name: string; apply(s: Store): void }[] = [
    { name: 'message event', apply: (s) => void s.pod.storeBatch(batch([messageEvent({ guid: 'g-o', qid: UPSTREAM, at: T0, messageId: mid })]), { source: 'test' }) },
    { name: 'maillog', apply: (s) => void s.pod.storeBatch(batch(maillogPair({ idPrefix: 'o', qid: UPSTREAM, at: T0, messageId: mid, queuedAs: QID })), { source: 'test' }) },
    { name: 'message', apply: (s) => void recordMessage(s, QID, header({ messageId: mid, upstreamQid: UPSTREAM })) },
    { name: 'resend', apply: (s) => void recordMessage(s, '0MBQ7ZK2T4H1C', header({ messageId: mid }), T0 + 3600_000) },
  ];
  const orders = [
    [0, 1, 2, 3],
    [3, 2, 1, 0],
    [2, 3, 0, 1],
    [3, 0, 2, 1],
    [1, 3, 0, 2],
  ];
  const results = orders.map((order) => {
    const s = openStore();
    for (const i of order) pieces[i]!.apply(s);
    return links(s);
  });
  t.same(results[0], [`${UPSTREAM}>${QID}:queued-as`, `${UPSTREAM}>${QID}:received`]);
  for (let i = 1; i < results.length; i++) t.same(results[i], results[0], `order ${orders[i]!.map((j) => pieces[j]!.name).join(', ')}`);
});

t.test('a backfill replaying the same events changes nothing', async (t) => {
  const store = openStore();
  recordMessage(store, QID, header({ upstreamQid: UPSTREAM }));
  const events = batch([messageEvent({ guid: 'g-b', qid: UPSTREAM, at: T0 }), ...maillogPair({ idPrefix: 'b', qid: UPSTREAM, at: T0, queuedAs: QID })]);
  t.same(store.pod.storeBatch(events, { source: 'stream' }), { stored: 3, duplicates: 0, deadLettered: 0 });
  const first = store.db.prepare('SELECT * FROM upstream_links ORDER BY via').all();
  t.same(store.pod.storeBatch([...events, ...events], { source: 'backfill' }), { stored: 0, duplicates: 6, deadLettered: 0 });
  t.same(store.db.prepare('SELECT * FROM upstream_links ORDER BY via').all(), first, 'same rows, same link times');
  t.notOk(recordMessage(store, QID, header({ upstreamQid: UPSTREAM })), 'keys recorded again: nothing new');
});

t.test('one upstream message delivered as two mailbag messages; one message with many upstream events', async (t) => {
  const store = openStore();
  const q2 = '0MBQ7ZK2T4H1D';
  store.pod.storeBatch(
    batch([
      messageEvent({ guid: 'g-two', qid: UPSTREAM, at: T0, rcpts: ['bob@example.test', 'carol@example.test'] }),
      ...maillogPair({ idPrefix: 'two-a', qid: UPSTREAM, at: T0, queuedAs: QID, to: 'bob@example.test' }),
      ...maillogPair({ idPrefix: 'two-b', qid: UPSTREAM, at: T0 + 10, queuedAs: q2, to: 'carol@example.test' }).slice(1),
    ]),
    { source: 'test' },
  );
  recordMessage(store, QID, header({}));
  recordMessage(store, q2, header({}));
  t.same(store.correlation.linksOfUpstream(UPSTREAM).map((l) => l.qid), [QID, q2]);
  t.equal(store.pod.maillogEventsByQid(UPSTREAM).length, 3, 'the upstream events are all found through the link');
});

t.test('an upstream message discarded before sendmail has only its message event and links to nothing', async (t) => {
  const store = openStore();
  recordMessage(store, QID, header({ messageId: '<other@sender.test>' }));
  store.pod.storeBatch(batch([messageEvent({ guid: 'g-discard', qid: '3y8abcd123-1', sid: '3y8abcd123', at: T0, disposition: 'discard', finalAction: 'discard', virusNames: ['Eicar-Test-Signature'] })]), { source: 'test' });
  t.same(links(store), []);
  t.equal(store.pod.messageEventsByQid('3y8abcd123-1').length, 1);
});

t.test('bounces record their origin; retention forgets keys, links and origin with the message', async (t) => {
  const store = openStore();
  recordMessage(store, QID, header({ upstreamQid: UPSTREAM }));
  store.pod.storeBatch(batch(maillogPair({ idPrefix: 'r', qid: UPSTREAM, at: T0, queuedAs: QID })), { source: 'test' });
  store.correlation.recordOrigin('0MBQ7ZK2T4H1E', QID, 'bounce');
  store.correlation.recordOrigin('0MBQ7ZK2T4H1E', QID, 'bounce');
  t.same(store.correlation.derived(QID).map((d) => [d.qid, d.kind]), [['0MBQ7ZK2T4H1E', 'bounce']]);
  store.correlation.forget(QID);
  t.same(links(store), []);
  t.equal(store.correlation.keys(QID), undefined);
  t.equal(store.pod.maillogEventsByQid(UPSTREAM).length, 2, 'the upstream record stays');
});

t.test('message_keys carries the indexes its look-ups use, and no other (each one is written for every message)', async (t) => {
  const store = openStore();
  const indexes = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message_keys' AND sql IS NOT NULL ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  t.same(indexes, ['message_keys_message_id', 'message_keys_pp_guid', 'message_keys_pp_orig_guid', 'message_keys_upstream_qid']);
  const plan = (sql: string, ...params: unknown[]) => (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((p) => p.detail).join('; ');
  t.match(plan('SELECT * FROM message_keys WHERE message_id = ? ORDER BY received_at DESC, qid DESC', 'm'), /USING INDEX message_keys_message_id/);
  t.match(plan('SELECT qid FROM message_keys WHERE message_id = ? AND received_at BETWEEN ? AND ?', 'm', 0, 1), /USING INDEX message_keys_message_id/);
  t.match(plan('SELECT * FROM message_keys WHERE upstream_qid = ? ORDER BY received_at DESC, qid DESC', 'u'), /USING INDEX message_keys_upstream_qid/);
  t.match(plan('SELECT * FROM message_keys WHERE pp_guid = ?', 'g'), /USING INDEX message_keys_pp_guid/);
  t.match(plan('SELECT * FROM message_keys WHERE pp_orig_guid = ?', 'g'), /USING INDEX message_keys_pp_orig_guid/);
});
