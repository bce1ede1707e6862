// pod-ingest: events/s from the PoD publisher through a compressed WebSocket
// (permessage-deflate, both no-context-takeover options) into the store, for message and
// maillog events separately:
//   (a) end to end: the real PodPublisher in its own process (bench/pod-ingest/publisher.ts)
//       sends N generated events (bench/pod-ingest/events.ts) to the real PodConsumer in this
//       process, which validates, normalises, parses, dedupes and stores them in batches
//       (the production defaults: 500 events per IMMEDIATE transaction);
//   (b) baseline: a bare better-sqlite3 batched insert (500 rows per transaction, one
//       prepared statement) of the same rows into the same schema, in the same run.
// Reports events/s and the ratio (a)/(b); CPU per event of the consumer (all its threads) and
// of its main thread alone (the rest is the ingest thread's), of the bare insert and their
// ratio (bare CPU / consumer CPU: the same ratio in CPU terms, what a busy machine colours
// least), the publisher's CPU per event, and the peak RSS of both processes. It also checks
// that every event was stored exactly once.
//
//   npm run bench -- pod-ingest
//   env: BENCH_SCALE=0.25 (fewer events), BENCH_CPU_PROF=DIR (a .cpuprofile of the consumer's
//        main thread for each kind's timed run, and --cpu-prof of the publisher process),
//        BENCH_POD_INLINE=1 (each kind also with ingest on the consumer's main thread, the
//        A/B of the ingest thread in one run)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { PodConsumer } from '../../src/gateway/pod-consumer.js';
import { ingestToBatchItem, type PodEventKind } from '../../src/pod/ingest.js';
import { Store } from '../../src/store/store.js';
import { currentThreadCpuMs } from '../lib/thread-cpu.js';
import { generateEvents } from './events.js';

const scale = Number(process.env.BENCH_SCALE ?? '1');
const BATCH = 500;
/** A whole number of batches: the last one is stored at once, not after the batch delay. */
const COUNT = Math.max(1, Math.round((40_000 * scale) / BATCH)) * BATCH;
const START_MS = Date.parse('2026-11-30T10:00:00Z');
const SEED = { message: 1001, maillog: 2002 } as const;
const profDir = process.env.BENCH_CPU_PROF;

const work = mkdtempSync(join(tmpdir(), 'mailbag-bench-pod-ingest-'));

function hwmKb(): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
}

/** Resets this process's peak RSS (Linux), so each kind's figure is its own. */
function resetHwm(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux, or not allowed: the figure is then the peak so far
  }
}

/** This process's main thread's CPU time, µs (Linux; NaN elsewhere). */
function mainThreadCpuUs(): number {
  return currentThreadCpuMs() * 1000;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lineFrom(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  if (r.done) throw new Error('the publisher process ended early');
  return r.value;
}

interface EndToEnd {
  rate: number;
  cpuUsPerEvent: number;
  consumerHwmMb: number;
  publisherHwmMb: number;
  publisherCpuUsPerEvent: number;
  /** The CPU of the consumer's main thread alone, per event: the rest is the ingest thread's (and the GC's helpers). */
  mainCpuUsPerEvent: number;
}

type IngestMode = 'thread' | 'inline';

async function endToEnd(kind: PodEventKind, mode: IngestMode): Promise<EndToEnd> {
  const profArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, `publisher-${kind}-${mode}`)}`] : [];
  const child = spawn(
    process.execPath,
    ['--import=tsx', ...profArgs, fileURLToPath(new URL('./publisher.ts', import.meta.url)), kind, String(COUNT), String(SEED[kind]), String(START_MS)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { port, token } = JSON.parse(await lineFrom(lines)) as { port: number; token: string };
  const store = Store.open(join(work, `consumer-${kind}.db`));
  const config = validateConfig({ pod: { streams: [{ name: `bench-${kind}`, url: `ws://127.0.0.1:${port}/`, cid: 'bench', type: kind, token }] } });
  const consumer = new PodConsumer({ config: config.pod, store, logger: pino({ level: 'silent' }), env: {}, ingestThread: mode === 'thread' });
  consumer.start();
  const status = () => consumer.statuses()[0]!;
  while (status().state !== 'live') await sleep(5);
  // The live session starts at now: wait for it to be polling before the events appear.
  await sleep(50);
  global.gc?.();
  resetHwm();
  const session = profDir ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuUs();
  const t0 = performance.now();
  child.stdin.write('go\n');
  for (;;) {
    const s = status();
    if (s.stored + s.duplicates + s.deadLettered >= COUNT) break;
    await sleep(2);
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const mainCpu = mainThreadCpuUs() - main0;
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(profDir!, { recursive: true });
    writeFileSync(join(profDir!, `consumer-${kind}-${mode}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
  const consumerHwm = hwmKb();
  const s = status();
  const counts = store.pod.counts();
  const inStore = kind === 'message' ? counts.messages : counts.maillogs;
  if (s.stored !== COUNT || s.duplicates !== 0 || s.deadLettered !== 0 || inStore !== COUNT) {
    throw new Error(`${kind}: expected ${COUNT} events stored once, got stored ${s.stored}, duplicates ${s.duplicates}, dead-lettered ${s.deadLettered}, in the store ${inStore}`);
  }
  child.stdin.write('hwm\n');
  const { hwmKb: pubHwm, cpuUs: pubCpuUs } = JSON.parse(await lineFrom(lines)) as { hwmKb: number; cpuUs: number };
  await consumer.stop();
  store.close();
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return { rate: (COUNT * 1000) / ms, cpuUsPerEvent: (cpu.user + cpu.system) / COUNT, consumerHwmMb: consumerHwm / 1024, publisherHwmMb: pubHwm / 1024, publisherCpuUsPerEvent: pubCpuUs / COUNT, mainCpuUsPerEvent: mainCpu / COUNT };
}

/** The same rows, inserted bare: one prepared statement, 500 rows per IMMEDIATE transaction, no validation, no dedupe counting, no links. */
function bareInsert(kind: PodEventKind): { rate: number; cpuUsPerRow: number } {
  const rows = generateEvents(kind, COUNT, SEED[kind], START_MS).map((p) => {
    const item = ingestToBatchItem(p, `bench-${kind}`, { kind });
    if (item.kind === 'dead') throw new Error(`${kind}: a generated event does not ingest: ${item.row.reason}`);
    return { ...item.row, source: `bench-${kind}`, now: Date.now() };
  });
  const store = Store.open(join(work, `bare-${kind}.db`));
  const db = store.db;
  const insert =
    kind === 'message'
      ? db.prepare(`INSERT INTO pod_message_events
        (guid, ts, ts_us, content_sha256, qid, message_id, sid, envelope_from, disposition, cid, agent, source, event, stored_at)
        VALUES (@guid, @ts, @tsUs, @contentSha256, @qid, @messageId, @sid, @envelopeFrom, @disposition, @cid, @agent, @source, @event, @now)`)
      : db.prepare(`INSERT INTO pod_maillog_events
        (event_id, ts, ts_us, content_sha256, qid, message_id, mail_from, rcpts, relay, stat, dsn, queued_as, mailer,
         delay, xdelay, nrcpts, size, ctladdr, cid, agent, source, event, stored_at)
        VALUES (@eventId, @ts, @tsUs, @contentSha256, @qid, @messageId, @mailFrom, @rcpts, @relay, @stat, @dsn, @queuedAs,
         @mailer, @delay, @xdelay, @nrcpts, @size, @ctladdr, @cid, @agent, @source, @event, @now)`);
  const batch = db.transaction((slice: typeof rows) => {
    for (const r of slice) insert.run(r);
  });
  global.gc?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += BATCH) batch.immediate(rows.slice(i, i + BATCH));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  store.close();
  return { rate: (COUNT * 1000) / ms, cpuUsPerRow: (cpu.user + cpu.system) / COUNT };
}

/** The production default (ingest on its own thread), and with BENCH_POD_INLINE=1 the same consumer ingesting on its main thread, for an A/B in one run. */
const modes: IngestMode[] = process.env.BENCH_POD_INLINE === '1' ? ['thread', 'inline'] : ['thread'];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const onlyKind = process.argv[2] as PodEventKind | undefined;
const onlyMode = process.argv[3] as IngestMode | undefined;
try {
  if (onlyKind && onlyMode) {
    // One kind in this process (spawned below): its peak RSS is its own.
    const e = await endToEnd(onlyKind, onlyMode);
    const bare = bareInsert(onlyKind);
    process.stdout.write(`${JSON.stringify({ ...e, bare })}\n`);
  } else {
    const out: string[] = [];
    out.push(`${COUNT} events per kind; ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`, '');
    out.push(
      '| kind | ingest | end to end (events/s) | bare insert (rows/s) | ratio | consumer CPU per event | of which main thread | bare insert CPU per row | CPU ratio | publisher CPU per event | peak RSS: consumer | publisher |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const kind of ['message', 'maillog'] as const) for (const mode of modes) {
      const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), kind, mode], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${kind}: the benchmark process exited ${r.status ?? r.signal}`);
      const e = JSON.parse(r.stdout) as EndToEnd & { bare: { rate: number; cpuUsPerRow: number } };
      out.push(
        `| ${kind} | ${mode === 'thread' ? 'own thread' : 'main thread'} | ${fmt(e.rate)} | ${fmt(e.bare.rate)} | ${((e.rate / e.bare.rate) * 100).toFixed(0)}% | ` +
          `${e.cpuUsPerEvent.toFixed(0)} µs | ${e.mainCpuUsPerEvent.toFixed(0)} µs | ${e.bare.cpuUsPerRow.toFixed(0)} µs | ${((e.bare.cpuUsPerRow / e.cpuUsPerEvent) * 100).toFixed(0)}% | ` +
          `${e.publisherCpuUsPerEvent.toFixed(0)} µs | ${e.consumerHwmMb.toFixed(0)} MB | ${e.publisherHwmMb.toFixed(0)} MB |`,
      );
    }
    out.push('', `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
    process.stdout.write(`${out.join('\n')}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
