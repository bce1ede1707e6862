// Fixed costs of each attempt round on the queue thread, each against the way it was done
// before (the baseline, measured in the same run), in CPU µs per round on this thread:
//
// - the round's deadline with the two listeners a round adds and removes (`untilAborted` and
//   the SMTP transport): an AbortController and a timer (before) against a RoundDeadline;
// - the synchronous=FULL/NORMAL switch around a durable commit (with reuse, the queue's
//   recordings that carry accepted messages): db.pragma() (before) against db.exec(), as
//   `durably` and the no-wait BEGIN's busy_timeout switch now run.
//
//   npm run bench -- round-overheads      # BENCH_SCALE (1 = 200,000 rounds), BENCH_ROUNDS
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoundDeadline, type AttemptSignal } from '../src/delivery/deadline.js';
import { openDatabase } from '../src/store/db.js';
import { currentThreadCpuMs } from './lib/thread-cpu.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const count = Math.max(10_000, Math.round(200_000 * scale));

/** CPU µs per call of `fn` over `count` calls. */
function perCall(fn: () => void): number {
  const cpu0 = currentThreadCpuMs();
  for (let i = 0; i < count; i++) fn();
  return ((currentThreadCpuMs() - cpu0) * 1000) / count;
}

function twoListeners(signal: AttemptSignal): void {
  const first = () => undefined;
  const second = () => undefined;
  signal.addEventListener('abort', first, { once: true });
  signal.addEventListener('abort', second, { once: true });
  signal.removeEventListener('abort', second);
  signal.removeEventListener('abort', first);
}

const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-round-overheads-'));
const db = openDatabase(join(dir, 'store.db'), { role: 'queue' });
try {
  console.log(`round-overheads: ${count} rounds per figure (this thread's CPU)`);
  for (let r = 1; r <= rounds; r++) {
    const abortController = perCall(() => {
      const c = new AbortController();
      const timer = setTimeout(() => c.abort(), 60_000);
      twoListeners(c.signal);
      clearTimeout(timer);
    });
    const roundDeadline = perCall(() => {
      const d = new RoundDeadline(60_000);
      twoListeners(d);
      d.clear();
    });
    const pragmaCalls = perCall(() => {
      db.pragma('synchronous = FULL');
      db.pragma('synchronous = NORMAL');
    });
    const execCalls = perCall(() => {
      db.exec('PRAGMA synchronous = FULL');
      db.exec('PRAGMA synchronous = NORMAL');
    });
    console.log(
      `round ${r}: deadline with two listeners ${roundDeadline.toFixed(1)} µs; baseline (AbortController) ${abortController.toFixed(1)} µs; ratio ${(roundDeadline / abortController).toFixed(2)}x` +
        ` | synchronous switch pair ${execCalls.toFixed(1)} µs; baseline (db.pragma) ${pragmaCalls.toFixed(1)} µs; ratio ${(execCalls / pragmaCalls).toFixed(2)}x; load average ${loadavg()[0]!.toFixed(1)}`,
    );
  }
} finally {
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
