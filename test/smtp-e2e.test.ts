import t from 'tap';
import nodemailer from 'nodemailer';
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { startGateway } from '../src/gateway/gateway.js';
import { maildirFiles, startSink, stripReceived, tempDir, testConfig, waitFor } from './helpers/gateway.js';

// A message with the awkward parts: leading dots, 8-bit UTF-8, long lines, a bare
// trailing space, a multipart body. Every line ends in CRLF (what SMTP carries).
const MESSAGE = Buffer.from(
  [
    'From: Ann Sender <ann@sender.test>',
    'To: alice@example.test, bob@remote.test',
    'Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?= and dots',
    'Message-ID: <e2e-1@sender.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    '.a line that starts with a dot',
    '..two dots',
    '.',
    'Grüße aus Köln ',
    'x'.repeat(900),
    '--b1--',
    '',
  ].join('\r\n'),
  'utf8',
);

t.test('nodemailer -> mailbag -> smtp-server sink and Maildir, byte-exact apart from Received:', async (t) => {
  const { dir, cleanup } = tempDir('e2e');
  const sink = await startSink();
  const config = testConfig(dir, {
    routes: [
      { domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` },
      { domain: '*', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
  });
  const gw = await startGateway(config, { pollMs: 50 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test', 'bob@remote.test'] }, raw: MESSAGE });
  client.close();
  const qid = /queued as ([0-9A-Z]+)/.exec(info.response)?.[1];
  t.ok(qid, `250 names the qid: ${info.response}`);
  t.match(info.response, /^250 2\.6\.0 Ok: queued as /);

  await waitFor(() => sink.messages.length === 1, 5000, 'sink delivery');
  const got = sink.messages[0]!;
  t.equal(got.from, 'ann@sender.test');
  t.same(got.to, ['bob@remote.test'], 'the sink gets only the recipient routed to it');
  t.ok(stripReceived(got.bytes).equals(MESSAGE), 'SMTP next hop: bytes identical after the Received: line');
  t.match(got.bytes.toString('latin1'), new RegExp(`^Received: from [^\\r]+\\r\\n\\tby mx\\.test\\.invalid \\(mailbag\\) with ESMTP id ${qid};`));

  const root = join(dir, 'mailboxes');
  const files = await waitFor(() => {
    const f = maildirFiles(root, 'example.test', 'alice');
    return f.length ? f : undefined;
  }, 5000, 'maildir delivery');
  t.equal(files.length, 1);
  t.ok(stripReceived(files[0]!.bytes).equals(MESSAGE), 'Maildir: bytes identical after the Received: line');
  t.same(readdirSync(join(root, 'example.test', 'alice', 'tmp')), [], 'nothing left in tmp/');

  // Both recipients final: the attempts are recorded and the spool file is gone.
  await waitFor(() => gw.store.queue.message(qid!)?.state === 'done', 5000, 'message done');
  const rcpts = gw.store.queue.recipients(qid!);
  t.same(rcpts.map((r) => [r.rcpt, r.state]), [['alice@example.test', 'delivered'], ['bob@remote.test', 'delivered']]);
  const attempts = gw.store.queue.attempts(qid!);
  t.same(attempts.map((a) => a.outcome).sort(), ['delivered', 'delivered']);
  t.ok(attempts.some((a) => a.nexthop === `smtp://127.0.0.1:${sink.port}` && /^250/.test(a.reply ?? '')));
  // The queue runs on its own thread: its attempts still reach the metrics and health.
  await waitFor(() => gw.queue.inFlight === 0, 2000, 'no attempt in flight');
  const delivered = await gw.metrics.registry.getSingleMetricAsString('mailbag_recipients_delivered_total');
  t.match(delivered, new RegExp(`nexthop="smtp://127\\.0\\.0\\.1:${sink.port}"\\} 1`));
  t.match(delivered, /nexthop="maildir:[^"]+"\} 1/);
  const spoolPath = gw.store.queue.message(qid!)!.spool_path;
  await waitFor(() => !existsSync(spoolPath), 2000, 'spool file removal');
  t.pass('spool file removed once every recipient is final');
});

t.test('EHLO advertises what the issue asks for', async (t) => {
  const { dir, cleanup } = tempDir('ehlo');
  const gw = await startGateway(testConfig(dir, { smtp: { maxMessageBytes: 1000 } }));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const { RawSmtp } = await import('./helpers/gateway.js');
  const c = await RawSmtp.open(gw.smtpAddress().port);
  t.match(await c.reply(), /^220 mx\.test\.invalid/);
  const ehlo = await c.cmd('EHLO client.test');
  for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'SIZE 1000']) t.match(ehlo, new RegExp(`^250[- ]${ext}$`, 'm'), ext);
  t.notMatch(ehlo, /STARTTLS/, 'no STARTTLS without a configured certificate');
  t.notMatch(ehlo, /AUTH/, 'no AUTH without configured users');
  t.match(await c.cmd('STARTTLS'), /^5\d\d /, 'STARTTLS is refused, never served with the built-in certificate');
  c.close();
});

t.test('stop() tells idle clients 421 and closes their connections', async (t) => {
  const { dir, cleanup } = tempDir('stop');
  t.teardown(cleanup);
  const gw = await startGateway(testConfig(dir));
  const { RawSmtp } = await import('./helpers/gateway.js');
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO idle.test');
  await gw.stop();
  t.match(await c.reply(), /^421 4\.3\.2 /);
  // Promptly means without waiting for the idle timeout (smtp.socketTimeout, 5 min here):
  // the close is an event, so the wait for it is a generous bound, not a measured duration.
  await waitFor(() => c.closed, 30_000, 'the socket to close');
  c.close();
});
