// Fixtures for consumer tests: events built from a public sample with a chosen guid and ts,
// a consumer on a fresh store with a test clock, and waiting on what the store holds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createGatewayMetrics, type GatewayMetrics } from '../../src/gateway/metrics.js';
import { PodConsumer } from '../../src/gateway/pod-consumer.js';
import { formatPodTime } from '../../src/pod/time.js';
import type { PodStreamState } from '../../src/store/pod-stream-store.js';
import { Store } from '../../src/store/store.js';
import { podFixture } from './pod-corpus.js';

const sample = JSON.parse(podFixture('elastic-test-message.jsonl').split('\n')[0]!) as Record<string, unknown>;

/** A valid message event (a public sample) with this guid and instant, in PoD's `-0700` spelling. */
export function messageEvent(guid: string, tsMs: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...sample, ...extra, guid, ts: formatPodTime(tsMs * 1000, -420) });
}

export class TestClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface ConsumerHarness {
  store: Store;
  consumer: PodConsumer;
  metrics: GatewayMetrics;
  states: Array<{ stream: string; state: PodStreamState; detail: string | null }>;
  stop(): Promise<void>;
}

export function tempStore(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-pod-consumer-'));
  return { path: join(dir, 'mailbag.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Fast timings: reconnects in tens of ms, a ping every 5 s unless the test says otherwise. */
export function startConsumer(storePath: string, pod: NonNullable<ConfigInput['pod']>, clock: TestClock, env: NodeJS.ProcessEnv = {}): ConsumerHarness {
  const config = validateConfig({
    pod: { pingInterval: '5s', reconnectInitial: 10, reconnectMax: 100, conflictRetry: 50, batchDelay: 5, ...pod },
  });
  const store = Store.open(storePath);
  const metrics = createGatewayMetrics({ processMetrics: false });
  const states: ConsumerHarness['states'] = [];
  const consumer = new PodConsumer({
    config: config.pod,
    store,
    logger: pino({ level: 'silent' }),
    metrics: metrics.pod,
    env,
    now: clock.now,
    random: () => 0.5,
    onState: (stream, state, detail) => states.push({ stream, state, detail }),
  });
  consumer.start();
  return {
    store,
    consumer,
    metrics,
    states,
    async stop() {
      await consumer.stop();
      metrics.close();
      store.close();
    },
  };
}

export function storedGuids(store: Store): string[] {
  return (store.db.prepare('SELECT guid FROM pod_message_events ORDER BY ts_us, guid').all() as { guid: string }[]).map((r) => r.guid);
}

/** Polls (no time limit of its own: tap's test timeout bounds it) until `fn` is truthy. */
export async function until<T>(fn: () => T, what: string): Promise<NonNullable<T>> {
  for (let i = 0; ; i++) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (i > 3000) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
