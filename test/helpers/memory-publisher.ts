import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { PodPublisher } from '../../src/gateway/pod-publisher.js';
import { loadOrCreateSecret } from '../../src/gateway/pod-secret.js';
import { MemoryEventSource } from '../../src/pod/event-source.js';
import { signToken } from '../../src/pod/jwt.js';
import { Store } from '../../src/store/store.js';

export interface MemoryPublisher {
  publisher: PodPublisher;
  /** What the publisher serves: the test adds events here. */
  source: MemoryEventSource;
  /** The publisher's own store (its tokens' resume points). */
  store: Store;
  port: number;
  secretFile: string;
  /** A token valid for the publisher's cid (`c1`) for an hour. */
  token: string;
}

/**
 * A PoD publisher listening on 127.0.0.1 (a free port) for cid `c1`, serving the events of
 * a `MemoryEventSource`, with its store and secret in a temporary directory; closed and
 * removed at the test's end.
 */
export async function startMemoryPublisher(
  t: { teardown(fn: () => unknown): void },
  o: { name: string; pollInterval: number; pingInterval?: number; logger?: Logger },
): Promise<MemoryPublisher> {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-${o.name}-`));
  const secretFile = join(dir, 'secret');
  const store = Store.open(join(dir, 'publisher.db'));
  const source = new MemoryEventSource();
  const publisher = new PodPublisher({
    config: { listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'c1', pollInterval: o.pollInterval, ...(o.pingInterval !== undefined ? { pingInterval: o.pingInterval } : {}) },
    store,
    identity: { agent: `${o.name}.test`, version: 'test', localDomains: [] },
    logger: o.logger ?? pino({ level: 'silent' }),
    source,
  });
  await publisher.listen();
  t.teardown(async () => {
    await publisher.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const token = signToken(loadOrCreateSecret(secretFile), { cid: 'c1', expiresInSec: 3600 });
  return { publisher, source, store, port: publisher.address().port, secretFile, token };
}
