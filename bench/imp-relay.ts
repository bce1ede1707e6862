// imp-relay: what an IMP hop between two gateways costs. In one run, 10 KB messages from
// nodemailer (20 pooled connections):
//   (a) SMTP -> mailbag B -> smtp-sink                          (the single hop)
//   (b) SMTP -> mailbag A -> IMP -> mailbag B -> smtp-sink       (A ships bags to B's acceptor)
// and prints the end-to-end rate of each (messages/s until the sink has every message)
// and their ratio. Target: (b) at least 0.5 of (a): the IMP hop costs no more than the
// SMTP hop it replaces.
//
//   npm run bench -- imp-relay
//   env: BENCH_SCALE=0.2 (fewer messages), BENCH_IMP_COMPRESS=1 (A compresses its bags)
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { spawnGateway, type GatewayProcess } from '../test/helpers/gateway-process.js';
import { writeBenchGatewayConfig } from './lib/gateway-config.js';
import { ensurePostfixTools, freePort, startSink } from './lib/postfix-tools.js';

const scale = Number(process.env.BENCH_SCALE ?? '1');
const compress = process.env.BENCH_IMP_COMPRESS === '1';
const COUNT = Math.max(50, Math.round(2000 * scale));
const CONNECTIONS = 20;

const found = ensurePostfixTools();
if (typeof found === 'string') {
  process.stdout.write(`skipped: ${found}\n`);
  process.exit(0);
}
const tools = found;

function message(i: number): Buffer {
  const line = `Line of message number ${i}, long enough to look like prose.`;
  const lines: string[] = [];
  for (let n = 0; n < 10_000; n += line.length + 2) lines.push(line);
  return Buffer.from([`From: sender@example.org`, `To: rcpt${i % 10}@example.test`, `Subject: imp relay ${i}`, `Message-ID: <imp-${i}@bench.test>`, '', ...lines, ''].join('\r\n'));
}

interface Gw {
  proc: GatewayProcess;
  smtpPort: number;
  impPort: number;
  dir: string;
}

async function gateway(name: string, ihn: number, route: string, listenImp: boolean): Promise<Gw> {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-bench-imp-${name}-`));
  const smtpPort = await freePort();
  const impPort = await freePort();
  const config = writeBenchGatewayConfig({
    dir,
    smtpPort,
    hostname: `${name}.bench.mailbag.test`,
    maxMessageBytes: '10MiB',
    routes: [{ domain: 'example.test', nexthop: route }],
    extra: ['imp:', `  ihn: ${ihn}`, `  compress: ${compress}`, ...(listenImp ? [`  listen: { host: 127.0.0.1, port: ${impPort} }`] : [])],
  });
  const proc = await spawnGateway(config, { port: smtpPort });
  return { proc, smtpPort, impPort, dir };
}

async function run(name: string, entryPort: number, sink: Awaited<ReturnType<typeof startSink>>, already: number): Promise<{ name: string; rate: number }> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: entryPort, pool: true, maxConnections: CONNECTIONS, maxMessages: Infinity, secure: false, ignoreTLS: true });
  try {
    const messages = Array.from({ length: COUNT }, (_, i) => message(i));
    const started = performance.now();
    await Promise.all(messages.map((raw, i) => client.sendMail({ envelope: { from: 'sender@example.org', to: [`rcpt${i % 10}@example.test`] }, raw })));
    const done = await sink.waitFor(already + COUNT, 300_000);
    return { name, rate: (COUNT * 1000) / (done - started) };
  } finally {
    client.close();
  }
}

const load0 = loadavg()[0]!;
const sink = await startSink(tools.sink);
const b = await gateway('b', 167772359, `smtp://127.0.0.1:${sink.port}`, true);
const a = await gateway('a', 167772404, `imp://127.0.0.1:${b.impPort}`, false);
let single;
let viaImp;
try {
  single = await run('SMTP -> B -> smtp-sink', b.smtpPort, sink, 0);
  viaImp = await run(`SMTP -> A -> IMP${compress ? ' (compressed)' : ''} -> B -> smtp-sink`, a.smtpPort, sink, COUNT);
} finally {
  await a.proc.stop(10_000);
  await b.proc.stop(10_000);
  await sink.stop();
  for (const g of [a, b]) rmSync(g.dir, { recursive: true, force: true });
}
const load1 = loadavg()[0]!;
process.stdout.write(`${COUNT} messages of ~10 KB, ${CONNECTIONS} pooled connections; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}\n`);
for (const r of [single, viaImp]) process.stdout.write(`${r.name.padEnd(48)} ${r.rate.toFixed(0).padStart(6)} msg/s\n`);
process.stdout.write(`ratio ${(viaImp.rate / single.rate).toFixed(2)} (target >= 0.50)\n`);
