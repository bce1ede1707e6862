// The gateway runs the PoD consumer as a component: events reach the store, /healthz and
// /metrics report each stream, and a stream stopped by a refusal makes /healthz unhealthy.
import t from 'tap';
import { startGateway } from '../src/gateway/gateway.js';
import { tempDir, testConfig } from './helpers/gateway.js';
import { messageEvent, storedGuids, until } from './helpers/pod-consumer.js';
import { startPublisherDouble } from './helpers/pod-publisher-double.js';

t.test('the gateway consumes a stream; /healthz and /metrics report it', async (t) => {
  const { dir, cleanup } = tempDir('gw-pod');
  const double = await startPublisherDouble(Date.now, { cid: 'c1' });
  const gw = await startGateway(
    testConfig(dir, {
      admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
      pod: {
        streams: [
          { name: 'msgs', url: double.url, cid: 'c1', type: 'message', tokenEnv: 'POD_TOKEN' },
          { name: 'bad', url: double.url, cid: 'c1', type: 'maillog', token: 'wrong' },
        ],
      },
    }),
    { queueThread: false, env: { POD_TOKEN: double.token() } },
  );
  t.teardown(async () => {
    await gw.stop();
    await double.close();
    cleanup();
  });
  await until(() => double.open('live').length === 1, 'live');
  const now = Date.now();
  double.publish('message', now, messageEvent('g1', now));
  await until(() => storedGuids(gw.store).length === 1, 'stored');
  const health = async () => (await (await fetch(`http://127.0.0.1:${gw.adminAddress()!.port}/healthz`)).json()) as { ok: boolean; components: Record<string, Record<string, unknown>> };
  await until(() => gw.store.podStreams.statuses().find((s) => s.stream === 'bad')?.state === 'stopped', 'bad stopped');
  const h = await health();
  t.equal(h.ok, false, 'a stopped stream needs the operator');
  t.match(h.components['pod-consumer'], { ok: false, reason: /bad: HTTP 401/, streams: { msgs: 'live', bad: 'stopped' } });
  const metrics = await (await fetch(`http://127.0.0.1:${gw.adminAddress()!.port}/metrics`)).text();
  t.match(metrics, /mailbag_pod_events_stored_total\{stream="msgs"\} 1/);
  t.match(metrics, /mailbag_pod_stream_state\{stream="bad",state="stopped"\} 1/);
  t.match(metrics, /mailbag_pod_last_event_age_seconds\{stream="msgs"\} \d/);
});
