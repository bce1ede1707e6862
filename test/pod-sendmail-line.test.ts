import t from 'tap';
import { parseSendmailLine, queuedAsOf, sendmailFields, splitRecipients, stripAngles } from '../src/pod/sendmail-line.js';
import { podFixture } from './helpers/pod-corpus.js';

const fields = (line: string) => sendmailFields(parseSendmailLine(line));

t.test("the document's example line", async (t) => {
  const example = JSON.parse(podFixture('document-maillog-example.json')) as { data: string };
  const line = parseSendmailLine(example.data);
  t.same(
    { time: line.time, host: line.host, program: line.program, pid: line.pid, qid: line.qid },
    { time: '2017-08-17T14:54:12.949180-07:00', host: 'example', program: 'sendmail', pid: 30641, qid: 'v7HLqYbx029423' },
  );
  t.same(line.equates, {
    to: '/dev/null',
    ctladdr: '<user1@example.com> (8/0)',
    delay: '00:00:00',
    xdelay: '00:00:00',
    mailer: '*file*',
    tls_verify: 'NONE',
    pri: '35342',
    dsn: '2.0.0',
    stat: 'Sent',
  });
  t.same(fields(example.data), {
    qid: 'v7HLqYbx029423',
    to: ['/dev/null'],
    stat: 'Sent',
    dsn: '2.0.0',
    delay: '00:00:00',
    xdelay: '00:00:00',
    mailer: '*file*',
    ctladdr: '<user1@example.com> (8/0)',
  });
});

t.test('corpus lines: from= with msgid, to= with an IPv6 relay and a stat text', async (t) => {
  const lines = podFixture('elastic-test-mail.jsonl')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { data: string }).data);
  t.same(fields(lines[2]!), {
    qid: '45ABSW12341234',
    from: 'mailive@example.com',
    relay: 'm0000123.ppops.net [127.0.0.1]',
    msgid: '<171012345678974.123456.3315712345678901186@test.example.net>',
    nrcpts: 1,
    size: 1557,
  });
  const to = parseSendmailLine(lines[1]!);
  t.equal(to.equates['relay'], 'abcd.example.net. [IPv6:2a02:cf40::]');
  t.equal(to.equates['stat'], 'Sent (Ok: queued)');
  t.equal(to.equates['cipher'], 'ECDHE-RSA-AES256-GCM');
  t.same(sendmailFields(to).to, ['mailive@example.com']);
  t.equal(sendmailFields(to).queuedAs, undefined, '"Ok: queued" names no queue id');
  for (const l of lines) t.ok(parseSendmailLine(l).qid, `every corpus line has a qid: ${l.slice(0, 60)}`);
});

t.test('values holding "=" stay whole where sm.* cuts them (VERP senders, message ids)', async (t) => {
  const line =
    '2024-06-19T05:28:32.325542-07:00 mx1 sendmail[17414]: 45ABSW12341234: from=<bounce-mc.us5_12345.678-alice=example.com@mail.example.net>, size=48211, class=-60, nrcpts=2, msgid=<CAH+w=7Lq=abc_DEF@mail.gmail.com>, bodytype=8BITMIME, proto=ESMTPS, daemon=MTA, relay=mail.example.net [192.0.2.7]';
  const f = fields(line);
  t.equal(f.from, 'bounce-mc.us5_12345.678-alice=example.com@mail.example.net');
  t.equal(f.msgid, '<CAH+w=7Lq=abc_DEF@mail.gmail.com>');
  t.equal(f.nrcpts, 2);
  t.equal(f.size, 48211);
  t.equal(parseSendmailLine(line).equates['class'], '-60');
  t.equal(f.relay, 'mail.example.net [192.0.2.7]');
});

t.test('stat=Sent (... queued as QID): the rest of the line is the stat text', async (t) => {
  const line =
    'Aug 17 14:54:13 mx1 sendmail[30642]: v7HLqYbx029423: to=<a@example.com>,<b@example.com>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120812, relay=mailbag.example.net. [10.0.0.5], dsn=2.0.0, stat=Sent (2.6.0 Ok: queued as 0MWVXTKU30000, key=value, see x=y)';
  const line2 = parseSendmailLine(line);
  t.equal(line2.time, 'Aug 17 14:54:13', 'BSD syslog time');
  t.equal(line2.host, 'mx1');
  const f = sendmailFields(line2);
  t.same(f.to, ['a@example.com', 'b@example.com']);
  t.equal(f.stat, 'Sent (2.6.0 Ok: queued as 0MWVXTKU30000, key=value, see x=y)');
  t.equal(f.queuedAs, '0MWVXTKU30000');
  t.equal(queuedAsOf('Sent (250 2.0.0 Ok: queued as 4XyZ1k2Lm3z9b)'), '4XyZ1k2Lm3z9b', 'postfix reply');
  t.equal(queuedAsOf('Sent (OK id=1tAbCd-000XyZ-12)'), '1tAbCd-000XyZ-12', 'exim reply');
  t.equal(queuedAsOf('Deferred: Connection refused by mx.example.com.'), undefined);
});

t.test('quoted and angle-bracketed values keep their commas and spaces', async (t) => {
  const line =
    'v7HLqYbx029424: from=<"Smith, John"@example.com>, size=10, class=0, nrcpts=1, msgid=<x@y>, ctladdr="John Smith, Sales" <js@example.com> (1000/1000), relay=localhost';
  const l = parseSendmailLine(line);
  t.equal(l.qid, 'v7HLqYbx029424', 'a line without the syslog prefix still has its qid');
  t.equal(l.program, undefined);
  t.equal(l.equates['from'], '<"Smith, John"@example.com>');
  t.equal(sendmailFields(l).from, '"Smith, John"@example.com');
  t.equal(l.equates['ctladdr'], '"John Smith, Sales" <js@example.com> (1000/1000)');
  t.same(splitRecipients('<"a, b"@x>,c@y, <d@z>'), ['"a, b"@x', 'c@y', 'd@z']);
  t.equal(stripAngles('<>'), '', 'the null sender');
  t.equal(stripAngles('<a@x> (8/0)'), '<a@x> (8/0)', 'not one bracketed address');
  t.equal(fields('q1q1q1q1: from=<>, size=0, class=0, nrcpts=1, relay=localhost').from, '');
});

t.test('free text before the equates, NOQUEUE, and reject= as the last field', async (t) => {
  const milter = parseSendmailLine('2024-06-19T05:28:32-07:00 mx1 sendmail[1]: 45ABSW12341235: Milter: data, reject=550 5.7.1 Rejected by policy, see https://x.example/?a=b, c=d');
  t.equal(milter.text, 'Milter: data');
  t.equal(milter.equates['reject'], '550 5.7.1 Rejected by policy, see https://x.example/?a=b, c=d');
  const noqueue = parseSendmailLine('2024-06-19T05:28:32-07:00 mx1 sendmail[1]: NOQUEUE: connect from host.example [192.0.2.1]');
  t.equal(noqueue.qid, 'NOQUEUE');
  t.equal(noqueue.text, 'connect from host.example [192.0.2.1]');
  t.equal(sendmailFields(noqueue).qid, undefined, 'NOQUEUE is no queue id');
  const tls = parseSendmailLine('2024-06-19T05:28:32-07:00 mx1 sendmail[1]: STARTTLS=client, relay=mx.example, version=TLSv1.3, verify=FAIL, cipher=TLS_AES_256_GCM_SHA384, bits=256/256');
  t.equal(tls.qid, undefined);
  t.equal(tls.equates['STARTTLS'], 'client');
  t.equal(tls.equates['bits'], '256/256');
});

t.test('unterminated brackets and quotes are parse errors, not guesses', async (t) => {
  for (const [line, msg] of [
    ['q1q1q1q1: from=<alice@example.com, size=10, relay=x', /unterminated '<' in from=/],
    ['q1q1q1q1: ctladdr="open quote, size=10', /unterminated '"' in ctladdr=/],
    ['   ', /empty/],
  ] as const) {
    t.throws(() => parseSendmailLine(line), { code: 'ERR_POD_SENDMAIL_LINE', message: msg }, line);
  }
  t.equal(parseSendmailLine('q1q1q1q1: to=a@x, =b, stat=Sent').equates['to'], 'a@x, =b', 'a comma not followed by key= belongs to the value');
});
