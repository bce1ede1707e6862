import { createServer, type AddressInfo } from 'node:net';

/**
 * A loopback port free at the time of the call, for a server that must be told its port
 * before it starts (a child process, a peer restarted on the same port).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
