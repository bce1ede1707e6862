import { join } from 'node:path';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { tempDir, testConfig } from './gateway.js';

export interface ImpGateway {
  gw: Gateway;
  /** The IMP acceptor's port on 127.0.0.1. */
  port: number;
  /** Where `example.test` is filed (Maildir). */
  mailboxes: string;
}

/**
 * A gateway whose IMP acceptor (MPM `ihn`) listens on 127.0.0.1 and which files
 * `example.test` in a Maildir of its temporary directory (then `routes`, if given); it is
 * stopped and its directory removed when the test ends.
 */
export async function startImpGateway(
  t: { teardown(fn: () => unknown): void },
  o: { name: string; ihn: number; imp?: Record<string, unknown>; routes?: { domain: string; nexthop: string }[] },
): Promise<ImpGateway> {
  const { dir, cleanup } = tempDir(o.name);
  const mailboxes = join(dir, 'mailboxes');
  const gw = await startGateway(
    testConfig(dir, {
      imp: { ihn: o.ihn, listen: { host: '127.0.0.1', port: 0 }, ...o.imp },
      routes: [{ domain: 'example.test', nexthop: `maildir:${mailboxes}` }, ...(o.routes ?? [])],
    }),
    { pollMs: 50 },
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  return { gw, port: gw.impAddress()!.port, mailboxes };
}
