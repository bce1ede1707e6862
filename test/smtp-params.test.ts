// MAIL FROM / RCPT TO parameters end to end: client -> mailbag -> smtp-server next hops
// that advertise or hide DSN, 8BITMIME and SMTPUTF8; DSNs land in the sender's Maildir.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { RawSmtp, maildirFiles, stripReceived, tempDir, testConfig, waitFor } from './helpers/gateway.js';
import { startParamSink, type ParamSink } from './helpers/param-sink.js';

interface Setup {
  gw: Gateway;
  sink: ParamSink;
  dir: string;
}

async function setup(t: Test, sinkOpts: Parameters<typeof startParamSink>[0]): Promise<Setup> {
  const { dir, cleanup } = tempDir('params');
  const sink = await startParamSink(sinkOpts);
  const config = testConfig(dir, {
    routes: [
      { domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` },
      { domain: '*', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
    smtp: { trustedNetworks: ['127.0.0.0/8'], localDomains: ['example.test'] },
  });
  const gw = await startGateway(config, { pollMs: 50 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  return { gw, sink, dir };
}

/** One transaction on a raw connection; returns every reply and the qid when queued. */
async function transaction(gw: Gateway, mail: string, rcpts: string[], data: Buffer | string): Promise<{ replies: string[]; qid?: string }> {
  const c = await RawSmtp.open(gw.smtpAddress().port);
  try {
    const replies = [await c.reply(), await c.cmd('EHLO client.test'), await c.cmd(mail)];
    for (const r of rcpts) replies.push(await c.cmd(r));
    const dataReply = await c.cmd('DATA');
    replies.push(dataReply);
    if (!dataReply.startsWith('354')) return { replies };
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
    c.write(bytes);
    c.write(bytes.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n');
    const end = await c.reply();
    replies.push(end);
    await c.cmd('QUIT');
    const qid = /queued as (\w+)/.exec(end)?.[1];
    return qid ? { replies, qid } : { replies };
  } finally {
    c.close();
  }
}

const BODY_8BIT = Buffer.from('From: ann@example.test\r\nTo: bob@remote.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n', 'utf8');

function bounces(gw: Gateway): string[] {
  return (gw.store.db.prepare("SELECT qid FROM messages WHERE envelope_from = ''").all() as { qid: string }[]).map((r) => r.qid);
}

/** The DSNs in ann@example.test's Maildir, parsed. */
async function dsns(dir: string) {
  return Promise.all(maildirFiles(join(dir, 'mailboxes'), 'example.test', 'ann').map(async (f) => ({ raw: f.bytes, mail: await simpleParser(f.bytes) })));
}

/** The message/delivery-status part's per-recipient fields, folded lines joined. */
function statusBlocks(raw: Buffer): Map<string, string>[] {
  const text = raw.toString('latin1');
  const start = text.indexOf('Content-Type: message/delivery-status');
  const body = text.slice(text.indexOf('\r\n\r\n', start) + 4, text.indexOf('\r\n--', start));
  return body
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n\r\n')
    .filter((b) => b.trim())
    .map((b) => new Map(b.split('\r\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

t.test('a next hop with DSN, 8BITMIME and SMTPUTF8 gets every parameter, per recipient, as the client wrote it', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  const { replies, qid } = await transaction(
    gw,
    'MAIL FROM:<ann@example.test> BODY=8BITMIME SIZE=200 RET=HDRS ENVID=QQ+2B1 SMTPUTF8',
    ['RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40remote.test', 'RCPT TO:<cy@remote.test> NOTIFY=NEVER'],
    BODY_8BIT,
  );
  t.ok(qid, `queued: ${replies.join(' | ')}`);
  t.match(replies[1], /250[- ]DSN/, 'mailbag advertises DSN');
  await waitFor(() => gw.store.queue.message(qid!)?.state === 'done', 5000, 'delivery');
  const got = sink.messages[0]!;
  const size = gw.store.queue.message(qid!)!.size;
  t.equal(got.mail, `MAIL FROM:<ann@example.test> BODY=8BITMIME SIZE=${size} RET=HDRS ENVID=QQ+2B1 SMTPUTF8`, 'MAIL FROM: BODY, SIZE (of what is sent), RET, ENVID as xtext, SMTPUTF8');
  // xtext is re-encoded from the decoded value: `+40` and `@` are the same ORCPT
  t.same(got.rcpts, ['RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@remote.test', 'RCPT TO:<cy@remote.test> NOTIFY=NEVER'], "each recipient's own NOTIFY and ORCPT");
  t.same(stripReceived(got.bytes), BODY_8BIT, 'the 8-bit message goes out unchanged');
  t.same(bounces(gw), [], 'NOTIFY=SUCCESS at a next hop with DSN is passed on: no report from mailbag');
  t.same(await dsns(dir), []);
});

t.test('SMTPUTF8 goes to the next hop only when the client used it', async (t) => {
  const { gw, sink } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  const a = await transaction(gw, 'MAIL FROM:<ann@example.test>', ['RCPT TO:<bob@remote.test>'], 'Subject: plain\r\n\r\nhi\r\n');
  const b = await transaction(gw, 'MAIL FROM:<ann@example.test> SMTPUTF8', ['RCPT TO:<bob@remote.test>'], 'Subject: plain\r\n\r\nhi\r\n');
  t.ok(a.qid && b.qid);
  await waitFor(() => sink.messages.length === 2, 5000, 'both delivered');
  const byQid = (q: string) => sink.messages.find((m) => m.bytes.includes(`id ${q}`))!;
  t.equal(byQid(a.qid!).mail, `MAIL FROM:<ann@example.test> SIZE=${gw.store.queue.message(a.qid!)!.size}`, 'no SMTPUTF8 the client did not ask for');
  t.equal(byQid(b.qid!).mail, `MAIL FROM:<ann@example.test> SIZE=${gw.store.queue.message(b.qid!)!.size} SMTPUTF8`, 'SMTPUTF8 the client asked for, with ASCII addresses');
});

t.test('malformed DSN parameters and UTF-8 addresses without SMTPUTF8 are refused at the command', async (t) => {
  const { gw } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  const c = await RawSmtp.open(gw.smtpAddress().port);
  t.teardown(() => c.close());
  await c.reply();
  await c.cmd('EHLO client.test');
  t.match(await c.cmd('MAIL FROM:<ann@example.test> ENVID=a+zz'), /^501 5\.5\.4 .*ENVID/, 'bad hexchar in ENVID');
  t.match(await c.cmd('MAIL FROM:<ann@example.test> ENVID=a=b'), /^501 5\.5\.4 .*ENVID/, 'raw = in ENVID');
  t.match(await c.cmd(`MAIL FROM:<ann@example.test> ENVID=${'x'.repeat(101)}`), /^501 5\.5\.4 .*100/, 'ENVID over 100 characters');
  t.match(await c.cmd('MAIL FROM:<zoë@example.test>'), /^553 5\.6\.7 /, 'UTF-8 sender without SMTPUTF8');
  t.match(await c.cmd('MAIL FROM:<ann@example.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<bob@remote.test> ORCPT=rfc822;bob@remote.test+'), /^501 5\.5\.4 .*ORCPT/, 'ORCPT with a dangling +');
  t.match(await c.cmd('RCPT TO:<bob@remote.test> ORCPT=rfc822;bob@remote test'), /^250 /, 'whitespace ends the parameter (the rest is another keyword)');
  t.match(await c.cmd('RCPT TO:<cy@remote.test> ORCPT=bad type;x'), /^501 /, 'ORCPT addr-type must be an atom');
  t.match(await c.cmd('RCPT TO:<dee@remote.test> NOTIFY=SOMETIMES'), /^501 5\.5\.4 /, 'NOTIFY values');
  t.match(await c.cmd('RCPT TO:<jürgen@remote.test>'), /^553 5\.6\.7 /, 'UTF-8 recipient without SMTPUTF8');
});

t.test('next hop without DSN: NOTIFY=SUCCESS gets a "relayed" report with ENVID and ORCPT', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: false, eightBitMime: true, smtpUtf8: true });
  const { qid } = await transaction(
    gw,
    'MAIL FROM:<ann@example.test> ENVID=env-42',
    ['RCPT TO:<bob@remote.test> NOTIFY=SUCCESS ORCPT=rfc822;Bob+40Remote.test', 'RCPT TO:<cy@remote.test>'],
    'Subject: tracked\r\n\r\nbody\r\n',
  );
  t.ok(qid);
  await waitFor(async () => (await dsns(dir)).length === 1, 5000, 'the relayed report');
  t.equal(sink.messages[0]!.mail, `MAIL FROM:<ann@example.test> SIZE=${gw.store.queue.message(qid!)!.size}`, 'no DSN parameters to a hop without DSN');
  t.same(sink.messages[0]!.rcpts, ['RCPT TO:<bob@remote.test>', 'RCPT TO:<cy@remote.test>']);
  const [report] = await dsns(dir);
  t.equal(report!.mail.subject, 'Successful Mail Delivery Report');
  const [msg, bob, extra] = statusBlocks(report!.raw);
  t.equal(extra, undefined, 'only bob asked for SUCCESS');
  t.equal(msg!.get('original-envelope-id'), 'env-42');
  t.equal(bob!.get('original-recipient'), 'rfc822; Bob@Remote.test', 'ORCPT decoded from xtext');
  t.equal(bob!.get('final-recipient'), 'rfc822; bob@remote.test');
  t.equal(bob!.get('action'), 'relayed');
  t.match(bob!.get('status'), /^2\./);
  t.ok(report!.mail.attachments.some((a) => a.contentType === 'text/rfc822-headers'), 'a success report carries headers only');
});

t.test('failures: NOTIFY=NEVER suppresses the bounce, RET=FULL returns the message, RET=HDRS the headers', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: false, eightBitMime: true, smtpUtf8: true });
  sink.rcptReply.set('gone@remote.test', { code: 550, message: '5.1.1 no such user' });
  const never = await transaction(gw, 'MAIL FROM:<ann@example.test> RET=FULL', ['RCPT TO:<gone@remote.test> NOTIFY=NEVER'], 'Subject: never\r\n\r\nbody one\r\n');
  await waitFor(() => gw.store.queue.message(never.qid!)?.state === 'done', 5000, 'the failure recorded');
  t.same(bounces(gw), [], 'NOTIFY=NEVER: no bounce');

  const full = await transaction(gw, 'MAIL FROM:<ann@example.test> RET=FULL ENVID=full-1', ['RCPT TO:<gone@remote.test> NOTIFY=FAILURE ORCPT=rfc822;gone+40remote.test'], 'Subject: full\r\n\r\nthe whole body comes back\r\n');
  const hdrs = await transaction(gw, 'MAIL FROM:<ann@example.test> RET=HDRS', ['RCPT TO:<gone@remote.test>'], 'Subject: hdrs\r\n\r\nthis body stays here\r\n');
  t.ok(full.qid && hdrs.qid);
  await waitFor(async () => (await dsns(dir)).length === 2, 5000, 'two bounces');
  const reports = await dsns(dir);
  const fullReport = reports.find((r) => r.raw.includes('full-1'))!;
  const hdrsReport = reports.find((r) => r !== fullReport)!;
  t.equal(fullReport.mail.subject, 'Undelivered Mail Returned to Sender');
  t.match(fullReport.raw.toString(), /Content-Type: message\/rfc822/, 'RET=FULL: message/rfc822');
  t.match(fullReport.raw.toString(), /the whole body comes back/, 'with the body');
  const [msg, gone] = statusBlocks(fullReport.raw);
  t.equal(msg!.get('original-envelope-id'), 'full-1');
  t.equal(gone!.get('original-recipient'), 'rfc822; gone@remote.test');
  t.equal(gone!.get('status'), '5.1.1');
  t.match(hdrsReport.raw.toString(), /Content-Type: text\/rfc822-headers/, 'RET=HDRS: headers only');
  t.notMatch(hdrsReport.raw.toString(), /this body stays here/);
});

t.test('no RET: a failure returns the headers (RFC 3461 4.3 leaves it to the MTA)', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  sink.rcptReply.set('gone@remote.test', { code: 550, message: '5.1.1 no such user' });
  const { qid } = await transaction(gw, 'MAIL FROM:<ann@example.test>', ['RCPT TO:<gone@remote.test>'], 'Subject: default\r\n\r\nsecret body\r\n');
  t.ok(qid);
  await waitFor(async () => (await dsns(dir)).length === 1, 5000, 'the bounce');
  const [report] = await dsns(dir);
  t.match(report!.raw.toString(), /text\/rfc822-headers/);
  t.notMatch(report!.raw.toString(), /secret body/);
});

const MULTIPART_8BIT = Buffer.from(
  [
    'From: ann@example.test',
    'To: bob@remote.test',
    'Subject: converted',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    'Content-Transfer-Encoding: 8bit',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Grüße aus Köln, trailing space ',
    '--b1',
    'Content-Type: application/octet-stream',
    '',
    '\u00ff\u00fe binary-ish',
    '--b1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'plain ascii stays',
    '--b1--',
    '',
  ].join('\r\n'),
  'utf8',
);

t.test('8-bit mail to a next hop without 8BITMIME is converted to 7-bit MIME', async (t) => {
  const { gw, sink } = await setup(t, { dsn: true, eightBitMime: false, smtpUtf8: false });
  const { qid } = await transaction(gw, 'MAIL FROM:<ann@example.test> BODY=8BITMIME', ['RCPT TO:<bob@remote.test>'], MULTIPART_8BIT);
  t.ok(qid);
  await waitFor(() => sink.messages.length === 1, 5000, 'delivery');
  const got = sink.messages[0]!;
  t.notMatch(got.mail, /BODY=8BITMIME/, 'no BODY=8BITMIME to a hop that does not offer it');
  t.notOk(/[^\x00-\x7f]/.test(got.bytes.toString('latin1')), 'only 7-bit bytes reach the next hop');
  t.match(got.bytes.toString(), /Content-Transfer-Encoding: quoted-printable/, 'text as quoted-printable');
  t.match(got.bytes.toString(), /Content-Transfer-Encoding: base64/, 'other parts as base64');
  t.match(got.bytes.toString(), /plain ascii stays/, 'a 7-bit part is left alone');
  const original = await simpleParser(MULTIPART_8BIT);
  const converted = await simpleParser(got.bytes);
  t.equal(converted.text, original.text, 'the text reads the same');
  t.same(converted.attachments.map((a) => a.content), original.attachments.map((a) => a.content), 'the attachment bytes are the same');
  t.match(got.mail, new RegExp(`SIZE=${got.bytes.length}$`), 'SIZE is the size of what is sent');
});

t.test('8-bit that cannot be converted bounces with 5.6.3; UTF-8 mail to a hop without SMTPUTF8 with 5.6.7', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: true, eightBitMime: false, smtpUtf8: false });
  const header8 = await transaction(gw, 'MAIL FROM:<ann@example.test> BODY=8BITMIME', ['RCPT TO:<bob@remote.test>'], Buffer.from('Subject: Grüße\r\n\r\nbody\r\n', 'utf8'));
  const rfc822 = Buffer.from('MIME-Version: 1.0\r\nContent-Type: message/partial; id=x; number=1\r\n\r\nFrom: a@b\r\n\r\nKöln\r\n', 'utf8');
  const partial = await transaction(gw, 'MAIL FROM:<ann@example.test> BODY=8BITMIME', ['RCPT TO:<cy@remote.test>'], rfc822);
  const utf8 = await transaction(gw, 'MAIL FROM:<ann@example.test> SMTPUTF8', ['RCPT TO:<dee@remote.test>'], Buffer.from('Subject: Grüße\r\n\r\nbody\r\n', 'utf8'));
  const ascii = await transaction(gw, 'MAIL FROM:<ann@example.test> SMTPUTF8', ['RCPT TO:<eve@remote.test>'], 'Subject: plain\r\n\r\nbody\r\n');
  t.ok(header8.qid && partial.qid && utf8.qid && ascii.qid);
  await waitFor(async () => (await dsns(dir)).length === 3, 5000, 'three bounces');
  const statuses = new Map<string, string>();
  for (const r of await dsns(dir)) {
    const [, block] = statusBlocks(r.raw);
    statuses.set(block!.get('final-recipient')!, `${block!.get('status')} ${block!.get('diagnostic-code')}`);
  }
  t.match(statuses.get('rfc822; bob@remote.test'), /^5\.6\.3 smtp; 554 5\.6\.3 .*header/, '8-bit header: 5.6.3');
  t.match(statuses.get('rfc822; cy@remote.test'), /^5\.6\.3 .*message\/partial/, '8-bit message/partial: 5.6.3');
  t.match(statuses.get('rfc822; dee@remote.test'), /^5\.6\.7 .*SMTPUTF8 is required/, 'UTF-8 header without SMTPUTF8 at the hop: 5.6.7');
  await waitFor(() => sink.messages.length === 1, 5000, 'the ASCII SMTPUTF8 message');
  t.same(sink.messages[0]!.rcpts, ['RCPT TO:<eve@remote.test>'], 'SMTPUTF8 mail that needs none goes out as plain mail');
  t.notMatch(sink.messages[0]!.mail, /SMTPUTF8/);
});

t.test('address rules: postmaster without a domain, punycode as written, percent hack and bang paths refused', async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  const pm = await transaction(gw, 'MAIL FROM:<ann@example.test>', ['RCPT TO:<Postmaster>'], 'Subject: to the postmaster\r\n\r\nhello\r\n');
  t.match(pm.replies[3], /^250 /, `RCPT TO:<Postmaster> accepted: ${pm.replies[3]}`);
  t.ok(pm.qid);
  await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'postmaster').length === 1, 5000, "postmaster@example.test's Maildir");
  t.same(gw.store.queue.recipients(pm.qid!).map((r) => [r.rcpt, r.dsn_orcpt]), [['postmaster@example.test', 'rfc822;Postmaster']], 'routed to postmaster at the first local domain, ORCPT keeps what was written');

  const puny = await transaction(gw, 'MAIL FROM:<ann@xn--bcher-kva.example>', ['RCPT TO:<bob@xn--bcher-kva.example>'], 'Subject: idn\r\n\r\nhello\r\n');
  t.ok(puny.qid);
  await waitFor(() => sink.messages.length === 1, 5000, 'the punycode recipient');
  t.equal(sink.messages[0]!.mail, `MAIL FROM:<ann@xn--bcher-kva.example> SIZE=${gw.store.queue.message(puny.qid!)!.size}`, 'sender relayed as written, no SMTPUTF8');
  t.same(sink.messages[0]!.rcpts, ['RCPT TO:<bob@xn--bcher-kva.example>'], 'recipient relayed as written, never turned into UTF-8');

  const c = await RawSmtp.open(gw.smtpAddress().port);
  t.teardown(() => c.close());
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<ann@example.test>');
  t.match(await c.cmd('RCPT TO:<carl%elsewhere.test@example.test>'), /^550 5\.7\.1 Percent-hack/, 'percent hack refused');
  t.match(await c.cmd('RCPT TO:<elsewhere.test!carl@example.test>'), /^550 5\.7\.1 .*bang-path/, 'bang path refused');
  t.match(await c.cmd('RCPT TO:<"carl%x"@remote.test>'), /^550 5\.7\.1 /, 'also when quoted');
});

t.test('final delivery (Maildir) with NOTIFY=SUCCESS gets a "delivered" report', async (t) => {
  const { gw, dir } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  const { qid } = await transaction(gw, 'MAIL FROM:<ann@example.test> ENVID=local-1', ['RCPT TO:<carol@example.test> NOTIFY=SUCCESS,FAILURE'], 'Subject: local\r\n\r\nhello\r\n');
  t.ok(qid);
  await waitFor(async () => (await dsns(dir)).length === 1, 5000, 'the delivered report');
  const [report] = await dsns(dir);
  const [msg, carol] = statusBlocks(report!.raw);
  t.equal(msg!.get('original-envelope-id'), 'local-1');
  t.equal(carol!.get('final-recipient'), 'rfc822; carol@example.test');
  t.equal(carol!.get('action'), 'delivered');
  t.equal(maildirFiles(join(dir, 'mailboxes'), 'example.test', 'carol').length, 1, 'and the message itself');
});

t.test("a message over the next hop's SIZE limit fails with 5.3.4 instead of being retried", async (t) => {
  const { gw, sink, dir } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true, size: 200 });
  const { qid } = await transaction(gw, 'MAIL FROM:<ann@example.test>', ['RCPT TO:<bob@remote.test>'], `Subject: big\r\n\r\n${'x'.repeat(300)}\r\n`);
  t.ok(qid);
  await waitFor(async () => (await dsns(dir)).length === 1, 5000, 'the bounce');
  const [, block] = statusBlocks((await dsns(dir))[0]!.raw);
  t.equal(block!.get('status'), '5.3.4');
  t.equal(gw.store.queue.attempts(qid!).length, 1, 'one attempt, no retries');
  t.same(sink.messages, []);
});

t.test('xtext carries octets: UTF-8 written as +XX is passed on and reported as the same characters', async (t) => {
  const { gw, sink } = await setup(t, { dsn: true, eightBitMime: true, smtpUtf8: true });
  // ü is C3 BC in UTF-8: a client without SMTPUTF8 can only write it as xtext
  const { replies, qid } = await transaction(gw, 'MAIL FROM:<ann@example.test> ENVID=id+2Bone', ['RCPT TO:<bob@remote.test> NOTIFY=FAILURE ORCPT=rfc822;j+C3+BCrgen+40remote.test'], 'Subject: x\r\n\r\nhi\r\n');
  t.ok(qid, `queued: ${replies.join(' | ')}`);
  await waitFor(() => gw.store.queue.message(qid!)?.state === 'done', 5000, 'delivery');
  t.equal((gw.store.db.prepare('SELECT dsn_orcpt FROM recipients WHERE qid = ?').get(qid!) as { dsn_orcpt: string }).dsn_orcpt, 'rfc822;jürgen@remote.test', 'stored as the characters the octets spell');
  t.same(sink.messages[0]!.rcpts, ['RCPT TO:<bob@remote.test> NOTIFY=FAILURE ORCPT=rfc822;j+C3+BCrgen@remote.test'], 'relayed as the same octets, not encoded twice');
});
