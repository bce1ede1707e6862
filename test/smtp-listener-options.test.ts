// Deployment options wired from the config: STARTTLS with the operator's certificate,
// PROXY protocol and XCLIENT (both change who the client is for the relay check).
import t from 'tap';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { startGateway } from '../src/gateway/gateway.js';
import { RawSmtp, tempDir, testConfig } from './helpers/gateway.js';
import { haveOpenssl, selfSignedCertificate } from './helpers/certificate.js';

t.test('STARTTLS with the configured certificate', { skip: haveOpenssl() ? false : 'openssl not installed' }, async (t) => {
  const { dir, cleanup } = tempDir('tls');
  const { key, cert } = selfSignedCertificate(dir, 'mx.test.invalid');
  const gw = await startGateway(testConfig(dir, { smtp: { tls: { key, cert } } }));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  t.match(await c.cmd('EHLO client.test'), /^250[- ]STARTTLS$/m);
  t.match(await c.cmd('STARTTLS'), /^220 /);
  const peerCn = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ socket: c.socket, rejectUnauthorized: false, servername: 'mx.test.invalid' }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(String(cn));
    });
    s.on('error', reject);
  });
  t.equal(peerCn, 'mx.test.invalid', 'the operator certificate, not the library one');
});

t.test('PROXY protocol: the relay check sees the real client', async (t) => {
  const { dir, cleanup } = tempDir('proxy');
  const gw = await startGateway(
    testConfig(dir, { smtp: { proxyProtocol: true, trustedNetworks: ['10.0.0.0/8'] }, routes: [{ domain: '*', nexthop: 'smtp://127.0.0.1:1' }] }),
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  for (const [src, allowed] of [['10.1.2.3', true], ['192.0.2.7', false]] as const) {
    const c = await RawSmtp.open(gw.smtpAddress().port);
    c.write(`PROXY TCP4 ${src} 127.0.0.1 40000 25\r\n`);
    t.match(await c.reply(), /^220 /);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@sender.test>');
    const reply = await c.cmd('RCPT TO:<x@elsewhere.test>');
    t.match(reply, allowed ? /^250 / : /^550 5\.7\.1 /, `client ${src} ${allowed ? 'may' : 'may not'} relay`);
    c.close();
  }
});

t.test('XCLIENT only from trusted networks', async (t) => {
  const { dir, cleanup } = tempDir('xclient');
  const gw = await startGateway(
    testConfig(dir, { smtp: { xclient: true, trustedNetworks: ['127.0.0.0/8'] }, routes: [{ domain: '*', nexthop: 'smtp://127.0.0.1:1' }] }),
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  t.match(await c.cmd('EHLO mta.test'), /^250[- ]XCLIENT /m, 'offered to the trusted MTA');
  t.match(await c.cmd('XCLIENT ADDR=192.0.2.9'), /^220 /);
  await c.cmd('EHLO mta.test');
  await c.cmd('MAIL FROM:<a@sender.test>');
  t.match(await c.cmd('RCPT TO:<x@elsewhere.test>'), /^550 5\.7\.1 /, 'the relay check applies to the client XCLIENT names');
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  c.close();

  const { dir: dir2, cleanup: cleanup2 } = tempDir('xclient-untrusted');
  const gw2 = await startGateway(testConfig(dir2, { smtp: { xclient: true, trustedNetworks: ['10.0.0.0/8'] } }));
  t.teardown(async () => {
    await gw2.stop();
    cleanup2();
  });
  const u = await RawSmtp.open(gw2.smtpAddress().port);
  await u.reply();
  t.notMatch(await u.cmd('EHLO client.test'), /XCLIENT/, 'not offered to an untrusted client');
  t.match(await u.cmd('XCLIENT ADDR=10.0.0.1'), /^5\d\d /, 'and refused');
  u.close();
});

t.test('the per-IP count follows the address a connection was counted under', async (t) => {
  const { dir, cleanup } = tempDir('xclient-count');
  const gw = await startGateway(testConfig(dir, { smtp: { xclient: true, trustedNetworks: ['127.0.0.0/8'], maxConnectionsPerIp: 1 } }));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const port = gw.smtpAddress().port;
  const c = await RawSmtp.open(port);
  await c.reply();
  await c.cmd('EHLO mta.test');
  t.match(await c.cmd('XCLIENT ADDR=192.0.2.9'), /^220 /);
  c.close();
  // If the close had released 192.0.2.9 instead of 127.0.0.1, this slot would stay taken.
  let reply = '';
  for (let i = 0; i < 50 && !reply.startsWith('220'); i++) {
    await new Promise((r) => setTimeout(r, 20));
    const d = await RawSmtp.open(port);
    reply = await d.reply();
    d.close();
  }
  t.match(reply, /^220 /);
});
