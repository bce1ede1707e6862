// multilingual-relay: what the multilingual split costs a relaying gateway. The same
// gateway process setup twice in one run, nodemailer (20 pooled connections) -> mailbag
// -> smtp-sink, 10 KB messages to three recipients who want three languages:
//   (a) plain traffic, multilingual.mode off                      (the baseline)
//   (b) 30% of the messages multipart/multilingual (5 languages), mode select: each of
//       those becomes three copies, one per recipient, spooled before delivery
// and prints the end-to-end relay rate (messages/s until the sink has every delivery) of
// both and their ratio. Target: (b) at least 0.8 of (a).
//
//   npm run bench -- multilingual-relay
//   env: BENCH_SCALE=0.2 (fewer messages), BENCH_ML_SHARE=0.3 (share of multilingual messages)
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { spawnGateway } from '../test/helpers/gateway-process.js';
import { writeBenchGatewayConfig } from './lib/gateway-config.js';
import { ensurePostfixTools, freePort, startSink } from './lib/postfix-tools.js';

const scale = Number(process.env.BENCH_SCALE ?? '1');
const share = Number(process.env.BENCH_ML_SHARE ?? '0.3');
const COUNT = Math.max(50, Math.round(3000 * scale));
const CONNECTIONS = 20;
const RCPTS = ['ana@es.example.test', 'ben@example.test', 'dirk@de.example.test'];
const LANGS = ['en', 'es', 'de', 'fr', 'it'];

const found = ensurePostfixTools();
if (typeof found === 'string') {
  process.stdout.write(`skipped: ${found}\n`);
  process.exit(0);
}
const tools = found;

function body(bytes: number, seed: number): string {
  const line = `Line of the message number ${seed}, long enough to look like prose in any language.`;
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    out.push(line);
    n += line.length + 2;
  }
  return out.join('\r\n');
}

function plain(i: number): Buffer {
  return Buffer.from(
    [`From: sender@example.org`, `To: ${RCPTS.join(', ')}`, `Subject: plain ${i}`, `Message-ID: <plain-${i}@bench.test>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body(10_000, i), ''].join('\r\n'),
  );
}

function multilingual(i: number): Buffer {
  const per = Math.floor(10_000 / (LANGS.length + 1));
  const out = [`From: sender@example.org`, `To: ${RCPTS.join(', ')}`, `Subject: multilingual ${i}`, `Message-ID: <ml-${i}@bench.test>`, 'MIME-Version: 1.0', 'Content-Type: multipart/multilingual; boundary="ml"', '', '--ml', 'Content-Type: text/plain; charset=utf-8', '', body(per, i)];
  for (const lang of LANGS) {
    out.push('--ml', 'Content-Type: message/rfc822', `Content-Language: ${lang}`, '', `Subject: ${lang} ${i}`, 'Content-Type: text/plain; charset=utf-8', '', body(per, i));
  }
  out.push('--ml--', '');
  return Buffer.from(out.join('\r\n'));
}

interface Result {
  name: string;
  messages: number;
  deliveries: number;
  relayRate: number;
}

async function scenario(name: string, mode: 'off' | 'select', mlShare: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-ml-'));
  const sink = await startSink(tools.sink);
  const port = await freePort();
  const config = writeBenchGatewayConfig({
    dir,
    smtpPort: port,
    localDomains: ['example.test', '*.example.test'],
    routes: [
      { domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` },
      { domain: '*.example.test', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
    extra: [
      'multilingual:',
      `  mode: ${mode}`,
      '  defaultLanguages: "en"',
      '  verifyDkim: false',
      '  domains: { es.example.test: { defaultLanguages: "es" }, de.example.test: { defaultLanguages: "de-CH, en;q=0.2" } }',
    ],
  });
  const gw = await spawnGateway(config, { port });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: CONNECTIONS, maxMessages: Infinity, secure: false, ignoreTLS: true });
  try {
    const messages: Buffer[] = [];
    let deliveries = 0;
    for (let i = 0; i < COUNT; i++) {
      const ml = i % Math.round(1 / Math.max(mlShare, 1e-9)) === 0 && mlShare > 0;
      messages.push(ml ? multilingual(i) : plain(i));
      // one transaction for plain mail (one next hop); one per language copy when split
      deliveries += ml && mode === 'select' ? RCPTS.length : 1;
    }
    const started = performance.now();
    await Promise.all(messages.map((raw) => client.sendMail({ envelope: { from: 'sender@example.org', to: RCPTS }, raw })));
    const done = await sink.waitFor(deliveries, 300_000);
    return { name, messages: COUNT, deliveries, relayRate: (COUNT * 1000) / (done - started) };
  } finally {
    client.close();
    await gw.stop(10_000);
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const load0 = loadavg()[0]!;
const base = await scenario('plain traffic, multilingual off', 'off', 0);
const split = await scenario(`${Math.round(share * 100)}% multilingual (5 languages, 3 recipients), mode select`, 'select', share);
const load1 = loadavg()[0]!;
process.stdout.write(`${COUNT} messages of ~10 KB to 3 recipients each, ${CONNECTIONS} pooled connections; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}\n`);
for (const r of [base, split]) {
  process.stdout.write(`${r.name.padEnd(62)} ${r.relayRate.toFixed(0).padStart(6)} msg/s relayed (${r.deliveries} deliveries)\n`);
}
process.stdout.write(`ratio ${(split.relayRate / base.relayRate).toFixed(2)} (target >= 0.80)\n`);
