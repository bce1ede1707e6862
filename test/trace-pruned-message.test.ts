// Trace by a mailbag qid whose message retention already removed, while the upstream's
// maillog line handing the message to mailbag (`stat=Sent (... queued as QID)`) is still
// stored: the upstream side is what is known of it, and trace shows it instead of "nothing
// found".
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { cli } from './helpers/cli.js';
import { storeWithMessage } from './helpers/cli-store.js';
import { batch, maillogPair, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-trace-pruned-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-30T09:12:00Z');
const QID = '0MBQ7ZK2T4H1A';
const UPSTREAM = '4AUGx1Zq012345';

t.test('the message pruned, the hand-over line kept: trace by the qid shows the upstream side', async (t) => {
  const { store, configFile: cfg } = storeWithMessage(dir, 's', { qid: QID, receivedAt: T0 });
  store.correlation.recordMessageKeys({ qid: QID, receivedAt: T0, keys: extractCorrelationKeys('Subject: x\r\n\r\n'), envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: '198.51.100.2', size: 900 });
  store.pod.storeBatch(batch([messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: UPSTREAM, at: T0 - 2000 }), ...maillogPair({ idPrefix: 'm', qid: UPSTREAM, at: T0 - 1500, queuedAs: QID })]), { source: 'test' });
  t.same(store.correlation.linksOfQid(QID).map((l) => l.via), ['queued-as']);
  store.queue.recordRound(
    QID,
    [{ qid: QID, nexthop: 'smtp://a.example:25', startedAt: T0 + 10, durationMs: 5, reply: '250 ok', outcome: 'delivered', recipients: [{ rcpt: 'bob@example.test', state: 'delivered', reply: '250 ok', nextAttemptAt: T0 }] }],
    ['bob@example.test'],
    T0 + 10,
  );
  store.queue.finishIfDone(QID, T0 + 20);
  t.equal(store.pruneFinished(T0 + 3600_000, 10), 1, 'retention removed the message');
  store.close();

  const r = await cli(['trace', QID, '--json', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const m = (JSON.parse(r.stdout.toString()) as { by: string; matches: { mailbagQids: string[]; upstreamQids: string[]; timeline: { kind: string }[] }[] });
  t.equal(m.by, 'qid');
  t.same(m.matches.map((x) => [x.mailbagQids, x.upstreamQids, x.timeline.map((e) => e.kind)]), [[[], [UPSTREAM], ['verdict', 'maillog', 'maillog']]]);

  const missing = await cli(['trace', '0MBQ7ZK2T4H1Z', '--config', cfg]);
  t.same([missing.code, missing.stderr], [1, 'mailbag trace: nothing found for 0MBQ7ZK2T4H1Z\n'], 'a qid nothing names is still not found');
});

t.test('a message not yet attempted (no keys, so no link yet): trace by its qid shows the hand-over line with it, in one timeline', async (t) => {
  const { store, configFile: cfg } = storeWithMessage(dir, 'held', { qid: QID, receivedAt: T0 });
  store.queue.hold(QID, 'operator hold', T0 + 5);
  store.pod.storeBatch(batch([messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: UPSTREAM, at: T0 - 2000 }), ...maillogPair({ idPrefix: 'm', qid: UPSTREAM, at: T0 - 1500, queuedAs: QID })]), { source: 'test' });
  t.same(store.correlation.linksOfQid(QID), [], 'no link before the keys are recorded');
  store.close();
  const r = await cli(['trace', QID, '--json', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const m = (JSON.parse(r.stdout.toString()) as { matches: { mailbagQids: string[]; upstreamQids: string[]; timeline: { kind: string }[] }[] }).matches;
  t.same(m.map((x) => [x.mailbagQids, x.upstreamQids, x.timeline.map((e) => e.kind)]), [[[QID], [UPSTREAM], ['verdict', 'maillog', 'maillog', 'received']]]);
});
