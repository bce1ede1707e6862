// The gateway's metrics move with what really happens: a delivery, a relay attempt, an
// oversize message and a 5xx from the next hop (a bounce), seen through /metrics and
// /healthz on a running gateway.
import t from 'tap';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { configSchema } from '../src/config/schema.js';
import { startGateway } from '../src/gateway/gateway.js';
import { startMarkerSink } from './helpers/marker-sink.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('metrics count deliveries, rejections by code, bounces and the queue', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-metrics-'));
  // The next hop for reject.test answers every message with a permanent failure.
  const sink = await startMarkerSink({ reply: () => Object.assign(new Error('5.1.1 mailbox unknown'), { responseCode: 550 }) });
  const boxes = join(dir, 'mailboxes');
  const rejecting = `smtp://127.0.0.1:${sink.port}`;
  const maildir = `maildir:${boxes}`;
  const config = configSchema.parse({
    gateway: { hostname: 'metrics.mailbag.test' },
    smtp: { listen: { host: '127.0.0.1', port: 0 }, greetingDelay: 0, localDomains: ['example.test', 'reject.test'], maxMessageBytes: 4096 },
    spool: { dir: join(dir, 'spool') },
    store: { path: join(dir, 'mailbag.db') },
    queue: { retryInitial: '100ms', retryMax: '200ms' },
    routes: [
      { domain: 'example.test', nexthop: maildir },
      { domain: 'reject.test', nexthop: rejecting },
    ],
    admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
    log: { level: 'silent' },
  });
  const gw = await startGateway(config, { logger: pino({ level: 'silent' }), pollMs: 100 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = `http://127.0.0.1:${gw.adminAddress()!.port}`;
  const metrics = async () => (await fetch(`${admin}/metrics`)).text();
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  t.teardown(() => client.close());
  const raw = (to: string, body = 'hello\r\n') => `From: alice@example.test\r\nTo: ${to}\r\nSubject: metrics\r\n\r\n${body}`;

  const before = await metrics();
  t.equal(sample(before, 'mailbag_messages_received_total'), 0);
  t.equal(sample(before, 'mailbag_queue_depth'), 0);

  await client.sendMail({ envelope: { from: 'alice@example.test', to: ['bob@example.test'] }, raw: raw('bob@example.test') });
  const relay = await client.sendMail({ envelope: { from: 'alice@example.test', to: ['someone@elsewhere.example'] }, raw: raw('someone@elsewhere.example') }).catch((e: { responseCode?: number }) => e);
  t.equal((relay as { responseCode?: number }).responseCode, 550, 'relay attempt refused');
  const big = await client
    .sendMail({ envelope: { from: 'alice@example.test', to: ['bob@example.test'] }, raw: raw('bob@example.test', 'x'.repeat(76) + '\r\n'.repeat(1) + ('y'.repeat(76) + '\r\n').repeat(100)) })
    .catch((e: { responseCode?: number }) => e);
  t.equal((big as { responseCode?: number }).responseCode, 552, 'oversize refused');
  await client.sendMail({ envelope: { from: 'alice@example.test', to: ['nobody@reject.test'] }, raw: raw('nobody@reject.test') });

  // bob's message and the bounce to alice both land in the Maildir.
  const inbox = (local: string) => {
    try {
      return readdirSync(join(boxes, 'example.test', local, 'new')).length;
    } catch {
      return 0;
    }
  };
  for (let i = 0; i < 150 && !(inbox('bob') >= 1 && inbox('alice') >= 1 && gw.store.queue.depth() === 0); i++) await sleep(100);
  t.equal(inbox('bob'), 1, 'delivered');
  t.equal(inbox('alice'), 1, 'the bounce reached the sender');

  const after = await metrics();
  t.equal(sample(after, 'mailbag_messages_received_total'), 2, 'two messages accepted over SMTP');
  t.equal(sample(after, 'mailbag_smtp_rejections_total{code="550"}'), 1, 'the relay attempt');
  t.equal(sample(after, 'mailbag_smtp_rejections_total{code="552"}'), 1, 'the oversize message');
  t.equal(sample(after, 'mailbag_recipients_bounced_total'), 1);
  t.equal(sample(after, `mailbag_recipients_delivered_total{nexthop="${maildir}"}`), 2, "bob's message and the bounce");
  t.equal(sample(after, `mailbag_delivery_attempt_duration_seconds_count{nexthop="${rejecting}",outcome="failed"}`), 1);
  t.equal(sample(after, `mailbag_delivery_attempt_duration_seconds_count{nexthop="${maildir}",outcome="delivered"}`), 2);
  t.equal(sample(after, 'mailbag_queue_depth'), 0);
  t.equal(sample(after, `mailbag_recipients_deferred_total{nexthop="${rejecting}"}`), undefined, 'a 5xx is not a deferral');

  const health = await fetch(`${admin}/healthz`);
  t.equal(health.status, 200);
  t.match(await health.json(), { ok: true, queueDepth: 0 });
});
