// The PoD consumer against the real publisher (`/v1/stream`, src/gateway/pod-publisher.ts)
// playing upstream events from a MemoryEventSource, behind a TCP proxy that records the
// requests and cuts or stalls connections: handshake, live and archive modes, drops
// mid-stream with events in flight, replays after a reconnect, server restarts, a 2-hour
// outage on a simulated clock filled from the archive, 409s, refusals, malformed and
// oversize events. Every test checks that no event is lost and none is stored twice.
import t from 'tap';
import { messageEvent, startConsumer, storedGuids, tempStore, TestClock, until } from './helpers/pod-consumer.js';
import { modeOf, startPublisherDouble, type PublisherDouble } from './helpers/pod-publisher-double.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-30T10:05:00Z');

type Test = { teardown(fn: () => unknown): void };

function stream(url: string, token: string, extra: Record<string, unknown> = {}) {
  return { name: 'pod-msg', url, cid: 'cid1', type: 'message' as const, token, ...extra };
}

/** A publisher double on a test clock and an empty store, no consumer yet; `close` removes both. */
async function publisherAndStore() {
  const clock = new TestClock(T0);
  const double = await startPublisherDouble(clock.now);
  const tmp = tempStore();
  const close = async () => {
    await double.close();
    tmp.cleanup();
  };
  return { clock, double, token: double.token(), path: tmp.path, close };
}

async function setup(t: Test, opts: { pod?: Record<string, unknown>; stream?: (d: PublisherDouble) => Record<string, unknown>; env?: (d: PublisherDouble) => NodeJS.ProcessEnv } = {}) {
  const { clock, double, token, path, close } = await publisherAndStore();
  const h = startConsumer(path, { streams: [stream(double.url, token, opts.stream?.(double))], ...opts.pod }, clock, opts.env?.(double));
  t.teardown(async () => {
    await h.stop();
    await close();
  });
  return { clock, double, token, h };
}

const live = (d: PublisherDouble) => d.requests.filter((r) => r.status === 101 && modeOf(r) === 'live');
const stats = (h: { consumer: { statuses(): Array<{ received: number; stored: number; duplicates: number; deadLettered: number }> } }) => h.consumer.statuses()[0]!;

t.test('live: Bearer token, permessage-deflate with both no-context-takeover options, text and binary frames', async (t) => {
  const { double, h, clock, token } = await setup(t);
  await until(() => double.open('live').length === 1, 'a live session');
  const req = live(double)[0]!;
  t.equal(req.authorization, `Bearer ${token}`, 'Authorization: Bearer <token>');
  t.match(req.extensions, /permessage-deflate/);
  t.match(req.extensions, /client_no_context_takeover/);
  t.match(req.extensions, /server_no_context_takeover/);
  t.notOk(req.query.has('sinceTime'), 'live mode: no time parameters');
  double.publish('message', clock.ms, messageEvent('g1', clock.ms));
  clock.advance(1); // the checkpoint never runs ahead of the clock: g2 is sent once its ts has come
  double.publish('message', clock.ms, Buffer.from(messageEvent('g2', clock.ms)));
  await until(() => storedGuids(h.store).length === 2, 'two events stored');
  t.same(storedGuids(h.store), ['g1', 'g2']);
  t.equal(h.store.pod.checkpoint('pod-msg')?.newestTsUs, (T0 + 1) * 1000, 'the checkpoint is the newest stored ts');
  t.equal(h.consumer.statuses()[0]!.state, 'live');
  t.match(stats(h), { received: 2, stored: 2, duplicates: 0, deadLettered: 0 });
  const metrics = await h.metrics.registry.metrics();
  t.match(metrics, /mailbag_pod_events_received_total\{stream="pod-msg"\} 2/);
  t.match(metrics, /mailbag_pod_events_stored_total\{stream="pod-msg"\} 2/);
  t.match(metrics, /mailbag_pod_stream_state\{stream="pod-msg",state="live"\} 1/);
  t.match(metrics, /mailbag_pod_last_event_age_seconds\{stream="pod-msg"\} 0\n/);
});

t.test('a drop mid-stream with events in flight: they come again after the reconnect, nothing lost', async (t) => {
  const { double, h, clock } = await setup(t);
  await until(() => double.open('live').length === 1, 'a live session');
  for (const g of ['a', 'b', 'c']) double.publish('message', clock.ms, messageEvent(g, clock.ms));
  await until(() => storedGuids(h.store).length === 3, 'three stored');
  // Stored is not yet acknowledged: the publisher pings after a batch, and the pong may still
  // be on its way. Acknowledged, a, b and c are not sent again after the drop.
  const conn = double.open('live')[0]!;
  await until(() => conn.ackedDataFrames === 3, 'a, b and c acknowledged');
  // The network stalls: the publisher sends d and e, the consumer never gets them.
  const sent = conn.dataFrames;
  double.proxy.hold('toClient');
  for (const g of ['d', 'e']) double.publish('message', clock.ms, messageEvent(g, clock.ms));
  await until(() => conn.dataFrames === sent + 2, 'd and e sent into the stalled connection');
  double.proxy.drop();
  clock.advance(60_000);
  double.publish('message', clock.ms, messageEvent('f', clock.ms));
  await until(() => storedGuids(h.store).length === 6, 'the events in flight and the one published after the drop');
  t.same(storedGuids(h.store), ['a', 'b', 'c', 'd', 'e', 'f'], 'each once');
  t.ok(live(double).length >= 2, 'a second live session');
  t.notOk(double.requests.some((r) => modeOf(r) === 'archive'), 'a drop under an hour needs no archive request');
  t.match(stats(h), { stored: 6, duplicates: 0, deadLettered: 0 });
});

t.test('replays after a reconnect: events taken but not acknowledged come again and are not stored twice', async (t) => {
  const { double, h, clock } = await setup(t);
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', clock.ms, messageEvent('a', clock.ms));
  await until(() => storedGuids(h.store).length === 1, 'a stored');
  const conn = double.open('live')[0]!;
  await until(() => conn.ackedDataFrames === 1, 'a acknowledged');
  // The consumer gets r1, r2 and a bad payload, but its answers (the pong acknowledging them) are lost.
  const pings = conn.pings;
  double.proxy.hold('toServer');
  double.publish('message', clock.ms, messageEvent('r1', clock.ms));
  double.publish('message', clock.ms, '{"guid": "broken",');
  double.publish('message', clock.ms, messageEvent('r2', clock.ms));
  await until(() => storedGuids(h.store).length === 3 && stats(h).deadLettered === 1 && conn.pings > pings, 'r1, r2 stored, the bad one dead-lettered');
  double.proxy.drop();
  clock.advance(60_000);
  await until(() => stats(h).duplicates === 3, 'the replay: r1, r2 and the bad payload again');
  t.same(storedGuids(h.store), ['a', 'r1', 'r2'], 'each once');
  t.equal(h.store.pod.deadLetters().length, 1, 'one dead letter for the bad payload sent twice');
  t.match(stats(h), { received: 7, stored: 3, duplicates: 3, deadLettered: 1 });
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_events_duplicate_total\{stream="pod-msg"\} 3/);
});

t.test('a server restart: the consumer comes back and takes what was published while it was down', async (t) => {
  const { double, h, clock } = await setup(t);
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', clock.ms, messageEvent('before', clock.ms));
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  await double.restart(() => {
    clock.advance(5 * 60_000);
    double.publish('message', clock.ms, messageEvent('while-down', clock.ms));
  });
  await until(() => storedGuids(h.store).length === 2, 'the event from the restart');
  t.same(storedGuids(h.store), ['before', 'while-down']);
  t.ok(h.states.some((s) => s.state === 'backoff'), 'it backed off while the server was away');
  t.match(h.consumer.statuses()[0]!.lastError, /./, 'the drop is the last error');
  t.equal(stats(h).stored, 2);
});

t.test('a 2-hour outage (simulated clock) is filled from the archive before the live session, on the one token', async (t) => {
  const { double, h, clock, token } = await setup(t);
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', T0, messageEvent('e0', T0));
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  const minutes = [10, 50, 70, 110];
  const restartedAt = double.requests.length;
  await double.restart(() => {
    clock.advance(2 * HOUR);
    for (const m of minutes) double.publish('message', T0 + m * 60_000, messageEvent(`e${m}`, T0 + m * 60_000));
  });
  await until(() => storedGuids(h.store).length === 5, 'all five events');
  await until(() => h.consumer.statuses()[0]!.state === 'live', 'live again');
  t.same(storedGuids(h.store), ['e0', 'e10', 'e50', 'e70', 'e110'], 'each once');
  const after = double.requests.slice(restartedAt).filter((r) => r.status === 101);
  t.equal(modeOf(after[0]!), 'archive', 'the archive request comes first');
  t.equal(after[0]!.authorization, `Bearer ${token}`);
  // drop at 10:05; live would start at 11:05: the gap 10:05-11:05 in whole hours
  t.equal(after[0]!.query.get('sinceTime'), '2026-11-30T10:00:00+0000');
  t.equal(after[0]!.query.get('toTime'), '2026-11-30T12:00:00+0000');
  t.equal(modeOf(after[1]!), 'live', 'then the live session');
  t.notOk(double.requests.some((r) => r.status === 409), 'never two sessions on the token');
  t.same(h.store.podStreams.gaps('pod-msg'), [], 'the gap is filled and forgotten');
  t.ok(h.states.some((s) => s.state === 'backfilling'), 'the state said so');
  // e0 again from the archive's whole hours, e70 and e110 again from the live session's last hour
  await until(() => stats(h).duplicates === 3, 'the overlaps counted as duplicates');
  t.match(stats(h), { stored: 5, duplicates: 3, deadLettered: 0 });
});

t.test('with a backfill token the archive request runs beside the live session', async (t) => {
  let backfill = '';
  const { double, h, clock } = await setup(t, {
    stream: () => ({ backfillTokenEnv: 'POD_BACKFILL' }),
    env: (d) => ({ POD_BACKFILL: (backfill = d.token()) }),
  });
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', T0, messageEvent('e0', T0));
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  await double.restart(() => {
    clock.advance(3 * HOUR);
    double.publish('message', T0 + 30 * 60_000, messageEvent('in-gap', T0 + 30 * 60_000));
    double.publish('message', clock.ms - 10 * 60_000, messageEvent('recent', clock.ms - 10 * 60_000));
  });
  await until(() => storedGuids(h.store).length === 3, 'all three');
  const archive = double.requests.find((r) => modeOf(r) === 'archive');
  t.equal(archive?.authorization, `Bearer ${backfill}`, 'the archive uses the backfill token');
  t.notOk(double.requests.some((r) => r.status === 409));
  await until(() => h.store.podStreams.gaps('pod-msg').length === 0, 'the gap filled');
  t.notOk(h.states.some((s) => s.state === 'backfilling'), 'the stream stays live while the backfill token works');
  t.equal(h.consumer.statuses()[0]!.state, 'live');
  t.same(storedGuids(h.store), ['e0', 'in-gap', 'recent']);
});

t.test('checkpoints survive a consumer restart: a new consumer on the same store fills from them', async (t) => {
  const { clock, double, token, path, close } = await publisherAndStore();
  t.teardown(close);
  const first = startConsumer(path, { streams: [stream(double.url, token)] }, clock);
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', T0, messageEvent('e0', T0));
  await until(() => storedGuids(first.store).length === 1, 'stored');
  await first.stop();
  t.equal(first.consumer.statuses()[0]!.state, 'stopped');
  clock.advance(5 * HOUR);
  double.publish('message', T0 + 2 * HOUR, messageEvent('e2h', T0 + 2 * HOUR));
  const second = startConsumer(path, { streams: [stream(double.url, token)] }, clock);
  t.teardown(() => second.stop());
  await until(() => storedGuids(second.store).length === 2, 'the gap event');
  const archive = double.requests.find((r) => modeOf(r) === 'archive');
  t.equal(archive?.query.get('sinceTime'), '2026-11-30T10:00:00+0000', 'from the checkpoint, rounded down');
  t.equal(archive?.query.get('toTime'), '2026-11-30T15:00:00+0000', 'to an hour before now, rounded up');
  t.same(storedGuids(second.store), ['e0', 'e2h']);
});

t.test('an event whose ts is hours ahead (a wrong offset) does not carry the checkpoint past now: a later gap is still filled', async (t) => {
  const { clock, double, token, path, close } = await publisherAndStore();
  t.teardown(close);
  const first = startConsumer(path, { streams: [stream(double.url, token)] }, clock);
  await until(() => double.open('live').length === 1, 'a live session');
  double.publish('message', T0, messageEvent('e0', T0));
  // An agent that wrote +0700 for -0700: its ts is 14 hours ahead of when it was sent.
  double.publish('message', T0, messageEvent('skewed', T0 + 14 * HOUR));
  await until(() => storedGuids(first.store).length === 2, 'both stored');
  t.ok(first.store.pod.checkpoint('pod-msg')!.newestTsUs <= T0 * 1000, 'the checkpoint is not ahead of when the events were stored');
  clock.advance(30 * 60_000);
  t.equal(first.consumer.statuses().length, 1);
  t.match(await first.metrics.registry.metrics(), /mailbag_pod_last_event_age_seconds\{stream="pod-msg"\} 1800\n/, 'nothing for half an hour shows as half an hour');
  await first.stop();
  clock.advance(5 * HOUR - 30 * 60_000);
  double.publish('message', T0 + 2 * HOUR, messageEvent('e2h', T0 + 2 * HOUR));
  const second = startConsumer(path, { streams: [stream(double.url, token)] }, clock);
  t.teardown(() => second.stop());
  await until(() => storedGuids(second.store).includes('e2h'), 'the event in the gap, from the archive');
  const archive = double.requests.find((r) => modeOf(r) === 'archive');
  t.equal(archive?.query.get('sinceTime'), '2026-11-30T10:00:00+0000', 'from the checkpoint, rounded down');
});

t.test('409 while another session holds the token: backs off, says why, connects once it is free', async (t) => {
  const { clock, double, token, path, close } = await publisherAndStore();
  const other = await double.occupy(token);
  const h = startConsumer(path, { streams: [stream(double.url, token)] }, clock);
  t.teardown(async () => {
    await h.stop();
    await close();
  });
  const conflict = await until(() => h.states.find((s) => s.state === 'conflict'), 'the conflict state');
  t.match(conflict.detail, /409.*in use by another session/);
  await until(() => double.requests.filter((r) => r.status === 409).length >= 2, 'it keeps trying');
  t.notOk(h.states.some((s) => s.state === 'stopped'), '409 does not stop the stream');
  await other.release();
  await until(() => h.consumer.statuses()[0]!.state === 'live', 'a live session once the token is free');
  double.publish('message', T0, messageEvent('g', T0));
  await until(() => storedGuids(h.store).length === 1, 'stored');
  t.match(h.consumer.statuses()[0]!.lastError, /409/);
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_session_errors_total\{stream="pod-msg",reason="http_409"\} [1-9]/);
});

t.test('401 and 404 stop the stream with the reason; no further attempts', async (t) => {
  for (const [status, why] of [
    [401, /401.*token/],
    [404, /404.*url/],
  ] as const) {
    const { clock, double, path, close } = await publisherAndStore();
    const url = status === 404 ? `${double.url}not-the-api/` : double.url;
    const h = startConsumer(path, { streams: [stream(url, status === 401 ? double.token('another-cid') : double.token())] }, clock);
    const stopped = await until(() => h.states.find((s) => s.state === 'stopped'), 'stopped');
    t.match(stopped.detail, why, `${status}: says why`);
    t.match(h.store.podStreams.statuses()[0], { state: 'stopped', lastError: why });
    t.match(await h.metrics.registry.metrics(), new RegExp(`mailbag_pod_session_errors_total\\{stream="pod-msg",reason="http_${status}"\\} 1`));
    await h.stop();
    t.equal(double.requests.length, 1, `${status}: tried once`);
    t.equal(double.requests[0]!.status, status);
    await close();
  }
});

t.test('a missing token variable stops the stream without connecting', async (t) => {
  const { double, h } = await setup(t, { stream: () => ({ token: undefined, tokenEnv: 'NOT_SET_ANYWHERE' }) });
  const stopped = await until(() => h.states.find((s) => s.state === 'stopped'), 'stopped');
  t.match(stopped.detail, /NOT_SET_ANYWHERE is not set/);
  t.equal(double.requests.length, 0);
});

t.test('malformed and oversize events are dead-lettered and counted; an event over 1 MiB within the limit is stored', async (t) => {
  const { double, h, clock } = await setup(t, { pod: { maxEventBytes: '2MiB' } });
  await until(() => double.open('live').length === 1, 'a live session');
  const big = messageEvent('big', clock.ms, { padding: 'x'.repeat(1536 * 1024) });
  const huge = messageEvent('huge', clock.ms, { padding: 'y'.repeat(3 * 1024 * 1024) });
  t.ok(Buffer.byteLength(big) > 1024 * 1024);
  double.publish('message', clock.ms, '{"guid": "broken",');
  double.publish('message', clock.ms, JSON.stringify({ guid: 'no-filter', ts: '2026-11-30T03:05:00.000000-0700' }));
  double.publish('message', clock.ms, big);
  double.publish('message', clock.ms, Buffer.from(huge));
  double.publish('message', clock.ms, messageEvent('after', clock.ms));
  await until(() => stats(h).received === 5, 'all five received');
  await until(() => storedGuids(h.store).length === 2, 'two stored');
  t.same(storedGuids(h.store).sort(), ['after', 'big']);
  const dead = h.store.pod.deadLetters();
  t.same(dead.map((d) => d.code).sort(), ['ERR_POD_JSON', 'ERR_POD_SCHEMA', 'ERR_POD_TOO_LARGE']);
  const tooLarge = dead.find((d) => d.code === 'ERR_POD_TOO_LARGE')!;
  t.equal(tooLarge.rawBytes, Buffer.byteLength(huge));
  t.ok(tooLarge.rawTruncated, 'only the start of an oversize payload is kept');
  t.match(stats(h), { received: 5, stored: 2, duplicates: 0, deadLettered: 3 });
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_events_dead_lettered_total\{stream="pod-msg"\} 3/);
  t.equal(live(double).length, 1, 'the session stayed up');
});

t.test('a missed pong is a drop: the consumer reconnects', async (t) => {
  const { double, h } = await setup(t, { pod: { pingInterval: 20 } });
  await until(() => double.open('live').length === 1, 'a live session');
  double.proxy.hold();
  await until(() => live(double).length >= 2, 'a second live session after the missed pong');
  t.ok(h.states.some((s) => s.state === 'backoff' && /no pong/.test(s.detail ?? '')), 'the drop says why');
});

t.test('a slow reader: the publisher waits for it and every event arrives once', async (t) => {
  const { double, h, clock } = await setup(t, { pod: { batchSize: 50 } });
  await until(() => double.open('live').length === 1, 'a live session');
  // The store is slow: each batch holds the consumer's event loop, so the socket backs up.
  const real = h.store.pod.storeBatch.bind(h.store.pod);
  h.store.pod.storeBatch = (items, opts) => {
    const busyUntil = Date.now() + 20;
    while (Date.now() < busyUntil);
    return real(items, opts);
  };
  const pad = 'z'.repeat(64 * 1024);
  const guids = Array.from({ length: 150 }, (_, i) => `s${String(i).padStart(3, '0')}`);
  for (const [i, g] of guids.entries()) double.publish('message', clock.ms + i, messageEvent(g, clock.ms + i, { padding: pad }));
  await until(() => storedGuids(h.store).length === guids.length, 'every event');
  t.same(storedGuids(h.store), guids);
  t.match(stats(h), { stored: guids.length, duplicates: 0 });
});

t.test('a batch the store refuses is kept, the session dropped, and the batch stored before the next one', async (t) => {
  const { double, h, clock } = await setup(t, { pod: { batchSize: 2 } });
  await until(() => double.open('live').length === 1, 'a live session');
  const real = h.store.pod.storeBatch.bind(h.store.pod);
  let refusals = 0;
  h.store.pod.storeBatch = (items, opts) => {
    if (refusals++ < 2) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    return real(items, opts);
  };
  double.publish('message', clock.ms, messageEvent('x1', clock.ms));
  double.publish('message', clock.ms, messageEvent('x2', clock.ms));
  await until(() => storedGuids(h.store).length === 2, 'both stored in the end');
  t.same(storedGuids(h.store), ['x1', 'x2']);
  await until(() => live(double).length >= 2, 'a new session after the failure');
  t.match(h.consumer.statuses()[0]!.lastError, /cannot store events: database is locked/);
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_session_errors_total\{stream="pod-msg",reason="store"\} [1-9]/);
});
