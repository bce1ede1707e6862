// A client that vanishes without a close (a network partition, a NAT that forgets the
// connection) must not hold its token: the API allows one session per token, so the
// consumer coming back on it would get 409 for as long as the dead session lasts, and on
// an idle stream nothing is ever written that could fail. The publisher pings each
// session; a client that answered nothing by the next ping is gone.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { startMemoryPublisher } from './helpers/memory-publisher.js';

async function publisher(t: { teardown(fn: () => unknown): void }, pingInterval = 50) {
  const { publisher: p, source, port, token } = await startMemoryPublisher(t, { name: 'pod-dead-client', pollInterval: 3_600_000, pingInterval });
  return { p, source, port, token };
}

/** A handshake over raw TCP; afterwards the socket reads but never answers (a client gone silent). */
function silentClient(port: number, token: string): Promise<{ socket: Socket; status: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.on('data', () => undefined); // keeps reading: the kernel never pushes back
      resolve({ socket, status: head.slice(0, head.indexOf('\r\n')) });
    };
    socket.on('data', onData).on('error', reject);
    socket.write(
      `GET /v1/stream?cid=c1&type=message HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Authorization: Bearer ${token}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

function statusOf(port: number, token: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?cid=c1&type=message`, { headers: { Authorization: `Bearer ${token}` } });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      resolve(101);
      ws.close();
    });
    ws.once('error', () => resolve(0));
  });
}

t.test('a client gone silent is dropped at the next ping, and its token can open a new session', async (t) => {
  const { p, port, token } = await publisher(t);
  const silent = await silentClient(port, token);
  t.teardown(() => silent.socket.destroy());
  t.equal(silent.status, 'HTTP/1.1 101 Switching Protocols');
  t.equal(await statusOf(port, token), 409, 'while the session is taken to be open, the token is in use');
  let status = 409;
  for (let i = 0; i < 300 && status === 409; i++) {
    await new Promise((r) => setTimeout(r, 20));
    status = await statusOf(port, token);
  }
  t.equal(status, 101, 'the dead session was ended: the token opens a session again');
  await new Promise((r) => setTimeout(r, 0));
  t.ok(p.sessionCount <= 1);
});

t.test('a client that answers the pings keeps its session, however idle', async (t) => {
  const { p, port, token } = await publisher(t);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?cid=c1&type=message`, { headers: { Authorization: `Bearer ${token}` } });
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  let pings = 0;
  await new Promise<void>((resolve) => ws.on('ping', () => ++pings === 5 && resolve()));
  t.equal(ws.readyState, WebSocket.OPEN, 'five pings answered, still open');
  t.equal(p.sessionCount, 1);
});

t.test("a pong to the publisher's keepalive ping does not acknowledge events sent after that ping", async (t) => {
  const { source, port, token } = await publisher(t, 200);
  const url = `ws://127.0.0.1:${port}/v1/stream?cid=c1&type=message`;
  // This client answers pings only when the test says so.
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, autoPong: false });
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  const keepalive = await new Promise<Buffer>((resolve) => ws.once('ping', (d: Buffer) => resolve(d)));
  // g1 goes out after the keepalive ping (with a ping of its own, left unanswered).
  source.append({ type: 'message', tsMs: Date.now(), payload: '{"guid":"g1"}' });
  await new Promise<void>((resolve) => ws.once('message', () => resolve()));
  ws.pong(keepalive);
  // Dropped without a close frame: only what was acknowledged counts as taken.
  const closed = new Promise((r) => ws.once('close', r));
  await new Promise((r) => setTimeout(r, 20));
  ws.terminate();
  await closed;
  const again = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
  t.teardown(() => again.terminate());
  const replayed = await new Promise<string>((resolve, reject) => {
    again.once('message', (d: Buffer) => resolve(d.toString('utf8')));
    again.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  t.equal(replayed, '{"guid":"g1"}', 'g1 is sent again after the reconnect');
});
