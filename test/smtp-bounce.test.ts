import t from 'tap';
import { simpleParser } from 'mailparser';
import {
  BounceError,
  buildDeliveryStatusNotification,
  SUBJECT_DELAYED,
  SUBJECT_FAILED,
  type BounceInput,
} from '../src/delivery/bounce.js';

const arrival = new Date('2026-11-24T08:00:00Z');
const now = new Date('2026-11-25T09:30:05Z');
const original = Buffer.from(
  'Received: from client (127.0.0.1) by mx\r\nFrom: Bob <bob@example.org>\r\nTo: al@example.test\r\n' +
    'Subject: quarterly figures\r\nMessage-ID: <orig-1@example.org>\r\n\r\nthe body must not be attached\r\n',
);

function input(over: Partial<BounceInput> = {}): BounceInput {
  return {
    reportingMta: 'mx.example.test',
    qid: '4ZK2QF0001',
    envelopeFrom: 'bob@example.org',
    arrivalDate: arrival,
    recipients: [
      {
        address: 'al@example.test',
        action: 'failed',
        status: '5.1.1',
        diagnosticCode: 'smtp; 550 5.1.1 <al@example.test>: no such user',
        remoteMta: 'next.example.test',
        lastAttemptAt: new Date('2026-11-25T09:30:00Z'),
      },
      {
        address: 'cy@example.test',
        action: 'failed',
        status: '5.4.7',
        diagnosticCode: '421 4.4.2 timeout', // bare reply: gets the smtp; type
        lastAttemptAt: new Date('2026-11-25T09:29:00Z'),
      },
    ],
    originalHeaders: original,
    now,
    ...over,
  };
}

/** Splits a multipart body by its boundary; returns each part's [headers, body]. */
function parts(raw: Buffer, boundary: string): Array<{ headers: string; body: Buffer }> {
  const text = raw.toString('latin1');
  const chunks = text.split(`\r\n--${boundary}`);
  chunks.shift(); // preamble
  const out = [];
  for (const c of chunks) {
    if (c.startsWith('--')) break;
    const body = c.slice(2); // CRLF after the boundary line
    const sep = body.indexOf('\r\n\r\n');
    out.push({ headers: body.slice(0, sep), body: Buffer.from(body.slice(sep + 4), 'latin1') });
  }
  return out;
}

/** message/delivery-status: blocks of `Name: value` fields separated by blank lines (folded lines joined). */
function dsnBlocks(body: string): Array<Map<string, string>> {
  return body
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n\r\n')
    .filter((b) => b.trim() !== '')
    .map((b) => new Map(b.split('\r\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

t.test('failed recipients: headers, three parts and every DSN field', async (t) => {
  const raw = buildDeliveryStatusNotification(input());
  const mail = await simpleParser(raw);
  t.equal(mail.from?.value[0]?.address, 'MAILER-DAEMON@mx.example.test');
  t.equal(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined, 'bob@example.org');
  t.equal(mail.subject, SUBJECT_FAILED);
  t.equal(mail.headers.get('auto-submitted'), 'auto-replied');
  t.equal(mail.date?.toISOString(), now.toISOString());
  t.match(mail.messageId, /^<[^<>@\s]+@mx\.example\.test>$/);
  const ct = mail.headers.get('content-type') as { value: string; params: Record<string, string> };
  t.equal(ct.value, 'multipart/report');
  t.equal(ct.params['report-type'], 'delivery-status');
  t.equal(mail.headers.get('content-transfer-encoding'), '7bit', 'all-ASCII DSN stays 7-bit');
  t.notOk(/[^\x00-\x7f]/.test(raw.toString('latin1')), 'no 8-bit bytes at all');

  const ps = parts(raw, ct.params.boundary!);
  t.equal(ps.length, 3);
  t.match(ps[0]!.headers, /Content-Type: text\/plain/);
  t.match(ps[1]!.headers, /Content-Type: message\/delivery-status/);
  t.match(ps[2]!.headers, /Content-Type: text\/rfc822-headers/);

  const human = ps[0]!.body.toString();
  t.match(human, /could not\r\nbe delivered/);
  t.match(human, /4ZK2QF0001/);
  t.match(human, /<al@example\.test>: delivery failed \(host next\.example\.test\): smtp; 550 5\.1\.1/);
  t.match(human, /<cy@example\.test>: delivery failed: 421 4\.4\.2 timeout/);

  const [msg, r1, r2, extra] = dsnBlocks(ps[1]!.body.toString());
  t.equal(extra, undefined, 'one per-message block and one block per recipient');
  t.equal(msg!.get('reporting-mta'), 'dns; mx.example.test');
  t.equal(msg!.get('x-mailbag-queue-id'), '4ZK2QF0001');
  t.equal(msg!.get('x-mailbag-sender'), 'rfc822; bob@example.org');
  t.equal(msg!.get('arrival-date'), 'Tue, 24 Nov 2026 08:00:00 +0000');
  t.notOk(msg!.has('original-envelope-id'), 'no ENVID given, none invented');
  t.same(Object.fromEntries(r1!), {
    'final-recipient': 'rfc822; al@example.test',
    action: 'failed',
    status: '5.1.1',
    'remote-mta': 'dns; next.example.test',
    'diagnostic-code': 'smtp; 550 5.1.1 <al@example.test>: no such user',
    'last-attempt-date': 'Wed, 25 Nov 2026 09:30:00 +0000',
  });
  t.same(Object.fromEntries(r2!), {
    'final-recipient': 'rfc822; cy@example.test',
    action: 'failed',
    status: '5.4.7',
    'diagnostic-code': 'smtp; 421 4.4.2 timeout',
    'last-attempt-date': 'Wed, 25 Nov 2026 09:29:00 +0000',
  });

  const headersAttachment = mail.attachments.find((a) => a.contentType === 'text/rfc822-headers');
  t.ok(headersAttachment, 'mailparser sees the original headers part');
  t.equal(
    ps[2]!.body.toString(),
    original.toString().slice(0, original.indexOf('\r\n\r\n') + 2),
    'original header section verbatim, body left out',
  );
});

t.test('delayed recipients: warning subject, Will-Retry-Until, ENVID when known', async (t) => {
  const until = new Date('2026-11-29T08:00:00Z');
  const raw = buildDeliveryStatusNotification(
    input({
      envelopeId: 'client-envid-7',
      recipients: [{ address: 'al@example.test', action: 'delayed', status: '4.4.1', diagnosticCode: 'X-Mailbag; connection refused', willRetryUntil: until }],
    }),
  );
  const mail = await simpleParser(raw);
  t.equal(mail.subject, SUBJECT_DELAYED);
  const ct = mail.headers.get('content-type') as { params: Record<string, string> };
  const ps = parts(raw, ct.params.boundary!);
  t.match(ps[0]!.body.toString(), /THIS IS A WARNING ONLY/);
  t.match(ps[2]!.headers, /Delayed Message Headers/);
  const [msg, r1] = dsnBlocks(ps[1]!.body.toString());
  t.equal(msg!.get('original-envelope-id'), 'client-envid-7');
  t.equal(r1!.get('action'), 'delayed');
  t.equal(r1!.get('status'), '4.4.1');
  t.equal(r1!.get('diagnostic-code'), 'X-Mailbag; connection refused', 'a typed diagnostic keeps its type');
  t.equal(r1!.get('will-retry-until'), 'Sun, 29 Nov 2026 08:00:00 +0000');
  t.notOk(r1!.has('remote-mta'));
});

t.test('8-bit original headers are attached byte for byte and declared 8bit', async (t) => {
  const latin1 = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\r\n')]);
  const utf8 = Buffer.from('From: Zoë <zoe@example.org>\r\n', 'utf8');
  const headers = Buffer.concat([latin1, utf8, Buffer.from('\r\n')]);
  const raw = buildDeliveryStatusNotification(input({ originalHeaders: headers }));
  const mail = await simpleParser(raw);
  t.equal(mail.headers.get('content-transfer-encoding'), '8bit');
  const ct = mail.headers.get('content-type') as { params: Record<string, string> };
  const ps = parts(raw, ct.params.boundary!);
  t.match(ps[2]!.headers, /Content-Transfer-Encoding: 8bit/);
  t.same(ps[2]!.body, Buffer.concat([latin1, utf8]), 'exact bytes, no re-encoding');
  t.match(ps[1]!.headers, /Content-Transfer-Encoding: 7bit/, 'the report itself stays 7-bit');
  t.notOk(/[^\x00-\x7f]/.test(ps[1]!.body.toString('latin1')));
});

t.test('non-ASCII envelope addresses: RFC 6533 utf-8 type, 7-bit report part', async (t) => {
  const raw = buildDeliveryStatusNotification(
    input({
      envelopeFrom: 'zoë@example.org',
      recipients: [{ address: 'jürgen@example.test', action: 'failed', status: '5.1.1', diagnosticCode: '550 no such user jürgen' }],
    }),
  );
  const mail = await simpleParser(raw);
  t.equal(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined, 'zoë@example.org', 'UTF-8 To: (RFC 6532)');
  t.equal(mail.headers.get('content-transfer-encoding'), '8bit');
  const ct = mail.headers.get('content-type') as { params: Record<string, string> };
  const ps = parts(raw, ct.params.boundary!);
  const [msg, r1] = dsnBlocks(ps[1]!.body.toString());
  t.equal(msg!.get('x-mailbag-sender'), 'utf-8; zo\\x{EB}@example.org');
  t.equal(r1!.get('final-recipient'), 'utf-8; j\\x{FC}rgen@example.test');
  t.equal(r1!.get('diagnostic-code'), 'smtp; 550 no such user j\\x{FC}rgen');
  t.notOk(/[^\x00-\x7f]/.test(ps[1]!.body.toString('latin1')));
});

t.test('hostile values cannot inject header lines; long diagnostics are folded', async (t) => {
  const long = 'smtp; 550 5.7.1 ' + 'policy rejection reason '.repeat(10);
  const raw = buildDeliveryStatusNotification(
    input({
      envelopeFrom: 'bob@example.org\r\nBcc: victim@example.net',
      recipients: [{ address: 'al@example.test\r\nX-Evil: 1', action: 'failed', status: '5.7.1', diagnosticCode: long }],
    }),
  );
  const text = raw.toString('latin1');
  t.notMatch(text, /\r\nBcc:/);
  t.notMatch(text, /\r\nX-Evil:/);
  for (const line of text.split('\r\n')) t.ok(line.length <= 998, 'RFC 5322 line limit');
  const mail = await simpleParser(raw);
  const ct = mail.headers.get('content-type') as { params: Record<string, string> };
  const body = parts(raw, ct.params.boundary!)[1]!.body.toString();
  t.ok(body.split('\r\n').every((l) => l.length <= 80), 'diagnostic folded near 78 columns');
  const [, r1] = dsnBlocks(body);
  t.equal(r1!.get('diagnostic-code'), long.trim(), 'unfolds to the original text');
});

t.test('the boundary never occurs in the attached headers', async (t) => {
  for (let i = 0; i < 20; i++) {
    const raw = buildDeliveryStatusNotification(input());
    const mail = await simpleParser(raw);
    const b = (mail.headers.get('content-type') as { params: Record<string, string> }).params.boundary!;
    t.equal(raw.toString('latin1').split(`--${b}`).length, 5, 'three parts, one close delimiter');
  }
});

t.test('bad input is a typed error', async (t) => {
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'no error';
    } catch (err) {
      return err instanceof BounceError ? err.code : String(err);
    }
  };
  t.equal(code(() => buildDeliveryStatusNotification(input({ envelopeFrom: '' }))), 'ERR_BOUNCE_NULL_SENDER');
  t.equal(code(() => buildDeliveryStatusNotification(input({ envelopeFrom: '<>' }))), 'ERR_BOUNCE_NULL_SENDER');
  t.equal(code(() => buildDeliveryStatusNotification(input({ recipients: [] }))), 'ERR_BOUNCE_NO_RECIPIENTS');
  t.equal(
    code(() => buildDeliveryStatusNotification(input({ recipients: [{ address: 'a@b', action: 'failed', status: '550' }] }))),
    'ERR_BOUNCE_BAD_STATUS',
  );
  t.equal(
    code(() => buildDeliveryStatusNotification(input({ recipients: [{ address: 'a@b', action: 'failed', status: '4.4.1' }] }))),
    'ERR_BOUNCE_BAD_STATUS',
    'failed needs a 5.x.x status',
  );
});

t.test('empty or body-less original headers still give a well-formed report', async (t) => {
  const raw = buildDeliveryStatusNotification(input({ originalHeaders: Buffer.from('Subject: x\nFrom: a@b') }));
  const mail = await simpleParser(raw);
  const b = (mail.headers.get('content-type') as { params: Record<string, string> }).params.boundary!;
  const ps = parts(raw, b);
  t.equal(ps[2]!.body.toString(), 'Subject: x\r\nFrom: a@b\r\n', 'bare LF normalised, final CRLF added');
  const empty = buildDeliveryStatusNotification(input({ originalHeaders: Buffer.alloc(0) }));
  t.match(empty.toString(), /text\/rfc822-headers[\s\S]*--$/m);
});

t.test('success reports, Original-Recipient and the whole message returned', async (t) => {
  const relayed = buildDeliveryStatusNotification(
    input({ recipients: [{ address: 'al@example.test', action: 'relayed', status: '2.0.0', diagnosticCode: 'smtp; 250 ok', originalRecipient: 'rfc822;Al@Example.test' }] }),
  );
  const mail = await simpleParser(relayed);
  t.equal(mail.subject, 'Successful Mail Delivery Report');
  const b = (mail.headers.get('content-type') as { params: Record<string, string> }).params.boundary!;
  const [, block] = dsnBlocks(parts(relayed, b)[1]!.body.toString());
  t.equal(block!.get('original-recipient'), 'rfc822; Al@Example.test');
  t.equal(block!.get('action'), 'relayed');
  t.match(parts(relayed, b)[0]!.body.toString(), /<al@example\.test>: relayed/);
  t.throws(() => buildDeliveryStatusNotification(input({ recipients: [{ address: 'a@b', action: 'delivered', status: '5.0.0' }] })), { code: 'ERR_BOUNCE_BAD_STATUS' });

  const whole = Buffer.from('Subject: Grüße\r\nMIME-Version: 1.0\r\n\r\nthe body\r\n', 'utf8');
  const full = buildDeliveryStatusNotification(input({ originalMessage: whole, recipients: [{ address: 'jürgen@example.test', action: 'failed', status: '5.1.1', originalRecipient: 'utf-8;jürgen@example.test' }] }));
  const fb = (await simpleParser(full)).headers.get('content-type') as { params: Record<string, string> };
  const ps = parts(full, fb.params.boundary!);
  t.match(ps[2]!.headers, /Content-Type: message\/global/, '8-bit headers: message/global (RFC 6532)');
  t.match(ps[2]!.headers, /Content-Transfer-Encoding: 8bit/);
  t.same(ps[2]!.body, whole, 'the message byte for byte');
  const [, r] = dsnBlocks(ps[1]!.body.toString());
  t.equal(r!.get('original-recipient'), 'utf-8; j\\x{FC}rgen@example.test', 'non-ASCII ORCPT as RFC 6533 utf-8-addr-xtext');
});
