// Downstream outage: the SMTP next hop is down, accepted messages queue with deferred
// attempts on record; the next hop comes back on the same port and everything delivers.
// Also checks what an operator watches during an outage: /metrics and /healthz.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { configSchema } from '../src/config/schema.js';
import { startGateway } from '../src/gateway/gateway.js';
import { startMarkerSink, type MarkerSink } from './helpers/marker-sink.js';
import { freePort } from './helpers/free-port.js';
import { waitFor } from './helpers/gateway.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('next hop down: messages queue with deferred attempts, then all deliver when it returns', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-outage-'));
  const hopPort = await freePort(); // nothing listens here yet: the next hop is down
  const nexthop = `smtp://127.0.0.1:${hopPort}`;
  const config = configSchema.parse({
    gateway: { hostname: 'outage.mailbag.test' },
    smtp: { listen: { host: '127.0.0.1', port: 0 }, greetingDelay: 0, localDomains: ['example.test'] },
    spool: { dir: join(dir, 'spool') },
    store: { path: join(dir, 'mailbag.db') },
    queue: { retryInitial: '150ms', retryMax: '400ms' },
    routes: [{ domain: 'example.test', nexthop }],
    admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
    log: { level: 'silent' },
  });
  const gw = await startGateway(config, { logger: pino({ level: 'silent' }), pollMs: 100 });
  let sink: MarkerSink | undefined;
  t.teardown(async () => {
    await gw.stop();
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = `http://127.0.0.1:${gw.adminAddress()!.port}`;

  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const qids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const info = await client.sendMail({
      envelope: { from: 'sender@example.org', to: [`user${i}@example.test`] },
      raw: `From: sender@example.org\r\nTo: user${i}@example.test\r\nSubject: outage ${i}\r\nX-Test-Marker: outage-${i}\r\n\r\nbody ${i}\r\n`,
    });
    const m = /^250 .*queued as ([0-9A-Za-z]+)/.exec(info.response);
    t.ok(m, `message ${i} accepted: ${info.response}`);
    qids.push(m![1]!);
  }
  client.close();

  // While the hop is down: every message collects deferred attempts; nothing is lost.
  await waitFor(() => qids.every((q) => gw.store.queue.attempts(q).filter((a) => a.outcome === 'deferred').length >= 2), 60_000, 'two deferred attempts per message');
  for (const q of qids) {
    const [r] = gw.store.queue.recipients(q);
    t.equal(r?.state, 'deferred', `${q} is deferred`);
    t.ok((r?.next_attempt_at ?? 0) > 0, 'with a next attempt time');
  }
  const during = await (await fetch(`${admin}/metrics`)).text();
  t.equal(sample(during, 'mailbag_queue_depth'), 5, 'queue depth shows the backlog');
  t.ok((sample(during, `mailbag_recipients_deferred_total{nexthop="${nexthop}"}`) ?? 0) >= 10, 'deferrals counted by next hop');
  t.equal(sample(during, 'mailbag_messages_received_total'), 5);
  t.equal((await fetch(`${admin}/healthz`)).status, 200, 'a down next hop does not make the gateway unhealthy');

  // The next hop returns on the same port.
  sink = await startMarkerSink({ port: hopPort });
  // Taken once the hop listens again: a refused connection can only have been attempted
  // before this instant (an attempt records its start before it connects).
  const listeningAt = Date.now();
  const s = sink;
  await waitFor(() => s.messages.length >= 5, 60_000, 'all five at the next hop');
  await waitFor(() => gw.store.queue.depth() === 0, 60_000, 'queue drained');

  for (const q of qids) {
    const attempts = gw.store.queue.attempts(q);
    const last = attempts[attempts.length - 1]!;
    const failures = attempts.slice(0, -1);
    t.ok(failures.length >= 2, `${q}: ${failures.length} failed attempts before the success`);
    for (const a of failures) {
      t.equal(a.outcome, 'deferred');
      t.equal(a.nexthop, nexthop);
      t.match(a.reply, /ECONNREFUSED|connect|refused/i, 'the failure says why');
      t.ok(a.started_at <= listeningAt, 'failures happened before the hop listened again');
      t.ok(a.duration_ms >= 0);
    }
    t.equal(last.outcome, 'delivered');
    t.equal(last.nexthop, nexthop);
    t.match(last.reply, /^250/, 'the success records the next hop reply');
    t.ok(failures.every((a) => a.started_at <= last.started_at), 'the success came after every failure');
    const started = attempts.map((a) => a.started_at);
    t.same(started, [...started].sort((a, b) => a - b), 'attempts in time order');
    const [r] = gw.store.queue.recipients(q);
    t.equal(r?.state, 'delivered');
    t.equal(r?.attempts, attempts.length, 'recipient attempt count matches the attempt records');
  }

  const after = await (await fetch(`${admin}/metrics`)).text();
  t.equal(sample(after, 'mailbag_queue_depth'), 0);
  t.equal(sample(after, `mailbag_recipients_delivered_total{nexthop="${nexthop}"}`), 5);
  t.equal(sample(after, `mailbag_delivery_attempt_duration_seconds_count{nexthop="${nexthop}",outcome="delivered"}`), 5);
  // stop() waits for every attempt in flight: after it, no second copy can still arrive.
  await gw.stop();
  t.same([...s.counts().entries()].sort(), [0, 1, 2, 3, 4].map((i) => [`outage-${i}`, 1]), 'each message delivered exactly once');
});
