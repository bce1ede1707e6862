// The gateway with several next hops: one that hangs never holds mail for the others, and
// a domain routes, passes the relay policy and files alike in U-labels and A-labels.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { validateConfig } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { RawSmtp, tempDir, testConfig, waitFor } from './helpers/gateway.js';
import { startHangingHop, startHop } from './helpers/next-hop.js';

const BODY = Buffer.from('From: ann@sender.test\r\nSubject: next hops\r\n\r\nbody\r\n');

async function send(gw: Gateway, to: string): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: [to] }, raw: BODY });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

t.test('a next hop that accepts and never greets holds neither the queue nor other routes', async (t) => {
  const { dir, cleanup } = tempDir('nexthops');
  const hanging = await startHangingHop();
  const sink = await startHop();
  const config = testConfig(dir, {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [
      { domain: 'bad.test', nexthop: `smtp://127.0.0.1:${hanging.port}` },
      { domain: 'good.test', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
    // greeting and attempt timeouts far beyond the test: the bad attempts stay pending throughout
    queue: { concurrency: 4, perNexthopConcurrency: 2, greetingTimeout: '10m', attemptTimeout: '10m', retryInitial: 50, retryMax: 200 },
  });
  const gw = await startGateway(config, { pollMs: 30 });
  t.teardown(async () => {
    await hanging.close(); // ends the pending attempts (deferred), so the stop is quick
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const bad: string[] = [];
  for (let i = 0; i < 6; i++) bad.push(await send(gw, `user${i}@bad.test`));
  await hanging.opened(2);
  // the other four bad messages keep coming back while the hop is at its limit
  await waitFor(() => bad.some((q) => /not attempted/.test(gw.store.queue.recipients(q)[0]!.last_reply ?? '')), 5000, 'a postponed bad message');

  const good = await send(gw, 'someone@good.test');
  await waitFor(() => sink.messages.length === 1, 5000, 'the healthy route delivers');
  t.same(sink.messages[0]!.to, ['someone@good.test']);
  t.equal(hanging.open, 2, 'the two bad attempts are still pending');
  t.equal(hanging.maxOpen, 2, 'never more than perNexthopConcurrency connections to the bad hop');
  for (const q of bad) {
    t.same(gw.store.queue.attempts(q), [], `${q}: no attempt recorded for the bad hop yet`);
    t.equal(gw.store.queue.recipients(q)[0]!.attempts, 0, `${q}: waiting for the busy hop is not an attempt`);
  }
  await waitFor(() => gw.store.queue.message(good)?.state === 'done', 5000, 'the good message done');
});

t.test('queue: next-hop limits and timeouts have defaults and are checked', async (t) => {
  const q = validateConfig({}).queue;
  t.equal(q.perNexthopConcurrency, 10);
  t.equal(q.connectTimeout, 30_000);
  t.equal(q.greetingTimeout, 60_000);
  t.throws(() => validateConfig({ queue: { perNexthopConcurrency: 0 } }), /queue\.perNexthopConcurrency/);
  t.throws(() => validateConfig({ queue: { greetingTimeout: 'soon' } }), /queue\.greetingTimeout: not a duration/);
});

t.test('routes: tls and tlsVerify', async (t) => {
  const c = validateConfig({
    routes: [
      { domain: 'a.test', nexthop: 'smtp://mx.a.test:25', tls: 'required' },
      { domain: 'b.test', nexthop: 'smtp://mx.b.test:25', tls: 'required', tlsVerify: false },
      { domain: 'c.test', nexthop: 'lmtp://127.0.0.1:24', tls: 'none' },
      { domain: 'd.test', nexthop: 'smtp://mx.d.test:25' },
      { domain: 'e.test', nexthop: 'smtp://mx.a.test:25', tls: 'required' },
    ],
  });
  t.same(
    c.routes.map((r) => (r.nexthop.kind === 'maildir' || r.nexthop.kind === 'imp' ? undefined : [r.nexthop.tls, r.nexthop.tlsVerify])),
    [
      ['required', true],
      ['required', false],
      ['none', false],
      ['opportunistic', false],
      ['required', true],
    ],
  );
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'maildir:/m', tls: 'required' }] }), /routes\.0\.tls: applies to smtp:\/\/, lmtp:\/\/ and imp:\/\/ next hops only/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'smtp://h:25', tls: 'none', tlsVerify: true }] }), /routes\.0\.tlsVerify/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'smtp://h:25', tls: 'sometimes' }] }), /routes\.0\.tls/);
  t.throws(
    () =>
      validateConfig({
        routes: [
          { domain: 'a.test', nexthop: 'smtp://h:25', tls: 'required' },
          { domain: 'b.test', nexthop: 'smtp://h:25' },
        ],
      }),
    /routes\.1\.tls: next hop smtp:\/\/h:25 has other TLS settings in routes\.0/,
  );
});

t.test('U-labels and A-labels: one domain for routes, relay policy and Maildir; addresses relayed as written', async (t) => {
  const { dir, cleanup } = tempDir('idn');
  const sink = await startHop();
  const boxes = join(dir, 'mailboxes');
  const config = testConfig(dir, {
    // local domains and routes in either form; no trusted network: only local domains pass
    smtp: { localDomains: ['xn--bcher-kva.example', 'Ünï.example'] },
    routes: [
      { domain: 'bücher.example', nexthop: `maildir:${boxes}` },
      { domain: 'xn--n-nga1b.example', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
  });
  t.same(config.smtp.localDomains, ['xn--bcher-kva.example', 'xn--n-nga1b.example'], 'kept in the normal form');
  const gw = await startGateway(config, { pollMs: 30 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const c = await RawSmtp.open(gw.smtpAddress().port);
  t.teardown(() => c.close());
  await c.reply();
  await c.cmd('EHLO client.test');
  t.match(await c.cmd('MAIL FROM:<ann@sender.test> SMTPUTF8'), /^250 /);
  for (const rcpt of ['anna@Bücher.example', 'bert@xn--bcher-kva.example', 'cleo@ÜNÏ.example', 'dora@XN--N-NGA1B.example']) {
    t.match(await c.cmd(`RCPT TO:<${rcpt}>`), /^250 /, `${rcpt}: local and routed`);
  }
  t.match(await c.cmd('RCPT TO:<eve@other.example>'), /^550 5\.7\.1 /, 'other domains are still not relayed');
  t.match(await c.cmd('DATA'), /^354 /);
  c.write('Subject: idn\r\n\r\nbody\r\n.\r\n');
  t.match(await c.reply(), /^250 /);
  await waitFor(() => sink.messages.length === 1, 5000, 'the SMTP route');
  t.same(sink.messages[0]!.to, ['cleo@ÜNÏ.example', 'dora@XN--N-NGA1B.example'], 'relayed exactly as the client wrote them');
  const filed = join(boxes, 'xn--bcher-kva.example');
  await waitFor(() => existsSync(filed) && readdirSync(filed).length === 2, 5000, 'the Maildir route');
  t.same(readdirSync(boxes), ['xn--bcher-kva.example'], 'one folder, in A-labels');
  t.same(readdirSync(join(boxes, 'xn--bcher-kva.example')).sort(), ['anna', 'bert']);
});
