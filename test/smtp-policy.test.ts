// Bad input at the SMTP door: each gets the right reply and leaves no partial state.
import t, { type Test } from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import type { ConfigInput } from '../src/config/schema.js';
import { RawSmtp, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function gateway(t: Test, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Promise<{ gw: Gateway; dir: string }> {
  const { dir, cleanup } = tempDir('policy');
  const gw = await startGateway(testConfig(dir, overrides));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  return { gw, dir };
}

/** Nothing accepted: no rows, no spool file, no half-written tmp file. */
function assertNothingStored(t: Test, gw: Gateway, dir: string) {
  t.equal(gw.store.queue.list().length, 0, 'no message in the store');
  t.same(readdirSync(join(dir, 'spool')).filter((f) => f !== 'tmp' && !f.startsWith('gateway.lock') && f !== 'results.journal'), [], 'no spool file');
  t.same(readdirSync(join(dir, 'spool', 'tmp')), [], 'no tmp file');
}

async function session(gw: Gateway): Promise<RawSmtp> {
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO client.test');
  return c;
}

t.test('oversize message: 552 5.3.4, nothing stored', async (t) => {
  const { gw, dir } = await gateway(t, { smtp: { maxMessageBytes: 2000 } });
  const c = await session(gw);
  t.match(await c.cmd('MAIL FROM:<a@sender.test> SIZE=5000'), /^552 5\.3\.4 /, 'declared SIZE over the limit is refused at MAIL');
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  c.write('Subject: big\r\n\r\n' + ('y'.repeat(98) + '\r\n').repeat(100) + '.\r\n');
  t.match(await c.reply(), /^552 5\.3\.4 /);
  t.match(await c.cmd('NOOP'), /^250 /, 'the session goes on');
  c.close();
  assertNothingStored(t, gw, dir);
});

t.test('too many recipients: 452 4.5.3', async (t) => {
  const { gw } = await gateway(t, { smtp: { maxRecipients: 2 } });
  const c = await session(gw);
  await c.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c.cmd('RCPT TO:<r1@example.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<r2@example.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<r3@example.test>'), /^452 4\.5\.3 /);
  c.close();
});

t.test('relay control: 550 5.7.1 unless local domain, trusted network or authenticated', async (t) => {
  const { gw } = await gateway(t, {
    smtp: { auth: { users: [{ username: 'relay', password: 'sekrit' }], allowInsecure: true } },
    routes: [{ domain: '*', nexthop: 'smtp://127.0.0.1:1' }],
  });
  const c = await session(gw);
  await c.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c.cmd('RCPT TO:<victim@elsewhere.test>'), /^550 5\.7\.1 Relay access denied/);
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /, 'local domain');
  t.match(await c.cmd('RCPT TO:<x@sub.example.test>'), /^250 /, '*.suffix local domain');
  t.match(await c.cmd(`AUTH PLAIN ${Buffer.from('\0relay\0wrong').toString('base64')}`), /^535 5\.7\.8 /);
  await c.cmd('RSET');
  t.match(await c.cmd(`AUTH PLAIN ${Buffer.from('\0relay\0sekrit').toString('base64')}`), /^235 /);
  await c.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c.cmd('RCPT TO:<victim@elsewhere.test>'), /^250 /, 'authenticated clients may relay');
  c.close();
});

t.test('trusted networks may relay; recipients without a route are refused', async (t) => {
  const { gw } = await gateway(t, { smtp: { trustedNetworks: ['127.0.0.0/8'] } });
  const c = await session(gw);
  await c.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c.cmd('RCPT TO:<someone@elsewhere.test>'), /^550 5\.1\.2 No route/, 'trusted, but no route for the domain');
  c.close();
  const { gw: gw2 } = await gateway(t, { smtp: { trustedNetworks: ['127.0.0.0/8'] }, routes: [{ domain: '*', nexthop: 'smtp://127.0.0.1:1' }] });
  const c2 = await session(gw2);
  await c2.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c2.cmd('RCPT TO:<someone@elsewhere.test>'), /^250 /, 'trusted network relays');
  c2.close();
});

t.test('malformed addresses: 501 with 5.1.3 / 5.1.7', async (t) => {
  const { gw, dir } = await gateway(t);
  const c = await session(gw);
  t.match(await c.cmd('MAIL FROM:<not an address>'), /^501 5\.1\.7 /);
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<no-at-sign>'), /^501 5\.1\.3 /);
  t.match(await c.cmd('RCPT TO:<a@@b>'), /^501 5\.1\.3 /);
  t.match(await c.cmd('RCPT TO:alice@example.test>'), /^501 /);
  t.match(await c.cmd('DATA'), /^503 /, 'no DATA without a recipient');
  c.close();
  assertNothingStored(t, gw, dir);
});

t.test('garbage and over-long command lines', async (t) => {
  const { gw } = await gateway(t, { smtp: { maxLineLength: 512 } });
  const c = await session(gw);
  t.match(await c.cmd('FROBNICATE now'), /^500 5\.5\.2 /);
  t.match(await c.cmd('\u0001\u0002\u00ff'), /^500 /);
  t.match(await c.cmd('MAIL FROM:<' + 'a'.repeat(600) + '@sender.test>'), /^500 5\.5\.2 .*too long/i);
  t.equal(await c.reply(), '', 'and the connection is closed');
  c.close();
});

t.test('disconnect mid-DATA leaves nothing behind', async (t) => {
  const { gw, dir } = await gateway(t);
  const c = await session(gw);
  await c.cmd('MAIL FROM:<a@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  t.match(await c.cmd('DATA'), /^354 /);
  await c.send('Subject: half\r\n\r\n' + 'z'.repeat(100_000));
  // the spool's tmp file first, then the disconnect: an empty tmp/ before the spool created
  // the file would say nothing (under load the check ran first, then the file appeared)
  await waitFor(() => readdirSync(join(dir, 'spool', 'tmp')).length > 0, 10_000, 'the tmp file');
  c.close();
  await waitFor(() => gw.store && readdirSync(join(dir, 'spool', 'tmp')).length === 0, 10_000, 'tmp file removal');
  assertNothingStored(t, gw, dir);
});

t.test('connection limits: per IP and total, 421', async (t) => {
  const { gw } = await gateway(t, { smtp: { maxConnectionsPerIp: 2 } });
  const a = await RawSmtp.open(gw.smtpAddress().port);
  const b = await RawSmtp.open(gw.smtpAddress().port);
  t.match(await a.reply(), /^220 /);
  t.match(await b.reply(), /^220 /);
  const c = await RawSmtp.open(gw.smtpAddress().port);
  t.match(await c.reply(), /^421 4\.7\.0 Too many connections from 127\.0\.0\.1/);
  a.close();
  await waitFor(async () => {
    const d = await RawSmtp.open(gw.smtpAddress().port);
    const r = await d.reply();
    d.close();
    return r.startsWith('220');
  }, 2000, 'a slot to free up');
  t.pass('a closed connection frees its slot');
  b.close();
  c.close();

  const { gw: gw2 } = await gateway(t, { smtp: { maxConnections: 1 } });
  const x = await RawSmtp.open(gw2.smtpAddress().port);
  t.match(await x.reply(), /^220 /);
  const y = await RawSmtp.open(gw2.smtpAddress().port);
  t.match(await y.reply(), /^421 /, 'over maxConnections');
  x.close();
  y.close();
});

t.test('a failure before the 250 gives 451 4.3.0 and leaves nothing', async (t) => {
  const { gw, dir } = await gateway(t);
  // The store refuses the insert (as a full disk or a corrupt file would).
  gw.store.db.exec("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  const c = await session(gw);
  await c.cmd('MAIL FROM:<a@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  c.write('Subject: doomed\r\n\r\nbody\r\n.\r\n');
  t.match(await c.reply(), /^451 4\.3\.0 /);
  gw.store.db.exec('DROP TRIGGER refuse');
  assertNothingStored(t, gw, dir);
  // The spool cannot take the file (its tmp directory is gone).
  const { rmSync } = await import('node:fs');
  rmSync(join(dir, 'spool', 'tmp'), { recursive: true });
  await c.cmd('MAIL FROM:<a@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  c.write('Subject: doomed too\r\n\r\nbody\r\n.\r\n');
  t.match(await c.reply(), /^451 4\.3\.0 /);
  t.equal(gw.store.queue.list().length, 0, 'no message in the store');
  c.close();
});
