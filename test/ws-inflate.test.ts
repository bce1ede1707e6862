// ws is patched (patches/ws+8.23.0.patch) to inflate a whole message of up to 64 KiB
// synchronously when the sender takes no context over, as the PoD Log API's sessions do.
// Both paths must give the same bytes, in order, and keep ws's limits.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';

const deflate = { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 0 };

async function server(t: { teardown(fn: () => unknown): void }, onConnection: (ws: WebSocket) => void): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
  wss.on('connection', onConnection);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
}

t.test('small, large, incompressible and fragmented messages arrive whole and in order', async (t) => {
  const messages: Buffer[] = [
    Buffer.from('{"guid":"a"}'),
    Buffer.from('x'.repeat(3 * 1024 * 1024)), // compresses to a few KiB: the synchronous path
    randomBytes(200 * 1024), // stays about 200 KiB compressed: the asynchronous path
    Buffer.from(JSON.stringify({ guid: 'b', pad: 'y'.repeat(5000) })),
  ];
  const fragmented = [Buffer.from('first half, '), Buffer.from('second half')];
  const url = await server(t, (ws) => {
    for (const m of messages.slice(0, 2)) ws.send(m);
    ws.send(fragmented[0]!, { fin: false });
    ws.send(fragmented[1]!, { fin: true });
    for (const m of messages.slice(2)) ws.send(m);
  });
  const client = new WebSocket(url, { perMessageDeflate: deflate });
  let negotiated = '';
  client.on('upgrade', (res) => (negotiated = String(res.headers['sec-websocket-extensions'])));
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === 5) resolve();
    });
    client.on('error', reject);
  });
  client.close();
  t.match(negotiated, /^permessage-deflate;.*server_no_context_takeover/, 'compressed, no context taken over');
  const expected = [messages[0]!, messages[1]!, Buffer.concat(fragmented), messages[2]!, messages[3]!];
  t.equal(got.length, expected.length);
  expected.forEach((e, i) => t.ok(got[i]!.equals(e), `message ${i} (${e.length} bytes) intact`));
});

t.test('a message that inflates past maxPayload closes the connection with 1009', async (t) => {
  let serverSaw: (code: number) => void = () => undefined;
  const closedWith = new Promise<number>((resolve) => (serverSaw = resolve));
  const url = await server(t, (ws) => {
    ws.on('close', (code) => serverSaw(code));
    ws.send(Buffer.alloc(8 * 1024 * 1024));
  });
  const client = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 1024 * 1024 });
  const messages: unknown[] = [];
  client.on('message', (m) => messages.push(m));
  const error = await new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
  t.equal(error.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
  t.equal(await closedWith, 1009, 'the client closed with 1009');
  t.same(messages, [], 'nothing of it was delivered');
});

t.test('a corrupt compressed message closes the connection with 1007; the next connection inflates again', async (t) => {
  let serverSaw: (code: number) => void = () => undefined;
  const closedWith = new Promise<number>((resolve) => (serverSaw = resolve));
  let connections = 0;
  const url = await server(t, (ws) => {
    if (connections++ === 0) {
      ws.on('close', (code) => serverSaw(code));
      // A good message first (it leaves the client's inflate engine in use), then, once it is
      // written, a frame with FIN, RSV1 (compressed), text: 3 bytes that are not a deflate stream.
      ws.send('{"guid":"before"}', () => (ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.from([0xc1, 0x03, 0xff, 0xff, 0xff])));
    } else {
      ws.send('{"guid":"after"}');
    }
  });
  const first = new WebSocket(url, { perMessageDeflate: deflate });
  const got: string[] = [];
  first.on('message', (m: Buffer) => got.push(m.toString()));
  const error = await new Promise<Error & { code?: string }>((resolve) => first.once('error', resolve));
  t.match(error.message, /invalid|incorrect|unknown/i, 'zlib says what is wrong');
  t.equal(await closedWith, 1007, 'the client closed with 1007');
  t.same(got, ['{"guid":"before"}'], 'the message before it was delivered, nothing of the corrupt one');
  const second = new WebSocket(url, { perMessageDeflate: deflate });
  const next = await new Promise<string>((resolve) => second.once('message', (m: Buffer) => resolve(m.toString())));
  second.close();
  t.equal(next, '{"guid":"after"}');
});
