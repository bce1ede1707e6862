// The test proxy cuts connections with a reset (test/helpers/tcp-proxy.ts). A socket whose
// FIN is already under way cannot be reset: Node's resetAndDestroy() fails with EINVAL and
// leaves the handle open for good, and the test process then spins in its exit cleanup
// until the runner's timeout (seen now and then in test/pod-consumer.test.ts, whose
// teardown cuts connections a consumer is closing). Such a socket is destroyed instead.
import t from 'tap';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { cut } from './helpers/tcp-proxy.js';

async function pair(t: { teardown(fn: () => unknown): void }): Promise<{ client: Socket; accepted: Promise<Socket> }> {
  const server = createServer();
  const accepted = once(server, 'connection').then(([s]) => s as Socket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  return { client, accepted };
}

t.test('a socket that has just ended is closed, not left open by a failed reset', async (t) => {
  const { client, accepted } = await pair(t);
  const peer = await accepted;
  peer.on('error', () => undefined);
  peer.resume();
  // once() rejects on 'error': the failed reset would be 'reset EINVAL', and no 'close' after it
  const closed = once(client, 'close');
  client.end();
  cut(client);
  await t.resolves(closed, 'closed');
  t.equal(client.destroyed, true);
  peer.destroy();
});

t.test('an open socket is reset: the peer sees ECONNRESET, not a FIN', async (t) => {
  const { client, accepted } = await pair(t);
  const peer = await accepted;
  const seen = new Promise<string>((resolve) => {
    peer.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    peer.once('end', () => resolve('end'));
  });
  peer.resume();
  const closed = once(client, 'close');
  cut(client);
  t.equal(await seen, 'ECONNRESET');
  await closed;
  peer.destroy();
});
