// The real PoD publisher (src/gateway/pod-publisher.ts: its listener, bearer tokens, one
// session per token, permessage-deflate, live cursors) serving events a test plays instead
// of mailbag's own, through its event-source seam (a MemoryEventSource), so a test can stand
// in for the upstream filter: PoD-shaped message and maillog events, sent when the test says.
// The address and token are known before it starts, for the gateway's stream config:
// `reservePlayedPublisher` picks a free port, `start` listens on it (the consumer's
// reconnects find it).
import { join } from 'node:path';
import pino from 'pino';
import type { Test } from 'tap';
import { PodPublisher } from '../../src/gateway/pod-publisher.js';
import { loadOrCreateSecret } from '../../src/gateway/pod-secret.js';
import { MemoryEventSource } from '../../src/pod/event-source.js';
import { signToken } from '../../src/pod/jwt.js';
import { Store } from '../../src/store/store.js';
import { freePort } from './free-port.js';

export interface PlayedPublisher {
  /** Sends `event` (one JSON text, as PoD would) to the live sessions, at their next poll. */
  play(event: string): void;
  /** Open sessions. */
  readonly sessions: number;
}

export interface ReservedPublisher {
  /** `ws://127.0.0.1:PORT`, for a stream's `url`. */
  url: string;
  cid: string;
  /** A new token (one session per token). */
  token(): string;
  /** Starts the publisher on the reserved port; it stops at the end of `t`. */
  start(t: Test): Promise<PlayedPublisher>;
}

const CID = 'pphosted_test_hosted';

export async function reservePlayedPublisher(dir: string, type: 'message' | 'maillog'): Promise<ReservedPublisher> {
  const port = await freePort();
  const secretFile = join(dir, `upstream-${type}.secret`);
  const secret = loadOrCreateSecret(secretFile);
  return {
    url: `ws://127.0.0.1:${port}`,
    cid: CID,
    token: () => signToken(secret, { cid: CID, expiresInSec: 3600 }),
    async start(t: Test): Promise<PlayedPublisher> {
      // The publisher's own store keeps only the tokens' resume points here.
      const store = Store.open(join(dir, `upstream-${type}.db`));
      const source = new MemoryEventSource();
      const publisher = new PodPublisher({
        config: { listen: { host: '127.0.0.1', port }, secretFile, cid: CID, pollInterval: 20 },
        store,
        identity: { agent: 'm0000123.ppops.net', version: '8.21.0.1358', localDomains: [] },
        logger: pino({ level: 'silent' }),
        source,
      });
      await publisher.listen();
      t.teardown(async () => {
        await publisher.close();
        store.close();
      });
      return {
        play(event: string) {
          JSON.parse(event); // a test's own mistake shows here, not as a dead letter downstream
          source.append({ type, tsMs: Date.now(), payload: event });
        },
        get sessions() {
          return publisher.sessionCount;
        },
      };
    },
  };
}
