// The delivery queue's own work per message, alone: N 10 KiB messages already queued (as the
// SMTP thread leaves them), then relayed by the gateway's DeliveryQueue (real SMTP transport,
// connection pool) to Postfix's smtp-sink, on this thread with no SMTP listener, so the
// queue's store transactions never wait for another writer's lock. The thread's own CPU
// (/proc/thread-self/schedstat: nanoseconds on a CPU, this thread only) per message is the
// figure, over the whole run (the kernel updates a running thread's figure at context switches
// and ticks, so it cannot time single calls). `node --cpu-prof` of this process shows where the
// time goes, with no lock waits among the samples.
//
//   node --import=tsx bench/smtp-relay-queue.ts      # BENCH_SCALE (1 = 5,000 messages), BENCH_ROUNDS
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.js';
import { enqueueGenerated } from '../src/delivery/enqueue.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { Spool } from '../src/delivery/spool.js';
import { createDeliveryQueue } from '../src/gateway/delivery.js';
import { Store } from '../src/store/store.js';
import { writeBenchGatewayConfig } from './lib/gateway-config.js';
import { ensurePostfixTools, startSink } from './lib/postfix-tools.js';
import { currentThreadCpuMs } from './lib/thread-cpu.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const count = Math.max(100, Math.round(5000 * scale));

function message(i: number): Buffer {
  const header =
    `Received: from client.test (client.test [127.0.0.1])\r\n\tby mx.test (Postfix) with ESMTP id 4AB${i}\r\n\tfor <b@example.test>; Mon, 30 Nov 2026 10:00:00 +0000\r\n` +
    `From: <a@sender.test>\r\nTo: <b@example.test>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-Id: <${i}.bench@sender.test>\r\nSubject: test ${i}\r\n\r\n`;
  const line = 'La de da de da 1 La de da de da 2 La de da de da 3 La de da de da 4\r\n';
  return Buffer.from(header + line.repeat(Math.ceil((10240 - header.length) / line.length)));
}

async function round(sinkTool: string): Promise<{ cpuMsPerMsg: number; msgPerS: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-queue-'));
  const sink = await startSink(sinkTool);
  try {
    const configFile = writeBenchGatewayConfig({ dir, smtpPort: 1, routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }], logLevel: 'info' });
    const config = loadConfig(configFile);
    const store = Store.open(config.store.path, { role: 'queue' });
    const spool = new Spool(config.spool.dir);
    const qids = new QidGenerator(undefined);
    const queued: string[] = [];
    for (let i = 0; i < count; i++) queued.push(await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'a@sender.test', recipients: ['b@example.test'], bytes: message(i) }));
    // the gateway's log lines, written and discarded (the real destination is a pipe)
    const logger = pino({ level: 'info', base: { name: 'mailbag' } }, new Writable({ write: (_c, _e, done) => done() }));
    const queue = createDeliveryQueue(config, { store, spool, qids, logger, events: { attempt: () => undefined, inFlight: () => undefined } });
    const cpu0 = currentThreadCpuMs();
    const t0 = performance.now();
    queue.start();
    // handed over in batches as the SMTP thread's group commits do
    for (let i = 0; i < queued.length; i += 10) queue.kick(queued.slice(i, i + 10));
    const t1 = await sink.waitFor(count, 300_000);
    const cpu = currentThreadCpuMs() - cpu0;
    await queue.stop(5000);
    store.close();
    return { cpuMsPerMsg: cpu / count, msgPerS: count / ((t1 - t0) / 1000) };
  } finally {
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const tools = ensurePostfixTools();
if (typeof tools === 'string') {
  console.log(`smtp-relay-queue: skipped (${tools})`);
  process.exit(0);
}
console.log(`smtp-relay-queue: ${count} messages of 10 KiB queued, then relayed by the delivery queue alone (this thread's CPU)`);
for (let r = 1; r <= rounds; r++) {
  const { cpuMsPerMsg, msgPerS } = await round(tools.sink);
  console.log(`round ${r}: queue thread CPU ${cpuMsPerMsg.toFixed(3)} ms/msg, ${msgPerS.toFixed(0)} msg/s, load average ${loadavg()[0]!.toFixed(1)}`);
}
