// `mailbag imp probe --peer HOST:PORT ADDR` against a running gateway's IMP listener.
import t from 'tap';
import { join } from 'node:path';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { startGateway } from '../src/gateway/gateway.js';
import { cli } from './helpers/cli.js';
import { tempDir, testConfig, writeTestConfig } from './helpers/gateway.js';
import { haveOpenssl, selfSignedCertificate } from './helpers/certificate.js';

t.test('imp probe prints the RESPONSE; exit 0 on yes, 1 with the reason on no, 2 on bad usage', async (t) => {
  const { dir, cleanup } = tempDir('cli-imp-probe');
  const gw = await startGateway(
    testConfig(dir, {
      imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 } },
      routes: [{ domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` }],
    }),
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const peer = `127.0.0.1:${gw.impAddress()!.port}`;
  const config = writeTestConfig(dir, { imp: { ihn: 167772404 } });

  const yes = await cli(['imp', 'probe', '--peer', peer, 'alice@example.test', '--config', config]);
  t.equal(yes.code, 0, yes.stderr);
  t.match(yes.stdout.toString(), /TEXT="RESPONSE"/);
  t.match(yes.stdout.toString(), /BOOLEAN=TRUE/);
  t.match(yes.stdout.toString(), /HOST: example\.test/);
  t.match(yes.stdout.toString(), /USER: alice/);
  t.match(yes.stdout.toString(), /INTEGER=167772404,\s+INTEGER=167772359/, 'the trail: our stamp, then the peer');

  const no = await cli(['imp', 'probe', '--peer', peer, 'bob@elsewhere.test', '--config', config]);
  t.equal(no.code, 1);
  t.match(no.stdout.toString(), /BOOLEAN=FALSE/);
  t.match(no.stderr, /no: no such host/);

  const usage = await cli(['imp', 'probe', 'alice@example.test', '--config', config]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--peer HOST:PORT is required/);

  const refused = await cli(['imp', 'probe', '--peer', '127.0.0.1:1', 'alice@example.test', '--config', config]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /127\.0\.0\.1:1: .*ECONNREFUSED/);
});

t.test('imp.tls: the listener speaks TLS from the first octet with the configured certificate', { skip: haveOpenssl() ? false : 'openssl not installed' }, async (t) => {
  const { dir, cleanup } = tempDir('cli-imp-probe-tls');
  const { key, cert } = selfSignedCertificate(dir, 'mpm.test.invalid');
  const gw = await startGateway(
    testConfig(dir, {
      imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 }, tls: { key, cert } },
      routes: [{ domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` }],
    }),
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const port = gw.impAddress()!.port;
  const peerCn = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.on('error', reject);
  });
  t.equal(peerCn, 'mpm.test.invalid', 'the configured certificate');
  const config = writeTestConfig(dir, { imp: { ihn: 167772404 } });
  const yes = await cli(['imp', 'probe', '--tls', '--peer', `127.0.0.1:${port}`, 'alice@example.test', '--config', config]);
  t.equal(yes.code, 0, yes.stderr);
  t.match(yes.stdout.toString(), /BOOLEAN=TRUE/);
});

t.test('--timeout: a bare number is seconds for probe and send alike; units are taken by both', async (t) => {
  const { dir, cleanup } = tempDir('cli-imp-timeout');
  const gw = await startGateway(testConfig(dir, { imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 } } }));
  // A slow link: what the client sends reaches the gateway 200 ms later.
  const proxy = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = netConnect({ port: gw.impAddress()!.port, host: '127.0.0.1', allowHalfOpen: true });
    upstream.pipe(client);
    client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), 200));
    client.on('end', () => setTimeout(() => upstream.end(), 200));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    await new Promise((resolve) => proxy.close(resolve));
    await gw.stop();
    cleanup();
  });
  const peer = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const config = writeTestConfig(dir, { imp: { ihn: 167772404 } });
  const probe = await cli(['imp', 'probe', '--peer', peer, '--timeout', '20', 'alice@example.test', '--config', config]);
  t.equal(probe.code, 0, `--timeout 20 is 20 seconds, not 20 ms: ${probe.stderr}`);
  t.equal((await cli(['imp', 'probe', '--peer', peer, '--timeout', '20s', 'alice@example.test', '--config', config])).code, 0);
  const send = await cli(['imp', 'send', '--peer', peer, '--timeout', '20s', '--to', 'alice@example.test', '--config', config], { stdin: 'Subject: t\r\n\r\nx\r\n' });
  t.equal(send.code, 0, `send takes a unit too: ${send.stderr}`);
  t.equal((await cli(['imp', 'probe', '--peer', peer, '--timeout', 'soon', 'alice@example.test', '--config', config])).code, 2);
  t.equal((await cli(['imp', 'send', '--peer', peer, '--timeout', '0', '--to', 'a@example.test', '--config', config])).code, 2);
});
