// What one `trace` lookup cost, beside its wall-clock time, so that bench/lookup can tell
// work from waiting: the CPU time it used, the time its thread waited for a core (the
// kernel's run-queue delay, /proc/<pid>/task/<tid>/schedstat), the SQLite statements it
// ran and prepared, what it read from the disk, involuntary context switches, and the garbage-collection pauses that fell inside it.
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

export interface LookupCost {
  wallMs: number;
  /** Process CPU (user + system): the main thread's, plus any V8 helper thread busy at the time. */
  cpuMs: number;
  /** Time the thread was runnable but not running (another process had the core); NaN where unknown. */
  runQueueMs: number;
  statements: number;
  prepared: number;
  /** KiB the process read from the disk (getrusage ru_inblock, 512-byte blocks): cold pages. */
  diskKiB: number;
  involuntarySwitches: number;
  gcMs: number;
}

let statements = 0;
let prepared = 0;
let installed = false;

/** Counts every statement run and every statement prepared, on every connection of this thread. */
export function installStatementCounters(): void {
  if (installed) return;
  installed = true;
  const probe = new Database(':memory:');
  const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
  probe.close();
  for (const method of ['get', 'all', 'iterate', 'run']) {
    const original = statementProto[method]!;
    statementProto[method] = function (this: unknown, ...args: unknown[]) {
      statements++;
      return original.apply(this, args);
    };
  }
  const dbProto = Database.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const prepare = dbProto.prepare!;
  dbProto.prepare = function (this: unknown, ...args: unknown[]) {
    prepared++;
    return prepare.apply(this, args);
  };
}

/** Statements prepared so far (once the counters are installed). */
export function preparedCount(): number {
  return prepared;
}

/** The main thread's run-queue delay so far, in ns (NaN where the kernel does not say). */
function runQueueReader(): () => number {
  let fd: number;
  try {
    fd = openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
  } catch {
    return () => NaN;
  }
  const buf = Buffer.alloc(128);
  process.once('exit', () => closeSync(fd));
  return () => Number(buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0)).split(' ')[1]);
}
const runQueueNs = runQueueReader();

/**
 * Runs `lookup` once per key and measures each call. GC pauses are matched to calls by time
 * once the loop is over (V8 reports them after the fact).
 */
export async function measureLookups<K>(keys: readonly K[], lookup: (key: K) => boolean): Promise<{ costs: LookupCost[]; found: number }> {
  installStatementCounters();
  const gcs: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const spans: { start: number; end: number }[] = [];
  const costs: LookupCost[] = [];
  let found = 0;
  for (const key of keys) {
    const st0 = statements;
    const pr0 = prepared;
    const ru0 = process.resourceUsage();
    const rq0 = runQueueNs();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    if (lookup(key)) found++;
    const t1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const rq1 = runQueueNs();
    const ru1 = process.resourceUsage();
    spans.push({ start: t0, end: t1 });
    costs.push({
      wallMs: t1 - t0,
      cpuMs: (cpu.user + cpu.system) / 1000,
      runQueueMs: (rq1 - rq0) / 1e6,
      statements: statements - st0,
      prepared: prepared - pr0,
      diskKiB: (ru1.fsRead - ru0.fsRead) / 2,
      involuntarySwitches: ru1.involuntaryContextSwitches - ru0.involuntaryContextSwitches,
      gcMs: 0,
    });
  }
  // let V8 deliver the GC entries of the loop
  await new Promise((resolve) => setTimeout(resolve, 100));
  observer.disconnect();
  spans.forEach((s, i) => {
    for (const g of gcs) costs[i]!.gcMs += Math.max(0, Math.min(s.end, g.end) - Math.max(s.start, g.start));
  });
  return { costs, found };
}

export const percentile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))]!;
const sortedOf = (costs: readonly LookupCost[], f: (c: LookupCost) => number): number[] => costs.map(f).sort((a, b) => a - b);
const mean = (list: readonly number[]): number => list.reduce((a, b) => a + b, 0) / (list.length || 1);
const ms = (v: number): string => (Number.isNaN(v) ? '   ?' : v.toFixed(2)).padStart(6);

/**
 * Two lines for one kind of key: wall and CPU p50/p99, and wall less the wait for a core (what
 * the lookup took while it had one), statements per lookup; then the slowest 1% of lookups
 * taken apart (their mean CPU, run-queue wait, GC pauses, disk reads, preemptions).
 */
export function describeCosts(label: string, costs: readonly LookupCost[], found: number): string {
  const wall = sortedOf(costs, (c) => c.wallMs);
  const cpu = sortedOf(costs, (c) => c.cpuMs);
  const running = sortedOf(costs, (c) => c.wallMs - (Number.isNaN(c.runQueueMs) ? 0 : c.runQueueMs));
  const stmts = sortedOf(costs, (c) => c.statements);
  const slowest = [...costs].sort((a, b) => b.wallMs - a.wallMs).slice(0, Math.max(1, Math.ceil(costs.length / 100)));
  const avg = (f: (c: LookupCost) => number) => mean(slowest.map(f));
  return (
    `${label.padEnd(24)} wall p50 ${ms(percentile(wall, 50))} p99 ${ms(percentile(wall, 99))}   cpu p50 ${ms(percentile(cpu, 50))} p99 ${ms(percentile(cpu, 99))}   ` +
    `wall less run-queue wait p99 ${ms(percentile(running, 99))} ms   ` +
    `${percentile(stmts, 50)} statements (max ${stmts[stmts.length - 1]}), ${costs.reduce((n, c) => n + c.prepared, 0)} prepared, ${found}/${costs.length} found\n` +
    `${''.padEnd(24)} slowest ${slowest.length}: wall ${ms(avg((c) => c.wallMs))}, cpu ${ms(avg((c) => c.cpuMs))}, run-queue wait ${ms(avg((c) => c.runQueueMs))}, ` +
    `GC ${ms(avg((c) => c.gcMs))} ms; ${avg((c) => c.diskKiB).toFixed(0)} KiB read from disk, ${avg((c) => c.involuntarySwitches).toFixed(1)} preemptions\n`
  );
}

/** Drops a file's pages from the OS page cache (written out first), so its next reads go to the disk. */
export function evictFromPageCache(path: string): boolean {
  try {
    execFileSync('sync', [path]);
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
    return true;
  } catch {
    return false;
  }
}

/** Share of a file's pages in the OS page cache (fincore), or undefined. */
export function residentShare(path: string): number | undefined {
  try {
    const [res, size] = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE', path], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    return size ? res! / size : undefined;
  } catch {
    return undefined;
  }
}

/** Where machineTail's units leave their results. */
export let tailSink = 0;

/**
 * The machine's own tail: one fixed unit of JavaScript work (no I/O, no allocation), timed
 * `units` times in a row. On a virtual machine whose cores are shared with other guests the
 * same unit runs several times slower for tens of milliseconds at a time; a lookup that
 * falls in such a burst is slow for the machine's reason, not the code's, and neither the
 * run-queue wait nor the CPU time tells it apart (the guest is charged for the stolen time).
 */
export function machineTail(units = 4000): { p50Ms: number; p99Ms: number; maxMs: number } {
  const unit = (): number => {
    let x = 0;
    for (let i = 0; i < 250_000; i++) x = (x * 31 + i) | 0;
    return x;
  };
  let sink = 0;
  for (let i = 0; i < 200; i++) sink ^= unit();
  const times: number[] = [];
  for (let i = 0; i < units; i++) {
    const t0 = performance.now();
    sink ^= unit();
    times.push(performance.now() - t0);
  }
  tailSink = sink; // the units' results are used, so the compiler cannot drop their loops
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: times[times.length - 1]! };
}
