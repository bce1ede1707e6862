// SMTP in, imp:// route out, through the real gateway (queue on its own thread): an
// ACKNOWLEDGE yes is a delivery, an answer no is a failure bounced to the SMTP sender as
// an RFC 3464 report with the peer's reason, and a dropped connection is a deferral that
// the queue retries like any SMTP next hop. Metrics count bags, messages and answers.
import t from 'tap';
import nodemailer from 'nodemailer';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { maildirFiles, tempDir, testConfig, waitFor } from './helpers/gateway.js';
import { startImpPeer } from './helpers/imp-peer.js';
import { join } from 'node:path';
import { mailboxAddress } from '../src/imp/mime/from-imp.js';

const BODY = Buffer.from('From: ann@sender.test\r\nTo: team@far.test\r\nSubject: over IMP\r\n\r\nhello over IMP\r\n');

async function send(gw: Gateway, to: string[]): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to }, raw: BODY });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

t.test('imp:// route: yes delivered, no bounced with the reason, a dropped bag re-shipped', { timeout: 60_000 }, async (t) => {
  const peer = await startImpPeer();
  t.teardown(() => peer.close());
  peer.scripts.push('drop'); // the first bag is lost with its connection
  peer.fallback = (_m, rcpt) => (rcpt.startsWith('nobody@') ? { answer: false, reasons: ['no such user'] } : { answer: true, reasons: ['OK'] });
  const { dir, cleanup } = tempDir('imp-route');
  const mailboxes = join(dir, 'mailboxes');
  const config = testConfig(dir, {
    smtp: { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'] },
    routes: [
      { domain: 'far.test', nexthop: peer.url },
      { domain: 'sender.test', nexthop: `maildir:${mailboxes}` },
    ],
    imp: { ihn: 167772404 },
  });
  const gw = await startGateway(config, { pollMs: 30 });
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const qid = await send(gw, ['dave@far.test', 'nobody@far.test']);
  const rows = await waitFor(() => {
    const r = gw.store.queue.recipients(qid);
    return r.every((x) => x.state === 'delivered' || x.state === 'failed') ? r : undefined;
  }, 30_000, 'both recipients final');
  const by = Object.fromEntries(rows.map((r) => [r.rcpt, r]));
  t.equal(by['dave@far.test']!.state, 'delivered');
  t.match(by['dave@far.test']!.last_reply, /^250 2\.0\.0 IMP ACKNOWLEDGE yes \(OK; ACCEPT\) trail 167772404,167772359$/);
  t.equal(by['nobody@far.test']!.state, 'failed');
  t.match(by['nobody@far.test']!.last_reply, /^550 5\.1\.1 IMP ACKNOWLEDGE no: no such user/);
  const [lost, ...reshipped] = peer.bags;
  t.equal(lost!.messages.length, 2, 'the first bag: both recipients');
  t.same(lost!.messages[1]!.shared, { header: lost!.messages[0]!.tid, body: lost!.messages[0]!.tid }, 'one document, shared by tid');
  // Retried recipients each get their own jittered retry time, so they may travel apart.
  const again = reshipped.flatMap((b) => b.messages.map((m) => mailboxAddress(m.command.mailbox, 'mailbox')));
  t.same(again.sort(), ['dave@far.test', 'nobody@far.test'], 'each recipient re-shipped once');
  t.ok(by['dave@far.test']!.attempts >= 2, 'the first attempt was deferred');

  // The bounce: an RFC 3464 report to the SMTP sender, with the peer's reason.
  const bounce = await waitFor(() => maildirFiles(mailboxes, 'sender.test', 'ann')[0], 30_000, 'the bounce');
  const text = bounce.bytes.toString('latin1');
  t.match(text, /Content-Type: multipart\/report;[^\r\n]*report-type=delivery-status/i);
  t.match(text, /Final-Recipient: rfc822; ?nobody@far\.test/i);
  t.match(text, /Action: failed/);
  t.match(text, /Status: 5\.1\.1/);
  t.match(text, /Diagnostic-Code: [^\r\n]*IMP ACKNOWLEDGE no: no such user/);
  t.notMatch(text, /Final-Recipient: rfc822; ?dave@far\.test/i, 'the delivered recipient is not in the bounce');

  const label = `peer="${peer.url}"`;
  // The queue thread posts its answers to the metrics by message: they can arrive after the store shows the result.
  const yes = new RegExp(`mailbag_imp_acknowledgements_total\\{${label},answer="yes"\\} 1`);
  const metrics = await waitFor(async () => {
    const m = await gw.metrics.registry.metrics();
    return yes.test(m) ? m : undefined;
  }, 30_000, 'the metrics of every answer');
  t.match(metrics, new RegExp(`mailbag_imp_bags_out_total\\{${label}\\} ${peer.bags.length}\n`));
  t.match(metrics, new RegExp(`mailbag_imp_messages_out_total\\{${label}\\} 4\n`));
  t.match(metrics, new RegExp(`mailbag_imp_acknowledgements_total\\{${label},answer="yes"\\} 1`));
  t.match(metrics, new RegExp(`mailbag_imp_acknowledgements_total\\{${label},answer="no"\\} 1`));
  t.match(metrics, new RegExp(`mailbag_imp_acknowledgements_total\\{${label},answer="none"\\} 2`));
  t.match(metrics, new RegExp(`mailbag_delivery_attempt_duration_seconds_count\\{nexthop="${peer.url.replace(/\//g, '\\/')}",outcome="deferred"\\} 1`), 'per-peer attempt durations');
  t.equal(gw.store.impTns.mark(167772404), 256, 'the tn high-water mark is one block ahead');
});
