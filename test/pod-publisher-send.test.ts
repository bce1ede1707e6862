// How the publisher's live sessions send: a source that tells of new events (`watch`) gets
// them sent at once, not at the next poll; a batch's events go out in order, each exactly
// once, compressed, and the session's resume point follows what was written.
import t from 'tap';
import WebSocket from 'ws';
import { loadOrCreateSecret } from '../src/gateway/pod-secret.js';
import { verifyToken } from '../src/pod/jwt.js';
import { startMemoryPublisher } from './helpers/memory-publisher.js';

async function publisherWith(t: { teardown(fn: () => unknown): void }, pollInterval: number) {
  const { publisher, source, store, secretFile, token } = await startMemoryPublisher(t, { name: 'pod-send', pollInterval });
  const tokenId = verifyToken(loadOrCreateSecret(secretFile), token).jti;
  const connect = async (onMessage: (data: Buffer, compressed: boolean) => void) => {
    const ws = new WebSocket(`ws://127.0.0.1:${publisher.address().port}/v1/stream?cid=c1&type=message`, {
      headers: { Authorization: `Bearer ${token}` },
      perMessageDeflate: { clientNoContextTakeover: true, serverNoContextTakeover: true },
    });
    let extensions = '';
    ws.on('upgrade', (res) => (extensions = String(res.headers['sec-websocket-extensions'])));
    ws.on('message', (data: Buffer) => onMessage(data, /permessage-deflate/.test(extensions)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return ws;
  };
  return { source, store, tokenId, connect, token, port: publisher.address().port };
}

const event = (i: number) => JSON.stringify({ guid: `g-${i}`, pad: 'x'.repeat(1500 + (i % 7) * 100) });

t.test('a live session sends what the source adds without waiting for its next poll', async (t) => {
  // An hour between polls: only the source telling the session can bring the event.
  const { source, connect } = await publisherWith(t, 3_600_000);
  const got: string[] = [];
  let arrived: () => void = () => undefined;
  const ws = await connect((data) => {
    got.push(data.toString('utf8'));
    if (got.length === 2) arrived();
  });
  t.teardown(() => ws.terminate());
  // the session opened with the upgrade: it is already waiting for its next poll
  source.append({ type: 'message', tsMs: 1, payload: event(1) });
  await new Promise((r) => setImmediate(r));
  source.append({ type: 'message', tsMs: 2, payload: event(2) });
  await new Promise<void>((resolve) => (arrived = resolve));
  t.same(got, [event(1), event(2)]);
});

t.test('a batch goes out whole, in order, each event once and compressed; a client close resumes after all of it', async (t) => {
  const { source, store, tokenId, connect } = await publisherWith(t, 3_600_000);
  const N = 1200; // more than two batches of the session
  const got: string[] = [];
  let allCompressed = true;
  let arrived: () => void = () => undefined;
  const ws = await connect((data, compressed) => {
    got.push(data.toString('utf8'));
    allCompressed &&= compressed;
    if (got.length === N) arrived();
  });
  const payloads = Array.from({ length: N }, (_, i) => event(i));
  source.append(...payloads.map((payload, i) => ({ type: 'message' as const, tsMs: i, payload })));
  await new Promise<void>((resolve) => (arrived = resolve));
  t.equal(got.length, N);
  t.ok(got.every((g, i) => g === payloads[i]), 'every event once, in order');
  t.ok(allCompressed, 'on a compressed session');
  const closed = new Promise((r) => ws.once('close', r));
  ws.close(1000, 'done');
  await closed;
  // the publisher records the drop when it sees the close; wait for it without a clock
  let drop;
  while (!(drop = store.podPublisher.lastDrop(tokenId, 'message'))) await new Promise((r) => setTimeout(r, 5));
  t.equal(drop.resume_from, String(N), 'resumes after the last event written');
});

t.test('a client that closes on an error (1009 too big, 1007 not UTF-8, ...) did not take what came after: it is sent again', async (t) => {
  for (const code of [1009, 1007, 1002, 1011]) {
    const { source, store, tokenId, port, token } = await publisherWith(t, 3_600_000);
    // No pongs: the client acknowledges nothing, as a client that failed on a frame would not.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?cid=c1&type=message`, { headers: { Authorization: `Bearer ${token}` }, autoPong: false });
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    let got = 0;
    const arrived = new Promise<void>((resolve) => ws.on('message', () => ++got === 3 && resolve()));
    source.append(...[1, 2, 3].map((i) => ({ type: 'message' as const, tsMs: i, payload: event(i) })));
    await arrived;
    const closed = new Promise((r) => ws.once('close', r));
    ws.close(code);
    await closed;
    let drop;
    while (!(drop = store.podPublisher.lastDrop(tokenId, 'message'))) await new Promise((r) => setTimeout(r, 5));
    t.equal(drop.resume_from, '0', `close ${code}: resumes from the last acknowledged event, not after what the client failed on`);
  }
});
