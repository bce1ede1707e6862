import t from 'tap';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { createGatewayMetrics } from '../src/gateway/metrics.js';
import { AdminServerError, startAdminServer, type HealthReport } from '../src/gateway/admin-server.js';

async function startWith(health: () => HealthReport, metrics = createGatewayMetrics()) {
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, metrics, health });
  const base = `http://127.0.0.1:${admin.address().port}`;
  return { admin, base, metrics };
}

/** Raw node:http request so any method can be sent. */
function send(base: string, method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Value of one sample line `name{labels} value` in Prometheus text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('/metrics exposes every gateway series with labels, plus process metrics', async (t) => {
  let depth = 7;
  const { admin, base, metrics } = await startWith(() => ({ ok: true }));
  t.teardown(() => admin.close());
  metrics.setQueueDepthSource(() => depth);
  metrics.messagesReceived.inc(3);
  metrics.recipientsDelivered.inc({ nexthop: 'smtp://127.0.0.1:2626' }, 2);
  metrics.recipientsDeferred.inc({ nexthop: 'maildir:./var/mailboxes' });
  metrics.recipientsBounced.inc();
  metrics.smtpRejections.inc({ code: '550' });
  metrics.smtpRejections.inc({ code: '550' });
  metrics.attemptDuration.observe({ nexthop: 'smtp://127.0.0.1:2626', outcome: 'delivered' }, 0.02);

  const res = await fetch(`${base}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  t.equal(sample(text, 'mailbag_messages_received_total'), 3);
  t.equal(sample(text, 'mailbag_recipients_delivered_total{nexthop="smtp://127.0.0.1:2626"}'), 2);
  t.equal(sample(text, 'mailbag_recipients_deferred_total{nexthop="maildir:./var/mailboxes"}'), 1);
  t.equal(sample(text, 'mailbag_recipients_bounced_total'), 1);
  t.equal(sample(text, 'mailbag_smtp_rejections_total{code="550"}'), 2);
  t.equal(sample(text, 'mailbag_queue_depth'), 7);
  t.equal(sample(text, 'mailbag_delivery_attempt_duration_seconds_count{nexthop="smtp://127.0.0.1:2626",outcome="delivered"}'), 1);
  t.equal(sample(text, 'mailbag_delivery_attempt_duration_seconds_bucket{le="0.025",nexthop="smtp://127.0.0.1:2626",outcome="delivered"}'), 1);
  t.equal(sample(text, 'mailbag_delivery_attempt_duration_seconds_bucket{le="0.01",nexthop="smtp://127.0.0.1:2626",outcome="delivered"}'), 0);
  t.match(text, /^# TYPE mailbag_delivery_attempt_duration_seconds histogram$/m);
  t.match(text, /^# TYPE mailbag_queue_depth gauge$/m);
  t.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'default process metrics');

  depth = 0;
  t.equal(sample(await (await fetch(`${base}/metrics?x=1`)).text(), 'mailbag_queue_depth'), 0, 'depth read at every scrape');
});

t.test('a failing queue-depth source does not break the scrape', async (t) => {
  const { admin, base, metrics } = await startWith(() => ({ ok: true }));
  t.teardown(() => admin.close());
  metrics.setQueueDepthSource(() => {
    throw new Error('The database connection is not open');
  });
  const res = await fetch(`${base}/metrics`);
  t.equal(res.status, 200);
  t.ok(Number.isNaN(sample(await res.text(), 'mailbag_queue_depth')), 'NaN marks the unknown depth');
});

t.test('each createGatewayMetrics() has its own registry', async (t) => {
  const a = createGatewayMetrics({ processMetrics: false });
  const b = createGatewayMetrics({ processMetrics: false });
  a.messagesReceived.inc(5);
  t.equal(sample(await b.registry.metrics(), 'mailbag_messages_received_total'), 0);
  t.equal(sample(await a.registry.metrics(), 'mailbag_messages_received_total'), 5);
  t.notOk((await a.registry.metrics()).includes('process_cpu'), 'process metrics can be left out');
});

t.test('/healthz: 200 with the report when ok, 503 when not or when the check throws', async (t) => {
  let state: HealthReport | Error = { ok: true, queueDepth: 0, store: 'open' };
  const { admin, base } = await startWith(() => {
    if (state instanceof Error) throw state;
    return state;
  });
  t.teardown(() => admin.close());
  let res = await fetch(`${base}/healthz`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /application\/json/);
  t.same(await res.json(), { ok: true, queueDepth: 0, store: 'open' });

  state = { ok: false, store: 'closed' };
  res = await fetch(`${base}/healthz`);
  t.equal(res.status, 503);
  t.same(await res.json(), { ok: false, store: 'closed' });

  state = new Error('store gone');
  res = await fetch(`${base}/healthz`);
  t.equal(res.status, 503);
  t.same(await res.json(), { ok: false, error: 'store gone' });
});

t.test('404 for other paths, 405 for other methods', async (t) => {
  const { admin, base } = await startWith(() => ({ ok: true }));
  t.teardown(() => admin.close());
  t.equal((await send(base, 'GET', '/')).status, 404);
  t.equal((await send(base, 'GET', '/metrics/extra')).status, 404);
  t.equal((await send(base, 'GET', '/healthzz')).status, 404);
  for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
    const r = await send(base, method, '/metrics');
    t.equal(r.status, 405, method);
    t.equal(r.headers['allow'], 'GET');
  }
  const r = await send(base, 'POST', '/healthz');
  t.equal(r.status, 405);
  t.same(JSON.parse(r.body), { ok: false, error: 'method POST not allowed' });
});

t.test('a port in use is a typed error, and close() frees the port', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  const err = await startAdminServer({ host: '127.0.0.1', port, metrics: createGatewayMetrics(), health: () => ({ ok: true }) }).catch((e: unknown) => e);
  t.ok(err instanceof AdminServerError);
  t.equal((err as AdminServerError).code, 'EADDRINUSE');
  await new Promise<void>((r) => blocker.close(() => r()));

  const admin = await startAdminServer({ host: '127.0.0.1', port, metrics: createGatewayMetrics(), health: () => ({ ok: true }) });
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  await admin.close();
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'closed: nothing listens');
});
