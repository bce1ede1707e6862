// smtp-relay: messages/s for 10 KB messages at 20 sessions, with and without
// connection reuse, for
//   (a) smtp-source -> smtp-sink                  (baseline: the tools' own ceiling)
//   (b) smtp-source -> mailbag -> smtp-sink        (real gateway process, durability on)
//   (c) smtp-source -> smtp-server + nodemailer -> smtp-sink  (the libraries alone, in
//       memory, not durable: the floor mailbag's SMTP stack sets)
// all in one run. mailbag accepts (250 after fsync + SQLite commit) and relays
// asynchronously, so two rates are reported: the accept rate (smtp-source done) and
// the end-to-end relay rate (the sink has every message). Peak RSS is the gateway
// process's VmHWM. For mailbag, the worst event-loop delay of its SMTP thread during
// the run is read from its /metrics (mailbag_event_loop_delay_max_seconds).
//
//   npm run bench -- smtp-relay
//   env: BENCH_SCALE=0.2 (fewer messages), BENCH_CPU_PROF=DIR (write a --cpu-prof of
//        the gateway per scenario), BENCH_LOG_LEVEL=info (gateway log level),
//        BENCH_HARAKA=0 (skip the Haraka comparison: npm-installs Haraka into a temp dir),
//        BENCH_QUICK=1 (only the baselines and mailbag with greetingDelay 0),
//        BENCH_POD_PUBLISHER=1 (mailbag with reuse, greetingDelay 0 once more with the PoD
//        publisher on: each message's facts are read and committed before its 250),
//        BENCH_FROM_SOURCE=1 (run the gateway from src/ through tsx instead of the compiled
//        build that `npm start` runs; the bench builds it first).
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePostfixTools, runSource, startSink, type Sink } from './lib/postfix-tools.js';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processCpuSeconds, spawnGateway, type GatewayProcess } from '../test/helpers/gateway-process.js';
import { ensureHaraka, startHaraka } from './lib/haraka.js';
import { freePort } from './lib/postfix-tools.js';
import { writeBenchGatewayConfig } from './lib/gateway-config.js';
import { storageWriteBytes, userSystemSeconds } from './lib/proc-io.js';
import { threadCpuPerMessage, threadCpuSeconds } from './lib/thread-cpu.js';

const SESSIONS = 20;
const BYTES = 10 * 1024;
const scale = Number(process.env.BENCH_SCALE ?? '1');
const counts = {
  reuse: Math.round(10_000 * scale),
  noReuse: Math.round(4_000 * scale),
  noReuseDefaultDelay: Math.round(1_500 * scale),
  haraka: Math.round(2_000 * scale),
};
const FROM = 'bench-sender@example.org';
const logLevel = process.env.BENCH_LOG_LEVEL ?? 'info';
/** BENCH_QUICK=1: only the baselines and mailbag with greetingDelay 0 (no floor, no Haraka). */
const quick = process.env.BENCH_QUICK === '1';
const TO = 'bench@example.test';
/**
 * Messages each relay (mailbag, Haraka, the library floor) relays in the measured mode
 * before the measurement starts. A fresh Node.js process spends its first seconds
 * compiling its hot functions on V8's helper threads (measured: as much CPU as the SMTP
 * thread at first, under a tenth of it after about 10 s); a gateway runs for days, so the
 * figures are those of a warm process. BENCH_WARMUP=0 measures from a cold start.
 */
const warmupCount = Number(process.env.BENCH_WARMUP ?? '6000');
if (!Number.isInteger(warmupCount) || warmupCount < 0) {
  process.stderr.write(`smtp-relay: BENCH_WARMUP must be a number of messages (0 or more), not ${JSON.stringify(process.env.BENCH_WARMUP)}\n`);
  process.exit(2);
}

interface Row {
  path: string;
  mode: string;
  count: number;
  acceptRate: number;
  relayRate?: number;
  baseline?: number;
  peakRss?: number;
  /** Relay process CPU (user + system) per message, ms: the figure a busy machine colours least. */
  cpuMsPerMessage?: number;
  /** mailbag only: the SMTP thread's worst event-loop delay during the run, ms. */
  loopDelayMaxMs?: number;
  note?: string;
}

/**
 * The gateway as operators run it: the compiled build (`npm start`), built here first.
 * From source, tsx's loader also turns on source-mapped stack traces, so every error
 * whose stack a library reads (Node's streams read it when a client resets its connection)
 * costs a source-map lookup the installed gateway never pays.
 */
const fromSource = process.env.BENCH_FROM_SOURCE === '1';
if (!fromSource) {
  const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: 'inherit' });
  if (built.status !== 0) {
    process.stderr.write('smtp-relay: could not build the gateway (npm run build); BENCH_FROM_SOURCE=1 runs it from src/\n');
    process.exit(1);
  }
}

const found = ensurePostfixTools();
if (typeof found === 'string') {
  process.stdout.write(`skipped: ${found}\n`);
  process.exit(0);
}
const tools = found;

const work = mkdtempSync(join(tmpdir(), 'mailbag-bench-relay-'));
const cleanups: Array<() => Promise<void>> = [];
const rows: Row[] = [];
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function cleanup() {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  rmSync(work, { recursive: true, force: true });
}

function rate(n: number, ms: number) {
  return (n * 1000) / ms;
}

/** smtp-source sending `count` messages from SESSIONS sessions to the relay on `port`. */
function sendThrough(port: number, count: number, reuse: boolean) {
  return runSource(tools.source, { port, sessions: SESSIONS, count, bytes: BYTES, reuse, timeoutMs: 300_000, from: FROM, to: TO });
}

/** Relays `warmupCount` messages through the relay on `port` unmeasured; returns the sink's count after them. */
async function warmUp(port: number, sink: Sink, reuse: boolean, what: string): Promise<number> {
  if (warmupCount <= 0) return sink.received();
  const run = await sendThrough(port, warmupCount, reuse);
  if (!run.ok) throw new Error(`warm-up through ${what} failed: ${run.stderr.split('\n')[0]}`);
  await sink.waitFor(warmupCount, 120_000);
  return sink.received();
}

async function baseline(reuse: boolean, count: number): Promise<number> {
  const sink = await startSink(tools.sink);
  cleanups.push(() => sink.stop());
  try {
    const run = await runSource(tools.source, { port: sink.port, sessions: SESSIONS, count, bytes: BYTES, reuse, timeoutMs: 120_000, from: FROM, to: TO });
    if (!run.ok) throw new Error(`smtp-source -> smtp-sink failed: ${run.stderr}`);
    await sink.waitFor(count, 10_000);
    const r = rate(count, run.ms);
    rows.push({ path: 'smtp-source -> smtp-sink', mode: reuse ? 'reuse (-d)' : 'new connection per message', count, acceptRate: r });
    return r;
  } finally {
    await sink.stop();
  }
}

async function throughMailbag(name: string, reuse: boolean, greetingDelay: number, count: number, base: number, opts: { podPublisher?: boolean } = {}): Promise<void> {
  const dir = mkdtempSync(join(work, `${name}-`));
  const sink: Sink = await startSink(tools.sink);
  cleanups.push(() => sink.stop());
  const port = await freePort(); // fixed, so any log level works (readiness is a TCP connect)
  const adminPort = await freePort(); // /metrics: the SMTP thread's worst event-loop delay
  const extra = opts.podPublisher
    ? [`pod: { publisher: { enabled: true, listen: { host: 127.0.0.1, port: ${await freePort()} }, secretFile: ${JSON.stringify(join(dir, 'var', 'pod.secret'))}, cid: bench } }`]
    : [];
  const config = writeBenchGatewayConfig({ dir, smtpPort: port, greetingDelay, routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }], adminPort, logLevel, extra });
  // one directory per scenario: the queue thread writes a profile of its own next to the main thread's
  const nodeArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.BENCH_CPU_PROF, name)}`] : [];
  const gw: GatewayProcess = await spawnGateway(config, { nodeArgs, port, build: !fromSource });
  cleanups.push(async () => {
    await gw.stop(5000);
  });
  const mode = `${reuse ? 'reuse (-d)' : 'new connection per message'}, greetingDelay ${greetingDelay} ms${opts.podPublisher ? ', PoD publisher on' : ''}`;
  const warm = await warmUp(gw.smtpPort, sink, reuse, 'mailbag');
  await loopDelayMaxMs(adminPort); // starts the gauge's window at the start of the run
  const cpu0 = gw.cpuSeconds();
  const threads0 = threadCpuSeconds(gw.pid);
  const written0 = storageWriteBytes(gw.pid);
  const us0 = userSystemSeconds(gw.pid);
  try {
    const run = await sendThrough(gw.smtpPort, count, reuse);
    if (!run.ok) {
      rows.push({ path: 'smtp-source -> mailbag -> smtp-sink', mode, count, acceptRate: 0, note: `smtp-source failed: ${run.stderr.split('\n')[0]}` });
      // what the gateway said about it (its warnings and errors among the last log lines)
      const said = gw.recentLogs().filter((l) => /"level":(40|50|60)/.test(l));
      if (said.length) notes.push(`mailbag (${mode}) logged:\n${said.slice(-5).join('\n')}`);
      return;
    }
    let relayRate: number | undefined;
    let note: string | undefined;
    try {
      const done = await sink.waitFor(warm + count, 120_000);
      relayRate = rate(count, done - run.started);
    } catch (err) {
      note = (err as Error).message;
    }
    const cpu1 = gw.cpuSeconds();
    const cpuMsPerMessage = cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) * 1000) / count : undefined;
    const threads = threadCpuPerMessage(gw.pid, threads0, threadCpuSeconds(gw.pid), count);
    if (threads) notes.push(`mailbag (${mode}) CPU ms/msg by thread (tN: N-th thread after the main one; system part in brackets): ${threads}`);
    const written1 = storageWriteBytes(gw.pid);
    const us1 = userSystemSeconds(gw.pid);
    if (us0 && us1) notes.push(`mailbag (${mode}) CPU ms/msg user ${((us1.user - us0.user) * 1000 / count).toFixed(2)}, system ${((us1.system - us0.system) * 1000 / count).toFixed(2)}`);
    if (written0 !== undefined && written1 !== undefined) {
      notes.push(`mailbag (${mode}) storage writes: ${((written1 - written0) / 1024 / count).toFixed(1)} KiB/msg (spool files, WAL, checkpoints)`);
    }
    const loopDelay = await loopDelayMaxMs(adminPort);
    rows.push({ path: 'smtp-source -> mailbag -> smtp-sink', mode, count, acceptRate: rate(count, run.ms), relayRate, baseline: base, peakRss: gw.peakRssBytes(), cpuMsPerMessage, loopDelayMaxMs: loopDelay, note });
  } finally {
    const peak = gw.peakRssBytes();
    const last = rows[rows.length - 1];
    if (last && last.peakRss === undefined && peak !== undefined) last.peakRss = peak;
    await gw.stop(10_000);
    await sink.stop();
  }
}

/** Scrapes mailbag_event_loop_delay_max_seconds (the worst delay since the previous scrape), in ms. */
async function loopDelayMaxMs(adminPort: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('mailbag_event_loop_delay_max_seconds '));
    return line === undefined ? undefined : Number(line.split(' ')[1]) * 1000;
  } catch {
    return undefined;
  }
}

async function throughHaraka(reuse: boolean, count: number, base: number): Promise<void> {
  const install = ensureHaraka();
  if (typeof install === 'string') {
    notes.push(`Haraka skipped: ${install}`);
    return;
  }
  const sink = await startSink(tools.sink);
  cleanups.push(() => sink.stop());
  const haraka = await startHaraka(install, { port: await freePort(), sinkPort: sink.port, domain: 'example.test', workDir: work });
  cleanups.push(() => haraka.stop());
  const mode = reuse ? 'reuse (-d)' : 'new connection per message';
  const path = `smtp-source -> Haraka ${install.version} -> smtp-sink`;
  const warm = await warmUp(haraka.port, sink, reuse, 'Haraka');
  const cpu0 = haraka.cpuSeconds();
  try {
    const run = await sendThrough(haraka.port, count, reuse);
    if (!run.ok) {
      rows.push({ path, mode, count, acceptRate: 0, note: `smtp-source failed: ${run.stderr.split('\n')[0]}` });
      return;
    }
    const done = await sink.waitFor(warm + count, 60_000);
    const cpu1 = haraka.cpuSeconds();
    const cpuMsPerMessage = cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) * 1000) / count : undefined;
    rows.push({ path, mode, count, acceptRate: rate(count, run.ms), relayRate: rate(count, done - run.started), baseline: base, peakRss: haraka.peakRssBytes(), cpuMsPerMessage });
  } finally {
    await haraka.stop();
    await sink.stop();
  }
}

/** (c) the library floor: smtp-server -> pooled nodemailer from memory, no durability (bench/lib/floor-relay.ts). */
async function throughFloor(reuse: boolean, count: number, base: number): Promise<void> {
  const sink = await startSink(tools.sink);
  cleanups.push(() => sink.stop());
  const port = await freePort();
  const script = fileURLToPath(new URL('./lib/floor-relay.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import=tsx', script, String(port), String(sink.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  cleanups.push(stop);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('floor relay did not start')), 15_000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const pid = child.pid!;
  const mode = reuse ? 'reuse (-d)' : 'new connection per message';
  const path = 'smtp-source -> smtp-server + nodemailer, in memory, not durable -> smtp-sink';
  const warm = await warmUp(port, sink, reuse, 'the library floor');
  const cpu0 = processCpuSeconds(pid);
  try {
    const run = await sendThrough(port, count, reuse);
    if (!run.ok) {
      rows.push({ path, mode, count, acceptRate: 0, note: `smtp-source failed: ${run.stderr.split('\n')[0]}` });
      return;
    }
    const done = await sink.waitFor(warm + count, 60_000);
    const cpu1 = processCpuSeconds(pid);
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    rows.push({
      path,
      mode,
      count,
      acceptRate: rate(count, run.ms),
      relayRate: rate(count, done - run.started),
      baseline: base,
      peakRss: hwm ? Number(hwm[1]) * 1024 : undefined,
      cpuMsPerMessage: cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) * 1000) / count : undefined,
    });
  } finally {
    await stop();
    await sink.stop();
  }
}

const notes: string[] = [];

function print() {
  const mb = (b?: number) => (b === undefined ? '-' : `${(b / 1024 / 1024).toFixed(0)} MiB`);
  const f = (n?: number) => (n === undefined ? '-' : n.toFixed(0));
  const lines = [
    `10 KiB messages, ${SESSIONS} sessions, durability on (fsync + SQLite synchronous=FULL before 250), mailbag log level ${logLevel}`,
    '',
    '| path | mode | messages | accept msg/s | end-to-end msg/s | vs (a) same mode | relay peak RSS | relay CPU ms/msg | SMTP thread worst event-loop delay |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const ratio = r.baseline && r.relayRate ? `${((100 * r.relayRate) / r.baseline).toFixed(1)} %` : '-';
    lines.push(`| ${r.path} | ${r.mode} | ${r.count} | ${f(r.acceptRate)} | ${f(r.relayRate ?? (r.baseline ? undefined : r.acceptRate))} | ${ratio} | ${mb(r.peakRss)} | ${r.cpuMsPerMessage === undefined ? '-' : r.cpuMsPerMessage.toFixed(2)} | ${r.loopDelayMaxMs === undefined ? '-' : `${r.loopDelayMaxMs.toFixed(0)} ms`} |${r.note ? ` ${r.note}` : ''}`);
  }
  const reuse0 = rows.find((r) => r.mode.startsWith('reuse') && r.mode.includes('greetingDelay 0 '));
  if (reuse0?.relayRate !== undefined) {
    lines.push('', `target (issue #4): >= 1000 msg/s end to end with connection reuse -> ${reuse0.relayRate >= 1000 ? 'met' : 'NOT met'} (${f(reuse0.relayRate)} msg/s)`);
  }
  for (const reuse of [true, false]) {
    const m = rows.find((r) => r.path.includes('mailbag') && r.mode.startsWith(reuse ? 'reuse' : 'new') && r.mode.includes('greetingDelay 0 '));
    const h = rows.find((r) => r.path.includes('Haraka') && r.mode.startsWith(reuse ? 'reuse' : 'new'));
    if (m?.relayRate && h?.relayRate) {
      lines.push(`mailbag vs Haraka, ${reuse ? 'with' : 'without'} connection reuse: ${f(m.relayRate)} vs ${f(h.relayRate)} msg/s end to end (${(m.relayRate / h.relayRate).toFixed(2)}x)`);
    }
  }
  for (const r of rows.filter((x) => x.loopDelayMaxMs !== undefined)) {
    lines.push(`mailbag SMTP thread, worst event-loop delay under load (${r.mode}): ${r.loopDelayMaxMs!.toFixed(0)} ms`);
  }
  for (const n of notes) lines.push(n);
  lines.push(`machine: ${cpus().length} CPUs, load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}

try {
  const baseReuse = await baseline(true, counts.reuse);
  const baseNoReuse = await baseline(false, counts.noReuse);
  if (!quick) await throughFloor(true, counts.reuse, baseReuse);
  if (!quick) await throughFloor(false, counts.noReuse, baseNoReuse);
  await throughMailbag('reuse-delay0', true, 0, counts.reuse, baseReuse);
  await throughMailbag('noreuse-delay0', false, 0, counts.noReuse, baseNoReuse);
  if (process.env.BENCH_POD_PUBLISHER === '1') await throughMailbag('reuse-delay0-pod', true, 0, counts.reuse, baseReuse, { podPublisher: true });
  if (!quick) await throughMailbag('noreuse-delay100', false, 100, counts.noReuseDefaultDelay, baseNoReuse);
  if (!quick && process.env.BENCH_HARAKA !== '0') {
    await throughHaraka(true, counts.haraka, baseReuse);
    await throughHaraka(false, counts.haraka, baseNoReuse);
  }
  print();
} catch (err) {
  print();
  process.stderr.write(`smtp-relay: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
