// ws is patched (patches/ws+8.23.0.patch) to deflate a whole message of up to 64 KiB
// synchronously, through one engine per socket reset after each message, when the sender
// takes no context over, as the PoD publisher's sessions do. The bytes must inflate back to
// the message with the negotiated window, larger and fragmented messages keep ws's own
// asynchronous path, and the order of messages holds across the two paths.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { constants, inflateRawSync } from 'node:zlib';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';

interface Deflater {
  accept(offers: Array<Record<string, Array<string | true>>>): Record<string, unknown>;
  compressSync(data: Buffer | string): Buffer | null;
  cleanup(): void;
}
type DeflaterClass = (new (options: Record<string, unknown>) => Deflater) & { prototype: Deflater };

const require = createRequire(import.meta.url);
// not among ws's exports: required by its path, the same module instance ws itself uses
const PerMessageDeflate = require(join(dirname(require.resolve('ws')), 'lib', 'permessage-deflate.js')) as DeflaterClass;
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A server-side extension that accepted `offer`. */
function serverSide(t: { teardown(fn: () => unknown): void }, offer: Record<string, Array<string | true>>, options: Record<string, unknown> = {}): Deflater {
  const d = new PerMessageDeflate({ isServer: true, serverNoContextTakeover: true, clientNoContextTakeover: true, ...options });
  d.accept([offer]);
  t.teardown(() => d.cleanup());
  return d;
}

function inflate(compressed: Buffer, windowBits = 15): Buffer {
  return inflateRawSync(Buffer.concat([compressed, TRAILER]), { windowBits, finishFlush: constants.Z_SYNC_FLUSH });
}

t.test('compressSync: whole messages inflate back, each on its own', async (t) => {
  const d = serverSide(t, { server_no_context_takeover: [true], client_no_context_takeover: [true] });
  const text = JSON.stringify({ guid: 'ü-€-𝄞', pad: 'abc'.repeat(2000) });
  const random = randomBytes(64 * 1024); // stays over 64 KiB compressed: the output spans two scratch buffers
  for (const [name, input] of [
    ['text with multi-byte characters', text],
    ['binary', Buffer.from(text)],
    ['incompressible 64 KiB', random],
    ['empty', Buffer.alloc(0)],
    ['the text again (no context from before)', text],
  ] as const) {
    const out = d.compressSync(input);
    if (!out) throw new Error(`${name}: not compressed synchronously`);
    t.ok(inflate(out).equals(Buffer.from(input)), `${name}: inflates to the message alone`);
  }
  t.ok(d.compressSync(text)!.length < Buffer.byteLength(text) / 4, 'text is compressed');
});

t.test('compressSync: the negotiated server_max_window_bits is the window used', async (t) => {
  const d = serverSide(t, { server_no_context_takeover: [true], client_no_context_takeover: [true], server_max_window_bits: ['9'] });
  // repeats 1,000 bytes apart: a 15-bit window would refer back beyond 512 bytes
  const block = randomBytes(500).toString('hex');
  const out = d.compressSync(block + block)!;
  t.ok(inflate(out, 9).equals(Buffer.from(block + block)), 'inflates with a 9-bit window');
});

t.test('compressSync: the asynchronous path for the rest', async (t) => {
  const d = serverSide(t, { server_no_context_takeover: [true], client_no_context_takeover: [true] });
  t.equal(d.compressSync(Buffer.alloc(64 * 1024 + 1)), null, 'over 64 KiB');
  t.equal(d.compressSync('x'.repeat(64 * 1024 + 1)), null, 'a string over 64 KiB');
  t.equal(d.compressSync('€'.repeat(30_000)), null, 'a string whose UTF-8 form is over 64 KiB');
  const context = serverSide(t, { client_no_context_takeover: [true] }, { serverNoContextTakeover: false });
  t.equal(context.compressSync('{"a":1}'), null, 'the server takes its context over');
});

t.test('small, large and fragmented messages arrive whole and in order, small ones deflated synchronously', async (t) => {
  const original = PerMessageDeflate.prototype.compressSync;
  let synchronous = 0;
  PerMessageDeflate.prototype.compressSync = function (this: Deflater, data: Buffer | string) {
    const out = original.call(this, data);
    if (out) synchronous++;
    return out;
  };
  t.teardown(() => {
    PerMessageDeflate.prototype.compressSync = original;
  });
  const deflate = { serverNoContextTakeover: true, clientNoContextTakeover: true };
  const small = (i: number) => JSON.stringify({ guid: `g-${i}`, note: 'ü€'.repeat(300), pad: 'z'.repeat(1200) });
  const big = randomBytes(200 * 1024); // the asynchronous path; the sends after it wait for it
  const fragmented = [Buffer.from('first half, '.repeat(200)), Buffer.from('second half'.repeat(200))];
  const expected: Buffer[] = [];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  wss.on('connection', (ws) => {
    const send = (m: string | Buffer) => {
      ws.send(m);
      expected.push(Buffer.from(m));
    };
    send(small(0));
    send(big);
    send(small(1));
    ws.send(fragmented[0]!, { fin: false });
    ws.send(fragmented[1]!, { fin: true });
    expected.push(Buffer.concat(fragmented));
    send(Buffer.from(small(2)));
    send('tiny');
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: deflate });
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === 6) resolve();
    });
    client.on('error', reject);
  });
  client.close();
  t.equal(got.length, expected.length);
  expected.forEach((e, i) => t.ok(got[i]!.equals(e), `message ${i} (${e.length} bytes) intact`));
  t.equal(synchronous, 3, 'the three small whole messages over the threshold went the synchronous way');
});

t.test('a Blob deflated synchronously leaves the sender free for the messages after it', async (t) => {
  const deflate = { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 0 };
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  wss.on('connection', (ws) => {
    ws.send(new Blob(['from a blob, '.repeat(20)]));
    ws.send('after the blob');
    ws.send(Buffer.from('and once more'));
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: deflate });
  t.teardown(() => client.terminate());
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on('message', (data: Buffer) => {
      got.push(data.toString());
      if (got.length === 3) resolve();
    });
    client.on('error', reject);
  });
  t.same(got, ['from a blob, '.repeat(20), 'after the blob', 'and once more'], 'every message, in order');
});
