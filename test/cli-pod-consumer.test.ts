// `mailbag pod status`, `mailbag pod backfill` and the pod.streams config as the CLI sees it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { preflight } from '../src/cli/preflight.js';
import { validateConfig } from '../src/config/load.js';
import { formatStreamStatus, type StreamStatusView } from '../src/cli/pod/status.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { messageEvent, startConsumer, storedGuids, TestClock, until } from './helpers/pod-consumer.js';
import { tempDir } from './helpers/gateway.js';
import { modeOf, startPublisherDouble } from './helpers/pod-publisher-double.js';

const HOUR = 3_600_000;
const tmp = tempDir('cli-pod-consumer');
t.teardown(tmp.cleanup);
let n = 0;

function config(streams: unknown[]): { cfg: string; db: string } {
  const i = n++;
  const db = join(tmp.dir, `s${i}.db`);
  const cfg = join(tmp.dir, `c${i}.yaml`);
  writeFileSync(cfg, stringify({ store: { path: db }, spool: { dir: join(tmp.dir, `spool${i}`) }, pod: { streams } }));
  return { cfg, db };
}

t.test('config show redacts stream tokens and keeps the names of token variables', async (t) => {
  const { cfg } = config([
    { name: 'a', url: 'wss://pod.test/', cid: 'c', type: 'message', token: 'very-secret-token', backfillTokenEnv: 'POD_BACKFILL' },
    { name: 'b', url: 'wss://pod.test/', cid: 'c', type: 'maillog', tokenEnv: 'POD_TOKEN_B' },
  ]);
  const r = await cli(['config', 'show', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  t.notMatch(out, /very-secret-token/);
  t.match(out, /token: <redacted>/);
  t.match(out, /tokenEnv: POD_TOKEN_B/);
  t.match(out, /backfillTokenEnv: POD_BACKFILL/);
});

t.test('config check: a stream needs exactly one of token and tokenEnv, and a unique name', async (t) => {
  const both = config([{ name: 'a', url: 'wss://pod.test/', cid: 'c', type: 'message', token: 'x', tokenEnv: 'Y' }]);
  const r1 = await cli(['config', 'check', '--config', both.cfg]);
  t.equal(r1.code, 1);
  t.match(r1.stderr, /exactly one of token and tokenEnv/);
  const twice = config([
    { name: 'a', url: 'wss://pod.test/', cid: 'c', type: 'message', token: 'x' },
    { name: 'a', url: 'wss://pod.test/', cid: 'c', type: 'maillog', token: 'y' },
  ]);
  const r2 = await cli(['config', 'check', '--config', twice.cfg]);
  t.equal(r2.code, 1);
  t.match(r2.stderr, /used twice/);
  const http = config([{ name: 'a', url: 'https://pod.test/', cid: 'c', type: 'message', token: 'x' }]);
  t.match((await cli(['config', 'check', '--config', http.cfg])).stderr, /ws:\/\/ or wss:\/\//);
});

t.test('config check: two streams on one token (the API allows one session per token) are refused, naming both', async (t) => {
  const stream = (name: string, type: 'message' | 'maillog', token: Record<string, string>) => ({ name, url: 'wss://pod.test/', cid: 'c', type, ...token });
  const literal = config([stream('msgs', 'message', { token: 'same-secret' }), stream('logs', 'maillog', { token: 'same-secret' })]);
  const r1 = await cli(['config', 'check', '--config', literal.cfg]);
  t.equal(r1.code, 1);
  t.equal(r1.stderr.trim().split('\n').length, 1, 'one line');
  t.match(r1.stderr, /streams 'msgs' and 'logs' use the same token/);
  t.notMatch(r1.stderr, /same-secret/, 'the token is not printed');
  const named = config([stream('msgs', 'message', { tokenEnv: 'POD_TOKEN' }), stream('logs', 'maillog', { tokenEnv: 'POD_TOKEN' })]);
  const r2 = await cli(['config', 'check', '--config', named.cfg]);
  t.equal(r2.code, 1);
  t.match(r2.stderr, /streams 'msgs' and 'logs' use the same token \(tokenEnv POD_TOKEN\)/);
  // A backfill token that is another stream's live token would wait for that session for good.
  const backfill = config([stream('msgs', 'message', { token: 'a' }), stream('logs', 'maillog', { token: 'b', backfillToken: 'a' })]);
  const r3 = await cli(['config', 'check', '--config', backfill.cfg]);
  t.equal(r3.code, 1);
  t.match(r3.stderr, /streams 'msgs' and 'logs' use the same token/);
  // Distinct tokens, and one archive token two streams share (their backfills take turns), pass.
  const ok = config([stream('msgs', 'message', { token: 'a', backfillTokenEnv: 'POD_ARCHIVE' }), stream('logs', 'maillog', { tokenEnv: 'POD_B', backfillTokenEnv: 'POD_ARCHIVE' })]);
  const r4 = await cli(['config', 'check', '--config', ok.cfg]);
  t.equal(r4.code, 0, r4.stderr);
});

t.test('start: two token variables holding the same token are refused before anything starts, naming both streams', async (t) => {
  const config = validateConfig({
    store: { path: join(tmp.dir, 'same-token.db') },
    spool: { dir: join(tmp.dir, 'same-token-spool') },
    smtp: { listen: { host: '127.0.0.1', port: 0 } },
    admin: { enabled: false },
    pod: { streams: [
      { name: 'msgs', url: 'wss://pod.test/', cid: 'c', type: 'message', tokenEnv: 'POD_MSGS' },
      { name: 'logs', url: 'wss://pod.test/', cid: 'c', type: 'maillog', tokenEnv: 'POD_LOGS' },
    ] },
  });
  const err = await preflight(config, 'f.yaml', { create: false, env: { POD_MSGS: 'one-token', POD_LOGS: 'one-token' } }).then(() => undefined, (e: Error) => e);
  t.ok(err, 'refused');
  t.match(err?.message, /streams 'msgs' and 'logs' use the same token \(tokenEnv POD_MSGS and tokenEnv POD_LOGS hold the same value\)/);
  t.notMatch(err?.message, /one-token/, 'the token is not printed');
  await t.resolves(preflight(config, 'f.yaml', { create: false, env: { POD_MSGS: 'one-token', POD_LOGS: 'another-token' } }), 'distinct tokens start');
});

t.test('pod status: state, newest event and its age, counters, last error; --json', async (t) => {
  const clock = new TestClock(Date.now());
  const double = await startPublisherDouble(clock.now, { cid: 'c1' });
  t.teardown(() => double.close());
  const tok = double.token();
  const { cfg, db } = config([
    { name: 'msgs', url: double.url, cid: 'c1', type: 'message', token: tok },
    { name: 'refused', url: double.url, cid: 'c1', type: 'maillog', token: 'wrong' },
    { name: 'later', url: double.url, cid: 'c1', type: 'maillog', token: double.token() },
  ]);
  const h = startConsumer(db, { streams: [
    { name: 'msgs', url: double.url, cid: 'c1', type: 'message', token: tok },
    { name: 'refused', url: double.url, cid: 'c1', type: 'maillog', token: 'wrong' },
  ] }, clock);
  await until(() => double.open('live').length === 1, 'live');
  double.publish('message', clock.ms, messageEvent('g1', clock.ms));
  double.publish('message', clock.ms, 'not json');
  await until(() => h.consumer.statuses()[0]!.deadLettered === 1 && h.consumer.statuses()[0]!.stored === 1, 'stored');
  await until(() => h.consumer.statuses()[1]!.state === 'stopped', 'the refused stream stopped');
  const r = await cli(['pod', 'status', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  t.match(out, /^msgs \(message\): live since \S+Z\n/m);
  t.match(out, /  last event: \S+Z \(\d+s ago\)\n/);
  t.match(out, /  received 2, stored 1, duplicates 0, dead-lettered 1\n/);
  t.match(out, /^refused \(maillog\): stopped since \S+ - HTTP 401: .*token/m);
  t.match(out, /  last error: HTTP 401/);
  t.match(out, /^later \(maillog\): never ran\n  last event: none\n/m);
  t.notMatch(out, /wrong/, 'no token in the output');
  t.notOk(out.includes(tok), 'no token in the output');
  const j = await cli(['pod', 'status', '--json', '--config', cfg]);
  const views = JSON.parse(j.stdout.toString()) as Array<Record<string, unknown>>;
  t.match(views[0], { stream: 'msgs', state: 'live', received: 2, stored: 1, duplicates: 0, deadLettered: 1, configured: true });
  t.equal(typeof views[0]!['lastEventAgeSeconds'], 'number');
  t.match(views[1], { stream: 'refused', state: 'stopped', lastError: /401/ });
  t.match(views[2], { stream: 'later', state: 'never ran', lastEventTs: null });
  await h.stop();
  const after = await cli(['pod', 'status', '--config', cfg]);
  t.match(after.stdout.toString(), /^msgs \(message\): stopped since \S+ - the gateway stopped/m);
});

t.test('pod backfill: one archive request in whole hours; summary; not stored twice; checkpoint untouched', async (t) => {
  const now = Date.now();
  const double = await startPublisherDouble(Date.now, { cid: 'c1' });
  t.teardown(() => double.close());
  const bf = double.token();
  const base = Math.floor(now / HOUR) * HOUR - 6 * HOUR;
  for (const [g, at] of [['old', base - HOUR], ['in1', base + 10 * 60_000], ['in2', base + 2 * HOUR + 5], ['bad', base + 20 * 60_000], ['after', base + 4 * HOUR]] as const) {
    double.publish('message', at, g === 'bad' ? '{"guid":1}' : messageEvent(g, at));
  }
  const { cfg, db } = config([{ name: 'msgs', url: double.url, cid: 'c1', type: 'message', token: double.token(), backfillTokenEnv: 'BF' }]);
  const since = new Date(base + 15 * 60_000).toISOString();
  const untilT = new Date(base + 2 * HOUR + 30 * 60_000).toISOString();
  const r = await cli(['pod', 'backfill', '--stream', 'msgs', '--since', since, '--until', untilT, '--config', cfg], { env: { BF: bf } });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.toString(), 'read 3, stored 2, duplicates 0, dead-lettered 1\n');
  t.equal(r.stderr, '', 'no progress bar when stderr is not a terminal');
  const req = double.requests[0]!;
  t.equal(modeOf(req), 'archive');
  t.equal(req.authorization, `Bearer ${bf}`, 'the backfill token');
  t.equal(req.query.get('sinceTime'), `${new Date(base).toISOString().slice(0, 19)}+0000`, 'since rounded down');
  t.equal(req.query.get('toTime'), `${new Date(base + 3 * HOUR).toISOString().slice(0, 19)}+0000`, 'until rounded up');
  const again = await cli(['pod', 'backfill', '--stream', 'msgs', '--since', since, '--until', untilT, '--json', '--config', cfg], { env: { BF: bf } });
  t.same(JSON.parse(again.stdout.toString()), { read: 3, stored: 0, duplicates: 3, deadLettered: 0 });
  const store = Store.open(db);
  t.same(storedGuids(store), ['in1', 'in2']);
  t.equal(store.pod.checkpoint('msgs'), undefined, 'a backfill by hand does not move the checkpoint');
  store.close();
});

t.test('pod backfill: 409 says what to do; usage errors exit 2', async (t) => {
  const double = await startPublisherDouble(Date.now, { cid: 'c1' });
  const tok = double.token();
  const other = await double.occupy(tok);
  t.teardown(async () => {
    await other.release();
    await double.close();
  });
  const { cfg } = config([{ name: 'msgs', url: double.url, cid: 'c1', type: 'message', token: tok }]);
  const since = new Date(Date.now() - 5 * HOUR).toISOString();
  const untilT = new Date(Date.now() - 3 * HOUR).toISOString();
  const r = await cli(['pod', 'backfill', '--stream', 'msgs', '--since', since, '--until', untilT, '--config', cfg]);
  t.equal(r.code, 1);
  t.match(r.stderr, /409.*in use by another session.*backfillToken/);
  t.equal((await cli(['pod', 'backfill', '--stream', 'msgs', '--since', 'yesterday', '--until', untilT, '--config', cfg])).code, 2);
  t.equal((await cli(['pod', 'backfill', '--stream', 'msgs', '--since', untilT, '--until', since, '--config', cfg])).code, 2);
  const unknown = await cli(['pod', 'backfill', '--stream', 'nope', '--since', since, '--until', untilT, '--config', cfg]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no stream 'nope'.*msgs/);
});

t.test('pod backfill of a range that starts within the last hour: a clear error, not a live session that never ends', async (t) => {
  const double = await startPublisherDouble(Date.now, { cid: 'c1' });
  t.teardown(() => double.close());
  const { cfg } = config([{ name: 'msgs', url: double.url, cid: 'c1', type: 'message', token: double.token() }]);
  // The current hour: rounded down, it is still under an hour old, and the service treats such a sinceTime as live.
  const since = new Date(Math.floor(Date.now() / HOUR) * HOUR + 1000).toISOString();
  const untilT = new Date(Date.now() + 1000).toISOString();
  const run = cli(['pod', 'backfill', '--stream', 'msgs', '--since', since, '--until', untilT, '--config', cfg]);
  // The publisher serves such a request as a live session; the command would wait on it for ever.
  const first = await Promise.race([run, until(() => double.open('archive').length > 0, 'a session open')]);
  t.not(first, true, 'the command ended by itself, without a session that never ends');
  const r = await run;
  t.equal(r.code, 1);
  t.match(r.stderr, /last hour.*live stream/);
  t.equal(double.requests.length, 0, 'nothing was asked of the service');
});

t.test('pod status: a reason the server chose (a close reason, an error) stays on its line, with no control characters', async (t) => {
  const view: StreamStatusView = {
    stream: 'msgs', type: 'message', state: 'backoff', stateSince: null, configured: true,
    detail: 'the server closed the session (4000 \u001b[2Jfake\nmsgs (message): live)', lastEventTs: null, lastEventAgeSeconds: null,
    received: 0, stored: 0, duplicates: 0, deadLettered: 0, lastError: 'bad\r\n\u0007frame', lastErrorAt: null,
  };
  const out = formatStreamStatus([view]);
  t.equal(out.split('\n').length, 5, 'four lines and the final newline');
  t.notOk(/[\u0000-\u0009\u000b-\u001f\u007f]/.test(out), 'no control characters but the line ends');
  t.match(out, /\(4000 \\x1b\[2Jfake\\nmsgs \(message\): live\)/);
  t.match(out, /last error: bad\\r\\n\\x07frame/);
});
