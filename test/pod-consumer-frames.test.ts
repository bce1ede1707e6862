// What an upstream server may put in a frame that `ws` itself would refuse: a text frame whose
// bytes are not UTF-8. The document promises JSON, but a hostile or broken server can send
// anything; the payload must reach ingest (and be dead-lettered there, with its reason), not
// fail the connection. A failed connection would be replayed from the drop on every reconnect,
// so one bad frame would stall the stream for good and never be recorded.
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { messageEvent, startConsumer, storedGuids, tempStore, TestClock, until } from './helpers/pod-consumer.js';

const T0 = Date.parse('2026-11-30T10:05:00Z');

t.test('a text frame that is not UTF-8 is dead-lettered; the session stays up and the next event is stored', async (t) => {
  const clock = new TestClock(T0);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true } });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  let connections = 0;
  // A JSON event with a 0xff byte inside a string: well-formed JSON, not UTF-8.
  const bad = Buffer.concat([Buffer.from('{"guid":"bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('","ts":"2026-11-30T03:05:00-0700"}')]);
  server.on('connection', (ws) => {
    connections++;
    ws.send(messageEvent('before', clock.ms));
    ws.send(bad, { binary: false });
    ws.send(messageEvent('after', clock.ms + 1));
  });
  const tmp = tempStore();
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const h = startConsumer(tmp.path, { streams: [{ name: 'pod-msg', url, cid: 'cid1', type: 'message', token: 'tok' }] }, clock);
  t.teardown(async () => {
    await h.stop();
    for (const c of server.clients) c.terminate();
    await new Promise((r) => server.close(r));
    tmp.cleanup();
  });
  await until(() => storedGuids(h.store).length === 2, 'the events on either side of the bad frame stored');
  t.same(storedGuids(h.store), ['before', 'after']);
  const dead = h.store.pod.deadLetters();
  t.equal(dead.length, 1, 'the bad frame is one dead letter');
  t.equal(dead[0]!.code, 'ERR_POD_JSON');
  t.match(dead[0]!.reason, /not UTF-8/);
  t.same(dead[0]!.raw, bad, 'kept byte for byte');
  t.equal(connections, 1, 'one session: the bad frame did not drop it');
  t.match(h.consumer.statuses()[0], { state: 'live', received: 3, stored: 2, deadLettered: 1 });
});

t.test('a message over the hard limit (4 x maxEventBytes) ends the session with a reason that says what to change', async (t) => {
  const clock = new TestClock(T0);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  server.on('connection', (ws) => ws.send(messageEvent('huge', clock.ms, { padding: 'y'.repeat(300 * 1024) })));
  const tmp = tempStore();
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const h = startConsumer(tmp.path, { maxEventBytes: '64KiB', streams: [{ name: 'pod-msg', url, cid: 'cid1', type: 'message', token: 'tok' }] }, clock);
  t.teardown(async () => {
    await h.stop();
    for (const c of server.clients) c.terminate();
    await new Promise((r) => server.close(r));
    tmp.cleanup();
  });
  const backoff = await until(() => h.states.find((s) => s.state === 'backoff'), 'the session ended');
  t.match(backoff.detail, /over 262144 bytes .*pod\.maxEventBytes/);
  t.match(h.consumer.statuses()[0]!.lastError, /pod\.maxEventBytes/);
});
