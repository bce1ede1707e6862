// /healthz tells the truth: every component reports, and the gateway is unhealthy while
// every accept fails on local storage or every connection slot is taken.
import t, { type Test } from 'tap';
import { createServer } from 'node:net';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { SmtpListenError } from '../src/smtp/inbound.js';
import { componentsHealth, startComponents, stopComponents, type GatewayComponent } from '../src/gateway/component.js';
import type { ConfigInput } from '../src/config/schema.js';
import { RawSmtp, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function gateway(t: Test, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Promise<{ gw: Gateway; healthz: () => Promise<{ status: number; body: Record<string, unknown> }> }> {
  const { dir, cleanup } = tempDir('health');
  const gw = await startGateway(testConfig(dir, { admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } }, ...overrides }));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const healthz = async () => {
    const res = await fetch(`http://127.0.0.1:${gw.adminAddress()!.port}/healthz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { gw, healthz };
}

async function send(c: RawSmtp, subject: string): Promise<string> {
  await c.cmd('MAIL FROM:<a@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  return c.cmd(`Subject: ${subject}\r\n\r\nbody\r\n.`);
}

t.test('/healthz reports each component and keeps the top-level fields', async (t) => {
  const { healthz } = await gateway(t);
  const { status, body } = await healthz();
  t.equal(status, 200);
  t.match(body, {
    ok: true,
    components: { admin: { ok: true }, storage: { ok: true }, queue: { ok: true }, smtp: { ok: true } },
    queueDepth: 0,
    attemptsInFlight: 0,
  });
  t.same(Object.keys(body.components as object), ['admin', 'storage', 'queue', 'smtp'], 'in start order');
});

t.test('unhealthy while every connection slot is taken, healthy again once one frees', async (t) => {
  const { gw, healthz } = await gateway(t, { smtp: { maxConnections: 2 } });
  const a = await RawSmtp.open(gw.smtpAddress().port);
  const b = await RawSmtp.open(gw.smtpAddress().port);
  t.match(await a.reply(), /^220 /);
  t.match(await b.reply(), /^220 /);
  const full = await healthz();
  t.equal(full.status, 503);
  t.match(full.body, { ok: false, components: { smtp: { ok: false, reason: /every connection slot is taken \(2 of smtp\.maxConnections 2\)/, connections: 2 }, storage: { ok: true } } });
  a.close();
  const again = await waitFor(async () => {
    const h = await healthz();
    return h.status === 200 ? h : undefined;
  }, 5000, 'a slot to free up');
  t.match(again.body, { ok: true, components: { smtp: { ok: true, connections: 1, maxConnections: 2 } } });
  b.close();
});

t.test('unhealthy while every accept fails with 451, healthy again after one succeeds', async (t) => {
  const { gw, healthz } = await gateway(t);
  gw.store.db.exec("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO client.test');
  t.match(await send(c, 'one'), /^451 /);
  t.match(await send(c, 'two'), /^451 /);
  t.equal((await healthz()).status, 200, 'two failures may be a blip');
  t.match(await send(c, 'three'), /^451 /);
  const failing = await healthz();
  t.equal(failing.status, 503);
  t.match(failing.body, {
    ok: false,
    components: { storage: { ok: false, reason: /the last 3 accepts failed with 451 .*disk on fire.* and none succeeded since/, failedInARow: 3 }, smtp: { ok: true } },
  });
  gw.store.db.exec('DROP TRIGGER refuse');
  t.match(await send(c, 'four'), /^250 /);
  const ok = await healthz();
  t.equal(ok.status, 200);
  t.match(ok.body, { ok: true, components: { storage: { ok: true, failedInARow: 0 } } });
  c.close();
});

t.test('a start that fails stops what it started, with one typed error naming the listener', async (t) => {
  const { dir, cleanup } = tempDir('health-start');
  t.teardown(cleanup);
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as { port: number }).port;
  const config = testConfig(dir, { smtp: { listen: { host: '127.0.0.1', port } }, admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } });
  const err = await startGateway(config).catch((e: unknown) => e);
  t.ok(err instanceof SmtpListenError, String(err));
  t.match(err, { code: 'EADDRINUSE', message: new RegExp(`^smtp listener 127\\.0\\.0\\.1:${port}: `) });
  // Everything started before the listener was stopped: the same store and spool start again.
  const again = await startGateway(testConfig(dir));
  t.ok(again.smtpAddress().port > 0);
  await again.stop();
});

for (const [listener, overrides] of [
  ['imp listener', (port: number) => ({ imp: { listen: { host: '127.0.0.1', port } } })],
  ['pod publisher listener', (port: number) => ({ pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port } } } })],
] as const) {
  t.test(`a busy port of the ${listener}: one error naming it, with the socket's code`, async (t) => {
    const { dir, cleanup } = tempDir('health-busy');
    t.teardown(cleanup);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = (blocker.address() as { port: number }).port;
    const input = overrides(port);
    const config = testConfig(dir, 'pod' in input ? { pod: { publisher: { ...input.pod.publisher, secretFile: `${dir}/pod.secret` } } } : input);
    const err = await startGateway(config).catch((e: unknown) => e);
    t.match(err, { code: 'EADDRINUSE', message: new RegExp(`^${listener} 127\\.0\\.0\\.1:${port}: `) }, String(err));
    // what started before it was stopped: the same store and spool start again
    const again = await startGateway(testConfig(dir));
    await again.stop();
  });
}

t.test('components: started in order, stopped in reverse; a failed start stops the started ones and rethrows', async (t) => {
  const calls: string[] = [];
  const component = (name: string, opts: { failStart?: boolean; unhealthy?: boolean; throws?: boolean } = {}): GatewayComponent => ({
    name,
    async start() {
      calls.push(`start ${name}`);
      if (opts.failStart) throw Object.assign(new Error(`${name} cannot start`), { code: 'ERR_TEST' });
    },
    async stop(graceMs) {
      calls.push(`stop ${name} ${graceMs}`);
    },
    health() {
      if (opts.throws) throw new Error(`${name} health broke`);
      return opts.unhealthy ? { ok: false, reason: `${name} is down` } : { ok: true };
    },
  });
  const list = [component('a'), component('b'), component('c')];
  await startComponents(list);
  await stopComponents(list, 50);
  t.same(calls, ['start a', 'start b', 'start c', 'stop c 50', 'stop b 50', 'stop a 50']);

  calls.length = 0;
  const failing = [component('a'), component('b', { failStart: true }), component('c')];
  await t.rejects(startComponents(failing), { message: 'b cannot start', code: 'ERR_TEST' });
  t.same(calls, ['start a', 'start b', 'stop b 0', 'stop a 0'], 'c never starts; b and a are stopped at once');

  t.same(componentsHealth([component('a'), component('b', { unhealthy: true }), component('c', { throws: true })]), {
    ok: false,
    components: { a: { ok: true }, b: { ok: false, reason: 'b is down' }, c: { ok: false, reason: 'c health broke' } },
  });
});
