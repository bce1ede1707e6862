import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user and system) of each thread of a Linux process, by thread id; empty elsewhere. */
export function threadCpuSeconds(pid: number): Map<number, { user: number; system: number }> {
  const out = new Map<number, { user: number; system: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * The threads' CPU between two snapshots, ms per message, busiest first, the main thread
 * (tid = pid: mailbag's SMTP listener) marked `main`, with the system (kernel) part of each
 * in brackets; threads under 0.02 ms/msg left out.
 */
export function threadCpuPerMessage(
  pid: number,
  before: Map<number, { user: number; system: number }>,
  after: Map<number, { user: number; system: number }>,
  count: number,
): string {
  const rows = [...after]
    .map(([tid, s]) => {
      const b = before.get(tid) ?? { user: 0, system: 0 };
      const system = ((s.system - b.system) * 1000) / count;
      return { tid, ms: ((s.user - b.user) * 1000) / count + system, system };
    })
    .filter((r) => r.ms >= 0.02);
  rows.sort((a, b) => b.ms - a.ms);
  return rows.map((r) => `${r.tid === pid ? 'main' : `t${r.tid - pid}`} ${r.ms.toFixed(2)} (${r.system.toFixed(2)})`).join(', ');
}

/**
 * The calling thread's own time on a CPU, ms (Linux: /proc/thread-self/schedstat, in ns; NaN
 * elsewhere). The kernel updates a running thread's figure at context switches and ticks, so
 * it times a run, not a single call.
 */
export function currentThreadCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}
