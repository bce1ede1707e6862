// Order independence of correlation over random histories: the same messages' keys and PoD
// events (message events with guids and Message-IDs, maillog from= lines, hand-over lines
// naming mailbag qids, some far outside the Message-ID window) stored in different random
// orders and batchings end with the same links.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MESSAGE_ID_WINDOW_MS } from '../src/store/correlation-store.js';
import { Store } from '../src/store/store.js';
import { prng } from '../bench/lib/prng.js';
import { batch, maillogEvent, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-correlation-order-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));


const T0 = Date.parse('2026-11-30T09:12:00Z');
type Step = { kind: 'message'; qid: string; at: number; messageId?: string; upstreamQid?: string; guid?: string } | { kind: 'event'; payload: string };

function history(random: () => number): Step[] {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const maybe = <T>(list: readonly T[]): T | undefined => (random() < 0.4 ? undefined : pick(list));
  const ups = ['4AUGx1Zq000001', '4AUGx1Zq000002', '4AUGx1Zq000003'];
  const qids = ['0MBQ7ZK2T4H1A', '0MBQ7ZK2T4H1B', '0MBQ7ZK2T4H1C', '0MBQ7ZK2T4H1D'];
  const mids = ['x@sender.test', 'y@sender.test'];
  const guids = ['Gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1', 'Gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2'];
  const when = () => T0 + pick([0, 1000, -MESSAGE_ID_WINDOW_MS + 5, MESSAGE_ID_WINDOW_MS - 5, 3 * MESSAGE_ID_WINDOW_MS]);
  const steps: Step[] = qids.map((qid) => ({ kind: 'message', qid, at: T0, messageId: maybe(mids), upstreamQid: maybe(ups), guid: maybe(guids) }));
  let n = 0;
  for (let k = 2 + Math.floor(random() * 6); k > 0; k--) {
    const up = pick(ups);
    const r = random();
    const mid = maybe(mids);
    if (r < 0.4) steps.push({ kind: 'event', payload: messageEvent({ guid: random() < 0.5 ? pick(guids) : `Gother${n++}aaaaaaaaaaaaaaaaaaaaaaaa`, qid: up, at: when(), ...(mid ? { messageId: `<${mid}>` } : {}) }) });
    else if (r < 0.7) steps.push({ kind: 'event', payload: maillogEvent(`l${n++}`, up, when(), `from=<a@sender.test>, size=10, class=0, nrcpts=1${mid ? `, msgid=<${mid}>` : ''}, proto=ESMTP, daemon=MTA, relay=mail.sender.test [192.0.2.10]`) });
    else steps.push({ kind: 'event', payload: maillogEvent(`l${n++}`, up, when(), `to=<b@example.test>, delay=00:00:01, mailer=esmtp, pri=1, relay=mailbag.example.test. [198.51.100.7], dsn=2.0.0, stat=Sent (2.0.0 Ok: queued as ${pick(qids)})`) });
  }
  return steps;
}

let dbs = 0;
function recordKeys(store: Store, s: Extract<Step, { kind: 'message' }>): void {
  store.correlation.recordMessageKeys({
    qid: s.qid,
    receivedAt: s.at,
    keys: { messageId: s.messageId, upstreamQid: s.upstreamQid, upstreamHost: s.upstreamQid ? 'mx.up.test' : undefined, proofpointGuid: s.guid, proofpointOrigGuid: undefined },
    envelopeFrom: 'a@sender.test',
    rcpts: ['b@example.test'],
    clientAddress: null,
    size: 10,
  });
}

function replay(steps: readonly Step[], random: () => number): string[] {
  const order = [...steps];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const store = Store.open(join(dir, `s${dbs++}.db`));
  let pending: string[] = [];
  const flush = () => {
    if (pending.length) store.pod.storeBatch(batch(pending), { source: 'test' });
    pending = [];
  };
  for (const s of order) {
    if (s.kind === 'event') {
      pending.push(s.payload);
      if (random() < 0.5) flush();
      continue;
    }
    flush();
    recordKeys(store, s);
  }
  flush();
  const links = (store.db.prepare('SELECT upstream_qid, qid, via FROM upstream_links ORDER BY 1, 2, 3').all() as { upstream_qid: string; qid: string; via: string }[]).map((r) => `${r.upstream_qid}>${r.qid}:${r.via}`);
  store.close();
  return links;
}

/** Links whose events retention removed: none is left that no stored row supports. */
function unsupportedAfterPruning(steps: readonly Step[], random: () => number): { pruned: number; unsupported: string[] } {
  const store = Store.open(join(dir, `s${dbs++}.db`));
  for (const s of steps) {
    if (s.kind === 'event') store.pod.storeBatch(batch([s.payload]), { source: 'test' });
    else
      recordKeys(store, s);
  }
  const cutoff = T0 + [-MESSAGE_ID_WINDOW_MS, 500, 1001, MESSAGE_ID_WINDOW_MS][Math.floor(random() * 4)]!;
  const pruned = store.prunePodBefore(cutoff, 1000).links;
  const unsupported = store.db
    .prepare(`SELECT l.upstream_qid || '>' || l.qid || ':' || l.via FROM upstream_links AS l JOIN message_keys AS k ON k.qid = l.qid WHERE NOT CASE l.via
        WHEN 'queued-as' THEN EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.qid = l.upstream_qid AND e.queued_as = l.qid)
        WHEN 'received' THEN k.upstream_qid = l.upstream_qid AND (EXISTS (SELECT 1 FROM pod_message_events AS e WHERE e.qid = l.upstream_qid)
          OR EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.qid = l.upstream_qid))
        WHEN 'guid' THEN EXISTS (SELECT 1 FROM pod_message_events AS e WHERE e.qid = l.upstream_qid AND e.guid IN (k.pp_guid, k.pp_orig_guid))
        ELSE EXISTS (SELECT 1 FROM pod_message_events AS e WHERE e.qid = l.upstream_qid AND e.message_id = k.message_id
            AND e.ts_us BETWEEN (k.received_at - @w) * 1000 AND (k.received_at + @w) * 1000)
          OR EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.qid = l.upstream_qid AND e.message_id = k.message_id
            AND e.ts_us BETWEEN (k.received_at - @w) * 1000 AND (k.received_at + @w) * 1000) END`)
    .pluck()
    .all({ w: MESSAGE_ID_WINDOW_MS }) as string[];
  store.close();
  return { pruned, unsupported };
}

t.test('after PoD retention every link left is supported by a stored event', async (t) => {
  let pruned = 0;
  for (let seed = 100; seed < 125; seed++) {
    const random = prng(seed);
    const r = unsupportedAfterPruning(history(random), random);
    pruned += r.pruned;
    t.same(r.unsupported, [], `seed ${seed}`);
  }
  t.ok(pruned > 0, `retention removed links (${pruned})`);
});

t.test('the same history in different orders ends with the same links', async (t) => {
  let linked = 0;
  for (let seed = 1; seed <= 25; seed++) {
    const random = prng(seed);
    const steps = history(random);
    const first = replay(steps, random);
    if (first.length) linked++;
    for (let k = 0; k < 2; k++) t.same(replay(steps, random), first, `seed ${seed}, order ${k + 2}`);
  }
  t.ok(linked > 10, `most histories link something (${linked} of 25)`);
});
