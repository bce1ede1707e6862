// The PoD consumer against a real WebSocket server on 127.0.0.1 (test/helpers/pod-log-server.ts,
// which follows the Log API document): handshake, live and archive modes, drops, restarts,
// a 2-hour outage on a simulated clock, 409s, refusals, bad and oversize events.
import t from 'tap';
import { PodLogService, startPodLogServer } from './helpers/pod-log-server.js';
import { messageEvent, startConsumer, storedGuids, tempStore, TestClock, until } from './helpers/pod-consumer.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-30T10:05:00Z');
const TOKEN = 'tok-live';
const tokens = new Map([
  [TOKEN, 'cid1'],
  ['tok-backfill', 'cid1'],
]);

function stream(url: string, extra: Record<string, unknown> = {}) {
  return { name: 'pod-msg', url, cid: 'cid1', type: 'message' as const, token: TOKEN, ...extra };
}

type Test = { teardown(fn: () => unknown): void };

async function setup(t: Test, opts: { replayOverlapMs?: number; answerPings?: boolean; pod?: Record<string, unknown>; stream?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}) {
  const clock = new TestClock(T0);
  const service = new PodLogService(clock.now, tokens, opts.replayOverlapMs ?? 0);
  let server = await startPodLogServer(service, opts.answerPings === false ? { answerPings: false } : {});
  const tmp = tempStore();
  const h = startConsumer(tmp.path, { streams: [stream(server.url, opts.stream)], ...opts.pod }, clock, opts.env);
  t.teardown(async () => {
    await h.stop();
    await server.close();
    tmp.cleanup();
  });
  return {
    clock,
    service,
    h,
    tmp,
    server: () => server,
    async restartServer(between?: () => void) {
      const port = server.port;
      await server.close();
      between?.();
      server = await startPodLogServer(service, { port });
    },
  };
}

const live = (service: PodLogService) => service.requests.filter((r) => r.mode === 'live');

t.test('live: Bearer token, permessage-deflate with both no-context-takeover options, text and binary frames', async (t) => {
  const { service, h, clock } = await setup(t);
  await until(() => service.live.size === 1, 'a live session');
  const req = live(service)[0]!;
  t.equal(req.token, TOKEN, 'Authorization: Bearer <token>');
  t.match(req.extensions, /permessage-deflate/);
  t.match(req.extensions, /client_no_context_takeover/);
  t.match(req.extensions, /server_no_context_takeover/);
  t.notOk(req.sinceTime, 'live mode: no time parameters');
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('g1', clock.ms) });
  service.publish({ type: 'message', tsMs: clock.ms + 1, payload: Buffer.from(messageEvent('g2', clock.ms + 1)), binary: true });
  await until(() => storedGuids(h.store).length === 2, 'two events stored');
  t.same(storedGuids(h.store), ['g1', 'g2']);
  const cp = h.store.pod.checkpoint('pod-msg');
  t.equal(cp?.newestTsUs, (T0 + 1) * 1000, 'the checkpoint is the newest stored ts');
  const status = h.consumer.statuses()[0]!;
  t.equal(status.state, 'live');
  t.match(status, { received: 2, stored: 2, duplicates: 0, deadLettered: 0 });
  const metrics = await h.metrics.registry.metrics();
  t.match(metrics, /mailbag_pod_events_received_total\{stream="pod-msg"\} 2/);
  t.match(metrics, /mailbag_pod_events_stored_total\{stream="pod-msg"\} 2/);
  t.match(metrics, /mailbag_pod_stream_state\{stream="pod-msg",state="live"\} 1/);
  t.match(metrics, /mailbag_pod_last_event_age_seconds\{stream="pod-msg"\} 0\n/);
});

t.test('a drop mid-stream: reconnects, the replay is not stored twice, nothing published meanwhile is lost', async (t) => {
  // The server resumes an hour back from the drop: everything is sent again.
  const { service, h, clock } = await setup(t, { replayOverlapMs: HOUR });
  await until(() => service.live.size === 1, 'a live session');
  for (const g of ['a', 'b', 'c']) service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent(g, clock.ms) });
  await until(() => storedGuids(h.store).length === 3, 'three stored');
  service.dropLive();
  await until(() => service.live.size === 0, 'the drop');
  clock.advance(60_000);
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('d', clock.ms) });
  await until(() => storedGuids(h.store).length === 4, 'the event published during the drop');
  t.same(storedGuids(h.store), ['a', 'b', 'c', 'd']);
  await until(() => h.consumer.statuses()[0]!.duplicates === 3, 'the replay counted as duplicates');
  t.ok(live(service).length >= 2, 'a second live session');
  t.notOk(service.requests.some((r) => r.mode === 'archive'), 'a drop under an hour needs no archive request');
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_events_duplicate_total\{stream="pod-msg"\} 3/);
});

t.test('a server restart: the consumer comes back and takes what was published while it was down', async (t) => {
  const { service, h, clock, restartServer } = await setup(t);
  await until(() => service.live.size === 1, 'a live session');
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('before', clock.ms) });
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  await restartServer(() => {
    clock.advance(5 * 60_000);
    service.entries.push({ type: 'message', tsMs: clock.ms, payload: messageEvent('while-down', clock.ms) });
  });
  await until(() => storedGuids(h.store).length === 2, 'the event from the restart');
  t.same(storedGuids(h.store), ['before', 'while-down']);
  t.ok(h.states.some((s) => s.state === 'backoff'), 'it backed off while the server was away');
  t.match(h.consumer.statuses()[0]!.lastError, /./, 'the drop is the last error');
});

t.test('a 2-hour outage (simulated clock) is filled from the archive before the live session, on the one token', async (t) => {
  const { service, h, clock, restartServer } = await setup(t);
  await until(() => service.live.size === 1, 'a live session');
  service.publish({ type: 'message', tsMs: T0, payload: messageEvent('e0', T0) });
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  const minutes = [10, 50, 70, 110];
  await restartServer(() => {
    clock.advance(2 * HOUR);
    for (const m of minutes) service.entries.push({ type: 'message', tsMs: T0 + m * 60_000, payload: messageEvent(`e${m}`, T0 + m * 60_000) });
  });
  await until(() => storedGuids(h.store).length === 5, 'all five events');
  await until(() => h.consumer.statuses()[0]!.state === 'live', 'live again');
  t.same(storedGuids(h.store), ['e0', 'e10', 'e50', 'e70', 'e110'], 'each once');
  const after = service.requests.filter((r) => r.at > T0 && r.status === 101);
  t.equal(after[0]?.mode, 'archive', 'the archive request comes first');
  t.equal(after[0]?.token, TOKEN);
  // drop at 10:05; live would start at 11:05: the gap 10:05-11:05 in whole hours
  t.equal(after[0]?.sinceTime, '2026-11-30T10:00:00+0000');
  t.equal(after[0]?.toTime, '2026-11-30T12:00:00+0000');
  t.equal(after[1]?.mode, 'live', 'then the live session');
  t.notOk(service.requests.some((r) => r.status === 409), 'never two sessions on the token');
  t.same(h.store.podStreams.gaps('pod-msg'), [], 'the gap is filled and forgotten');
  t.ok(h.states.some((s) => s.state === 'backfilling'), 'the state said so');
});

t.test('with a backfill token the archive request runs beside the live session', async (t) => {
  const { service, h, clock, restartServer } = await setup(t, { stream: { backfillTokenEnv: 'POD_BACKFILL' }, env: { POD_BACKFILL: 'tok-backfill' } });
  await until(() => service.live.size === 1, 'a live session');
  service.publish({ type: 'message', tsMs: T0, payload: messageEvent('e0', T0) });
  await until(() => storedGuids(h.store).length === 1, 'first stored');
  await restartServer(() => {
    clock.advance(3 * HOUR);
    service.entries.push({ type: 'message', tsMs: T0 + 30 * 60_000, payload: messageEvent('in-gap', T0 + 30 * 60_000) });
    service.entries.push({ type: 'message', tsMs: clock.ms - 10 * 60_000, payload: messageEvent('recent', clock.ms - 10 * 60_000) });
  });
  await until(() => storedGuids(h.store).length === 3, 'all three');
  const archive = service.requests.find((r) => r.mode === 'archive');
  t.equal(archive?.token, 'tok-backfill', 'the archive uses the backfill token');
  t.notOk(service.requests.some((r) => r.status === 409));
  await until(() => h.store.podStreams.gaps('pod-msg').length === 0, 'the gap filled');
  t.notOk(h.states.some((s) => s.state === 'backfilling'), 'the stream stays live while the backfill token works');
  t.equal(h.consumer.statuses()[0]!.state, 'live');
});

t.test('checkpoints survive a restart: a new consumer on the same store fills from them', async (t) => {
  const clock = new TestClock(T0);
  const service = new PodLogService(clock.now, tokens);
  const server = await startPodLogServer(service);
  const tmp = tempStore();
  t.teardown(async () => {
    await server.close();
    tmp.cleanup();
  });
  const first = startConsumer(tmp.path, { streams: [stream(server.url)] }, clock);
  await until(() => service.live.size === 1, 'a live session');
  service.publish({ type: 'message', tsMs: T0, payload: messageEvent('e0', T0) });
  await until(() => storedGuids(first.store).length === 1, 'stored');
  await first.stop();
  t.equal(first.consumer.statuses()[0]!.state, 'stopped');
  clock.advance(5 * HOUR);
  service.entries.push({ type: 'message', tsMs: T0 + 2 * HOUR, payload: messageEvent('e2h', T0 + 2 * HOUR) });
  const second = startConsumer(tmp.path, { streams: [stream(server.url)] }, clock);
  t.teardown(() => second.stop());
  await until(() => storedGuids(second.store).length === 2, 'the gap event');
  const archive = service.requests.find((r) => r.mode === 'archive');
  t.equal(archive?.sinceTime, '2026-11-30T10:00:00+0000', 'from the checkpoint, rounded down');
  t.equal(archive?.toTime, '2026-11-30T15:00:00+0000', 'to an hour before now, rounded up');
});

t.test('409 while another session holds the token: backs off, says why, connects once it is free', async (t) => {
  const clock = new TestClock(T0);
  const service = new PodLogService(clock.now, tokens);
  service.busy.add(TOKEN);
  const server = await startPodLogServer(service);
  const tmp = tempStore();
  const h = startConsumer(tmp.path, { streams: [stream(server.url)] }, clock);
  t.teardown(async () => {
    await h.stop();
    await server.close();
    tmp.cleanup();
  });
  const conflict = await until(() => h.states.find((s) => s.state === 'conflict'), 'the conflict state');
  t.match(conflict.detail, /409.*in use by another session/);
  await until(() => service.requests.filter((r) => r.status === 409).length >= 2, 'it keeps trying');
  t.notOk(h.states.some((s) => s.state === 'stopped'), '409 does not stop the stream');
  service.busy.delete(TOKEN);
  await until(() => service.live.size === 1, 'a live session once the token is free');
  service.publish({ type: 'message', tsMs: T0, payload: messageEvent('g', T0) });
  await until(() => storedGuids(h.store).length === 1, 'stored');
  t.match(h.consumer.statuses()[0]!.lastError, /409/);
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_session_errors_total\{stream="pod-msg",reason="http_409"\} [1-9]/);
});

t.test('401 and 404 stop the stream with the reason; no further attempts', async (t) => {
  for (const [status, extra, why] of [
    [401, { token: 'wrong' }, /401.*token/],
    [404, {}, /404.*url/],
  ] as const) {
    const clock = new TestClock(T0);
    const service = new PodLogService(clock.now, tokens);
    const server = await startPodLogServer(service);
    const tmp = tempStore();
    const url = status === 404 ? `${server.url}not-the-api/` : server.url;
    const h = startConsumer(tmp.path, { streams: [stream(url, extra)] }, clock);
    const stopped = await until(() => h.states.find((s) => s.state === 'stopped'), 'stopped');
    t.match(stopped.detail, why, `${status}: says why`);
    t.match(h.store.podStreams.statuses()[0], { state: 'stopped', lastError: why });
    t.match(await h.metrics.registry.metrics(), new RegExp(`mailbag_pod_session_errors_total\\{stream="pod-msg",reason="http_${status}"\\} 1`));
    await h.stop();
    t.equal(service.requests.length, 1, `${status}: tried once`);
    t.equal(service.requests[0]!.status, status);
    await server.close();
    tmp.cleanup();
  }
});

t.test('a missing token variable stops the stream without connecting; the token is never in the status', async (t) => {
  const { service, h } = await setup(t, { stream: { token: undefined, tokenEnv: 'NOT_SET_ANYWHERE' } });
  const stopped = await until(() => h.states.find((s) => s.state === 'stopped'), 'stopped');
  t.match(stopped.detail, /NOT_SET_ANYWHERE is not set/);
  t.equal(service.requests.length, 0);
});

t.test('malformed and oversize events are dead-lettered and counted; an event over 1 MiB within the limit is stored', async (t) => {
  const { service, h, clock } = await setup(t, { pod: { maxEventBytes: '2MiB' } });
  await until(() => service.live.size === 1, 'a live session');
  const big = messageEvent('big', clock.ms, { padding: 'x'.repeat(1536 * 1024) });
  const huge = messageEvent('huge', clock.ms, { padding: 'y'.repeat(3 * 1024 * 1024) });
  t.ok(Buffer.byteLength(big) > 1024 * 1024);
  service.publish({ type: 'message', tsMs: clock.ms, payload: '{"guid": "broken",' });
  service.publish({ type: 'message', tsMs: clock.ms, payload: big });
  service.publish({ type: 'message', tsMs: clock.ms, payload: huge, binary: true });
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('after', clock.ms) });
  await until(() => h.consumer.statuses()[0]!.received === 4, 'all four received');
  await until(() => storedGuids(h.store).length === 2, 'two stored');
  t.same(storedGuids(h.store).sort(), ['after', 'big']);
  const dead = h.store.pod.deadLetters();
  t.same(dead.map((d) => d.code).sort(), ['ERR_POD_JSON', 'ERR_POD_TOO_LARGE']);
  const tooLarge = dead.find((d) => d.code === 'ERR_POD_TOO_LARGE')!;
  t.equal(tooLarge.rawBytes, Buffer.byteLength(huge));
  t.ok(tooLarge.rawTruncated, 'only the start of an oversize payload is kept');
  t.match(h.consumer.statuses()[0], { deadLettered: 2, stored: 2 });
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_events_dead_lettered_total\{stream="pod-msg"\} 2/);
  t.equal(live(service).length, 1, 'the session stayed up');
});

t.test('a missed pong is a drop: the consumer reconnects', async (t) => {
  const { service, h } = await setup(t, { answerPings: false, pod: { pingInterval: 20 } });
  await until(() => live(service).length >= 2, 'a second live session after the missed pong');
  t.ok(h.states.some((s) => s.state === 'backoff' && /no pong/.test(s.detail ?? '')), 'the drop says why');
});

t.test('a batch the store refuses is kept, the session dropped, and the batch stored before the next one', async (t) => {
  const { service, h, clock } = await setup(t, { pod: { batchSize: 2 } });
  await until(() => service.live.size === 1, 'a live session');
  const real = h.store.pod.storeBatch.bind(h.store.pod);
  let refusals = 0;
  h.store.pod.storeBatch = (items, opts) => {
    if (refusals++ < 2) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    return real(items, opts);
  };
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('x1', clock.ms) });
  service.publish({ type: 'message', tsMs: clock.ms, payload: messageEvent('x2', clock.ms) });
  await until(() => storedGuids(h.store).length === 2, 'both stored in the end');
  t.same(storedGuids(h.store), ['x1', 'x2']);
  await until(() => live(service).length >= 2, 'a new session after the failure');
  t.match(h.consumer.statuses()[0]!.lastError, /cannot store events: database is locked/);
  t.match(await h.metrics.registry.metrics(), /mailbag_pod_session_errors_total\{stream="pod-msg",reason="store"\} [1-9]/);
});
