// The consumer's per-event CPU without the WebSocket, stage by stage, for message and maillog
// events (the generated events of the pod-ingest benchmark):
//   ingest  ingestToBatchItem: UTF-8 check, JSON.parse, normalisation, schema, sendmail line,
//           canonical JSON and its sha256, the store row;
//   store   PodStore.storeBatch, 500 events per IMMEDIATE transaction, into a store with every
//           migration and, interleaved batch by batch (the same machine load for both), into
//           one without migration 26 (rule counters read from the event JSON by a trigger).
//
//   node --import=tsx --expose-gc bench/pod-ingest/stages.ts    (env: BENCH_SCALE=0.5)
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import { migrate, migrations } from '../../src/store/migrations.js';
import { PodStore } from '../../src/store/pod-store.js';
import { generateEvents } from './events.js';

const N = Math.max(500, Math.round((20_000 * Number(process.env.BENCH_SCALE ?? '1')) / 500) * 500);
const BATCH = 500;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-pod-stages-'));

function cpuUs(f: () => void): number {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

function podStore(name: string, versions: typeof migrations): PodStore {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, versions);
  return new PodStore(db);
}

try {
  process.stdout.write(`${N} events per kind; CPU per event\n\n| kind | ingest | store | store without migration 26 |\n|---|---|---|---|\n`);
  for (const kind of ['message', 'maillog'] as const) {
    const payloads = generateEvents(kind, N, 7, Date.parse('2026-11-30T10:00:00Z')).map((p) => Buffer.from(p));
    for (const p of payloads.slice(0, 2000)) ingestToBatchItem(p, 'bench', { kind }); // warm up
    global.gc?.();
    let items: ReturnType<typeof ingestToBatchItem>[] = [];
    const ingest = cpuUs(() => {
      items = payloads.map((p) => ingestToBatchItem(p, 'bench', { kind }));
    });
    if (items.some((i) => i.kind === 'dead')) throw new Error(`${kind}: a generated event does not ingest`);
    const current = podStore(`${kind}-current.db`, migrations);
    const before = podStore(`${kind}-before-26.db`, migrations.filter((m) => m.version !== 26));
    const store = { current: 0, before: 0 };
    for (let i = 0; i < N; i += BATCH) {
      const slice = items.slice(i, i + BATCH);
      // Alternately first: the first to bind an event's text also flattens it (a cost paid once).
      const order = (i / BATCH) % 2 ? (['current', 'before'] as const) : (['before', 'current'] as const);
      for (const which of order) store[which] += cpuUs(() => (which === 'current' ? current : before).storeBatch(slice, { source: 'bench', checkpointStream: 'bench' }));
    }
    current.db.close();
    before.db.close();
    const us = (n: number) => `${(n / N).toFixed(1)} µs`;
    process.stdout.write(`| ${kind} | ${us(ingest)} | ${us(store.current)} | ${us(store.before)} |\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
