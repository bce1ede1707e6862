// Two gateways over IMP with TLS: a peer whose acceptor has imp.tls is reached by an
// imp:// route with `tls: required` (TLS from the first octet; IMP has no STARTTLS) and by
// `mailbag imp send --tls`. A certificate that does not verify defers, it never falls back
// to plain TCP. The reply forwarder reaches an originating MPM's TLS acceptor the same
// way (imp.mpms with tls: required).
import t from 'tap';
import nodemailer from 'nodemailer';
import { join } from 'node:path';
import { validateConfig } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { cli } from './helpers/cli.js';
import { haveOpenssl, selfSignedCertificate } from './helpers/certificate.js';
import { maildirFiles, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';
import { freePort } from './helpers/free-port.js';

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

t.test('config: imp.mpms entries take tls and tlsVerify as imp:// routes do', async (t) => {
  const mpm = (extra: Record<string, unknown>) => validateConfig({ imp: { ihn: 1, mpms: [{ ihn: 2, address: 'imp://127.0.0.1:7530', ...extra }] } }).imp.mpms[0]!;
  t.same(mpm({ tls: 'required' }).tls, { verify: true }, 'required verifies by default');
  t.same(mpm({ tls: 'required', tlsVerify: false }).tls, { verify: false });
  t.equal(mpm({}).tls, undefined, 'plain TCP by default');
  t.equal(mpm({ tls: 'none' }).tls, undefined);
  t.throws(() => mpm({ tls: 'opportunistic' }), /IMP has no STARTTLS/);
  t.throws(() => mpm({ tlsVerify: false }), /tls: required/);
});

t.test('the end-to-end ACKNOWLEDGE is passed back to an originating MPM whose acceptor has imp.tls', { skip: haveOpenssl() ? false : 'openssl not installed', timeout: 60_000 }, async (t) => {
  const ORIGINATING = 167772404;
  const RELAY = 167772246;
  const DESTINATION = 167772359;
  const dirs = ['o', 'r', 'd'].map((n) => {
    const d = tempDir(`imp-tls-passback-${n}`);
    t.teardown(() => d.cleanup());
    return d.dir;
  });
  const [dO, dR, dD] = dirs as [string, string, string];
  const mailboxes = join(dD, 'mailboxes');
  const destination = await startGateway(
    testConfig(dD, { imp: { ihn: DESTINATION, listen: { host: '127.0.0.1', port: 0 } }, routes: [{ domain: 'example.test', nexthop: `maildir:${mailboxes}` }] }),
    { pollMs: 30 },
  );
  t.teardown(() => destination.stop());
  const originatingPort = await freePort();
  const relay = await startGateway(
    testConfig(dR, {
      smtp: { maxMessageBytes: '1MiB', localDomains: [] },
      imp: {
        ihn: RELAY,
        listen: { host: '127.0.0.1', port: 0 },
        trustedPeers: ['127.0.0.1/32'],
        mpms: [{ ihn: ORIGINATING, address: `imp://127.0.0.1:${originatingPort}`, tls: 'required', tlsVerify: false }],
      },
      routes: [{ domain: 'example.test', nexthop: `imp://127.0.0.1:${destination.impAddress()!.port}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => relay.stop());
  const { key, cert } = selfSignedCertificate(dO, 'mpm-o.test.invalid');
  const originating = await startGateway(
    testConfig(dO, {
      smtp: { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'], localDomains: [] },
      imp: { ihn: ORIGINATING, listen: { host: '127.0.0.1', port: originatingPort }, tls: { key, cert } },
      routes: [{ domain: 'example.test', nexthop: `imp://127.0.0.1:${relay.impAddress()!.port}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => originating.stop());

  const qid = await send(originating, 'dave@example.test');
  const [atOrigin] = await waitFor(() => {
    const rows = originating.store.queue.recipients(qid);
    return rows[0]?.last_reply?.includes('ACCEPT') ? rows : undefined;
  }, 30_000, 'the end-to-end ACKNOWLEDGE at the originating MPM, over TLS');
  t.equal(atOrigin!.state, 'delivered');
  t.equal(atOrigin!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail ${ORIGINATING},${RELAY},${DESTINATION}`);
  // The relay counts the reply taken once the originating MPM, having recorded it, closed the TLS connection.
  const passed = /mailbag_imp_replies_passed_back_total\{result="passed"\} 1\n/;
  await waitFor(async () => passed.test(await relay.metrics.registry.metrics()), 10_000, 'the relay counts the reply passed back');
  t.match(await relay.metrics.registry.metrics(), passed, 'passed back by the relay');
  t.match(await originating.metrics.registry.metrics(), /mailbag_imp_end_to_end_total\{answer="yes"\} 1\n/, 'recorded at the originating MPM');
  await waitFor(() => maildirFiles(mailboxes, 'example.test', 'dave')[0], 30_000, 'in the Maildir at the destination');
});
