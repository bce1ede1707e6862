// mailbag_event_loop_delay_max_seconds: the worst stall of the SMTP thread's event loop
// since the previous scrape (what a long SQLite lock wait or fsync would cause).
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGatewayMetrics } from '../src/gateway/metrics.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('a blocked event loop shows in the gauge', async (t) => {
  const metrics = createGatewayMetrics({ processMetrics: false });
  t.teardown(() => metrics.close());
  await sleep(50); // let the monitor sample an idle loop
  await metrics.registry.metrics(); // starts a fresh window
  const blockMs = 300;
  const end = performance.now() + blockMs;
  while (performance.now() < end) {
    // a synchronous stall, as a lock wait in better-sqlite3 would be
  }
  await sleep(50); // the monitor's timer fires late and records the stall
  const stalled = sample(await metrics.registry.metrics(), 'mailbag_event_loop_delay_max_seconds');
  t.ok(stalled !== undefined && stalled >= (blockMs - 20) / 1000, `the stall is seen (${stalled} s)`);
  const help = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith('# HELP mailbag_event_loop_delay_max_seconds'));
  t.match(help, /SMTP listener's thread since the previous scrape/);
});
