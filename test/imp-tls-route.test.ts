// Two gateways over IMP with TLS: a peer whose acceptor has imp.tls is reached by an
// imp:// route with `tls: required` (TLS from the first octet; IMP has no STARTTLS) and by
// `mailbag imp send --tls`. A certificate that does not verify defers, it never falls back
// to plain TCP.
import t from 'tap';
import nodemailer from 'nodemailer';
import { join } from 'node:path';
import { validateConfig } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { cli } from './helpers/cli.js';
import { haveOpenssl, selfSignedCertificate } from './helpers/certificate.js';
import { maildirFiles, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';

async function send(gw: Gateway, to: string): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: [to] }, raw: 'From: ann@sender.test\r\nSubject: over IMP and TLS\r\n\r\nhello\r\n' });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

t.test('config: imp:// takes tls none or required, never opportunistic', async (t) => {
  const hop = (extra: Record<string, unknown>) => validateConfig({ imp: { ihn: 1 }, smtp: { maxMessageBytes: '1MiB' }, routes: [{ domain: 'far.test', nexthop: 'imp://127.0.0.1:7530', ...extra }] }).routes[0]!.nexthop;
  t.match(hop({ tls: 'required' }), { kind: 'imp', tls: { verify: true } }, 'required verifies by default');
  t.match(hop({ tls: 'required', tlsVerify: false }), { kind: 'imp', tls: { verify: false } });
  t.equal((hop({}) as { tls?: unknown }).tls, undefined, 'plain TCP by default');
  t.throws(() => hop({ tls: 'opportunistic' }), /IMP has no STARTTLS/);
  t.throws(() => hop({ tlsVerify: true }), /tls: required/);
});

t.test('an imp:// route with tls: required ships to a TLS acceptor; an unverifiable certificate defers', { skip: haveOpenssl() ? false : 'openssl not installed', timeout: 60_000 }, async (t) => {
  const b = tempDir('imp-tls-b');
  const { key, cert } = selfSignedCertificate(b.dir, 'mpm-b.test.invalid');
  const gwB = await startGateway(
    testConfig(b.dir, { imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 }, tls: { key, cert } } }),
    { pollMs: 30 },
  );
  t.teardown(async () => {
    await gwB.stop();
    b.cleanup();
  });
  const url = `imp://127.0.0.1:${gwB.impAddress()!.port}`;
  const a = tempDir('imp-tls-a');
  const gwA = await startGateway(
    testConfig(a.dir, {
      imp: { ihn: 167772404 },
      smtp: { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'] },
      routes: [
        { domain: 'example.test', nexthop: url, tls: 'required', tlsVerify: false },
        { domain: 'verify.example.test', nexthop: `${url}/`, tls: 'required' },
      ],
    }),
    { pollMs: 30 },
  );
  t.teardown(async () => {
    await gwA.stop();
    a.cleanup();
  });
  const qid = await send(gwA, 'dave@example.test');
  const [row] = await waitFor(() => {
    const r = gwA.store.queue.recipients(qid);
    return r[0]?.state === 'delivered' ? r : undefined;
  }, 30_000, 'delivered over IMP with TLS');
  t.match(row!.last_reply, /IMP ACKNOWLEDGE yes .*trail 167772404,167772359/);
  await waitFor(() => maildirFiles(join(b.dir, 'mailboxes'), 'example.test', 'dave')[0], 30_000, 'in the Maildir at B');

  const checked = await send(gwA, 'erin@verify.example.test');
  const [deferred] = await waitFor(() => {
    const r = gwA.store.queue.recipients(checked);
    return r[0]?.state === 'deferred' && r[0].last_reply ? r : undefined;
  }, 30_000, 'deferred: the self-signed certificate does not verify');
  t.match(deferred!.last_reply, /^451 4\.4\.1 IMP .*(self.signed|certificate)/i);

  const cfg = writeTestConfig(a.dir, { imp: { ihn: 167772404 } });
  const sent = await cli(['imp', 'send', '--tls', '--peer', url.slice('imp://'.length), '--to', 'frank@example.test', '--config', cfg], { stdin: 'Subject: by hand\r\n\r\nx\r\n' });
  t.equal(sent.code, 0, sent.stderr);
  t.match(sent.stdout.toString(), /BOOLEAN=TRUE/);
});
