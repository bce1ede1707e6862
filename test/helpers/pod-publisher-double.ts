// The real PoD publisher (`/v1/stream`, src/gateway/pod-publisher.ts) as the upstream
// service of consumer tests: its events come from a MemoryEventSource the test fills with
// any payload, its clock is the test's, and it sits behind a TCP proxy that records each
// request and can drop or stall the connections. Restarting it keeps its store (resume
// points) and its source, like a restarted service.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import WebSocket from 'ws';
import { PodPublisher } from '../../src/gateway/pod-publisher.js';
import { loadOrCreateSecret } from '../../src/gateway/pod-secret.js';
import { MemoryEventSource } from '../../src/pod/event-source.js';
import type { PodEventKind } from '../../src/pod/ingest.js';
import { signToken } from '../../src/pod/jwt.js';
import { Store } from '../../src/store/store.js';
import { startTcpProxy, type ProxiedConnection, type TcpProxy } from './tcp-proxy.js';

export interface PublisherDouble {
  source: MemoryEventSource;
  /** The endpoint for a consumer (the proxy): `ws://127.0.0.1:PORT/`. */
  url: string;
  cid: string;
  /** A fresh token (its own session slot) for `cid`, valid for 60 days of the test's clock. */
  token(cid?: string): string;
  /** Every connection seen, in order. */
  requests: ProxiedConnection[];
  /** The open sessions of that mode (upgraded, not closed). */
  open(mode?: 'live' | 'archive'): ProxiedConnection[];
  /** Appends events to the source; live sessions are told and send them at once. */
  publish(type: PodEventKind, tsMs: number, payload: string | Buffer): void;
  proxy: TcpProxy;
  /** Holds `token`'s one session, as another client would; resolves once it is open. */
  occupy(token: string, type?: PodEventKind): Promise<{ release(): Promise<void> }>;
  /** Stops the publisher (sessions end with 1001), runs `between`, starts a new one on the same store and source. */
  restart(between?: () => void): Promise<void>;
  close(): Promise<void>;
}

export function modeOf(c: ProxiedConnection): 'live' | 'archive' {
  return c.query.has('sinceTime') ? 'archive' : 'live';
}

export async function startPublisherDouble(now: () => number, opts: { cid?: string; pollMs?: number } = {}): Promise<PublisherDouble> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-pod-double-'));
  const cid = opts.cid ?? 'cid1';
  const secretFile = join(dir, 'publisher.secret');
  const secret = loadOrCreateSecret(secretFile);
  const store = Store.open(join(dir, 'publisher.db'));
  const source = new MemoryEventSource();
  const create = () =>
    new PodPublisher({
      config: { listen: { host: '127.0.0.1', port: 0 }, secretFile, cid, pollInterval: opts.pollMs ?? 20 },
      store,
      identity: { agent: 'pod.test', version: 'test', localDomains: [] },
      logger: pino({ level: 'silent' }),
      now,
      source,
    });
  let publisher: PodPublisher | undefined = create();
  await publisher.listen();
  const proxy = await startTcpProxy(() => publisher?.address().port, now);
  return {
    source,
    url: proxy.url,
    cid,
    token: (c = cid) => signToken(secret, { cid: c, expiresInSec: 60 * 86_400 }, now()),
    requests: proxy.connections,
    open: (mode) => proxy.connections.filter((c) => c.open && c.status === 101 && (mode === undefined || modeOf(c) === mode)),
    publish(type, tsMs, payload) {
      source.append({ type, tsMs, payload });
    },
    proxy,
    async occupy(token, type = 'message') {
      const ws = new WebSocket(`${proxy.url}v1/stream?cid=${encodeURIComponent(cid)}&type=${type}`, { headers: { Authorization: `Bearer ${token}` } });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return {
        release: () =>
          new Promise<void>((resolve) => {
            ws.once('close', () => resolve());
            ws.close(1000);
          }),
      };
    },
    async restart(between) {
      const old = publisher;
      publisher = undefined;
      await old?.close();
      between?.();
      const next = create();
      await next.listen();
      publisher = next;
    },
    async close() {
      await proxy.close();
      await publisher?.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
