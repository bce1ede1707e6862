// Stopping the PoD publisher, and refusing: no session may outlive the stop (the gateway
// closes the store right after the publisher, so a session that opened meanwhile would later
// record its drop point on a closed store, an exception thrown from a socket event), and no
// error of a refused socket escapes.
import type { Server } from 'node:http';
import { pino } from 'pino';
import t from 'tap';
import WebSocket from 'ws';
import { startMemoryPublisher } from './helpers/memory-publisher.js';
import { rawRequest } from './helpers/raw-http.js';

/** The publisher's HTTP server, to act between a request's arrival and the publisher's handling of it. */
function httpServerOf(p: object): Server {
  return (p as { server: Server }).server;
}

/** A WebSocket upgrade to the publisher's stream, as raw bytes. */
function upgradeRequest(token: string): string {
  return (
    `GET /v1/stream?cid=c1&type=message HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Authorization: Bearer ${token}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

t.test('an upgrade that arrives while the publisher stops is refused with 503: no session outlives the stop', async (t) => {
  const { publisher, port, token } = await startMemoryPublisher(t, { name: 'pod-publisher-stop', pollInterval: 3_600_000 });
  let stopping: Promise<void> | undefined;
  // the stop begins after the request has arrived and before the publisher handles it
  httpServerOf(publisher).prependOnceListener('upgrade', () => {
    stopping = publisher.close();
  });
  const { statusLine: status } = await rawRequest(port, upgradeRequest(token));
  t.ok(stopping, 'the stop began before the upgrade was handled');
  await stopping;
  t.match(status, /^HTTP\/1\.1 503 /, 'refused: the server is stopping');
  t.equal(publisher.sessionCount, 0, 'no session left');
});

t.test('a drop point the store cannot record is logged, never thrown from the socket event', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const { publisher, source, store, port, token } = await startMemoryPublisher(t, { name: 'pod-publisher-stop', pollInterval: 10, logger });
  store.podPublisher.saveDrop = () => {
    throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
  };
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?cid=c1&type=message`, { headers: { Authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  // a new token's live session starts at the newest event: this one comes after it
  const received = new Promise<void>((resolve) => ws.once('message', () => resolve()));
  source.append({ type: 'message', tsMs: Date.now(), payload: '{"guid":"g1"}' });
  await received;
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.close(1000);
  await closed;
  // the server's side of the close has run once the session is gone
  for (let i = 0; publisher.sessionCount > 0; i++) {
    if (i > 2000) throw new Error('the session never ended');
    await new Promise((r) => setTimeout(r, 5));
  }
  const logged = lines.find((l) => /could not record where the session dropped/.test(String(l.msg)));
  t.ok(logged, 'an error line says the drop point was not recorded');
  t.equal(logged?.level, 50, 'at error level');
  t.match(logged, { err: { message: 'disk I/O error', code: 'SQLITE_IOERR' } });
});

t.test('a client that resets while its refusal is written is no uncaught exception', async (t) => {
  const { publisher, port } = await startMemoryPublisher(t, { name: 'pod-publisher-stop', pollInterval: 3_600_000 });
  // after the publisher has written its refusal: the peer's reset, as the socket reports it
  let reset = false;
  httpServerOf(publisher).once('upgrade', (_req, socket: import('node:net').Socket) => {
    socket.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    reset = true;
  });
  const status = await rawRequest(port, upgradeRequest('not-a-token')).then(
    (r) => r.statusLine,
    (err: Error) => err.message,
  );
  t.ok(reset, 'the reset was reported on the refused socket');
  t.match(status, /^HTTP\/1\.1 401 |^closed without a response/, 'refused (401), or closed by the reset first');
});
