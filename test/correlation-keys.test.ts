import t from 'tap';
import { extractCorrelationKeys, normaliseMessageId, parseReceivedBy, previousMailbagQid, queuedAsQid } from '../src/store/correlation-keys.js';

t.test('Message-ID: angle brackets, comments, white space and domain case', async (t) => {
  t.equal(normaliseMessageId(' <AbC.123@Mail.Example.COM> '), 'AbC.123@mail.example.com');
  t.equal(normaliseMessageId('(comment) <x@Y.test> (trailing)'), 'x@y.test');
  t.equal(normaliseMessageId('<local-only>'), 'local-only');
  t.equal(normaliseMessageId('<a\r\n @b.test>'), 'a@b.test', 'folded');
  t.equal(normaliseMessageId('<>'), undefined);
  t.equal(normaliseMessageId(undefined), undefined);
});

t.test('Received: the by host, its comment, with and id', async (t) => {
  t.same(parseReceivedBy('from mx1.upstream.example (mx1 [10.1.1.1]) by mx0a-001.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id 4b1x2y3z4k-1 (version=TLSv1.3 cipher=X) for <a@b.test>; Mon, 30 Nov 2026 08:00:00 +0000'), {
    by: 'mx0a-001.pphosted.com',
    comment: '8.18.1.2/8.18.1.2',
    id: '4b1x2y3z4k-1',
    with: 'ESMTPS',
  });
  t.same(parseReceivedBy('from a by B.Example with SMTP id <Q1>; date'), { by: 'b.example', comment: undefined, id: 'Q1', with: 'SMTP' });
  t.equal(parseReceivedBy('from a with SMTP; date'), undefined, 'no by clause');
});

t.test('keys: the topmost Received that is not mailbag, Message-ID, Proofpoint GUIDs', async (t) => {
  const header = [
    'Received: from mx0a-001.pphosted.com (mx0a-001.pphosted.com [10.2.2.2])',
    '\tby gw.example.test (mailbag) with ESMTP id 0MWVXTKU30000;',
    '\tMon, 30 Nov 2026 08:00:01 +0000',
    'Received: from sender.example (sender.example [192.0.2.1])',
    '\tby mx0a-001.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id 4b1x2y3z4k-1',
    '\tfor <a@example.test>; Mon, 30 Nov 2026 08:00:00 +0000',
    'Received: from inside.sender.example by sender.example with ESMTP id OLDER; Mon, 30 Nov 2026 07:59:00 +0000',
    'X-Proofpoint-GUID: AbCdEf123',
    'X-Proofpoint-ORIG-GUID: ZyX987',
    'Message-ID: <Msg.1@Sender.EXAMPLE>',
    'Subject: hello',
    '',
    'Received: in the body is not a header',
  ].join('\r\n');
  t.same(extractCorrelationKeys(header), {
    messageId: 'Msg.1@sender.example',
    upstreamQid: '4b1x2y3z4k-1',
    upstreamHost: 'mx0a-001.pphosted.com',
    proofpointGuid: 'AbCdEf123',
    proofpointOrigGuid: 'ZyX987',
  });
  t.same(extractCorrelationKeys(Buffer.from('Subject: none\n\nbody\n')), {
    messageId: undefined,
    upstreamQid: undefined,
    upstreamHost: undefined,
    proofpointGuid: undefined,
    proofpointOrigGuid: undefined,
  });
});

t.test('the mailbag qid in an upstream stat= text', async (t) => {
  t.equal(queuedAsQid('Sent (Ok: queued as 0MWVXTKU30000)'), '0MWVXTKU30000');
  t.equal(queuedAsQid('Sent (2.6.0 Ok: queued as 0MWVXTKU30001)'), '0MWVXTKU30001');
  t.equal(queuedAsQid('Sent (Ok: queued)'), undefined);
  t.equal(queuedAsQid('Deferred: Connection refused'), undefined);
});

t.test('the qid the nearest mailbag before us gave a message (an IMP forward links back to it)', async (t) => {
  const message = (...received: string[]) => Buffer.from([...received, 'Subject: s', '', 'Received: by body.test (mailbag) with ESMTP id 0MWVXTKU39999', ''].join('\r\n'));
  const ours = 'Received: from ihn 1 ([127.0.0.1])\r\n\tby relay.test (mailbag) with IMP id 0MWVXTKU30001\r\n\tfor <a@b.test>; Mon, 30 Nov 2026 08:00:02 +0000';
  const theirs = 'Received: from client (c [192.0.2.1])\r\n\tby origin.test (mailbag) with ESMTP id 0MWVXTKU30000;\r\n\tMon, 30 Nov 2026 08:00:01 +0000';
  const upstream = 'Received: from s by mx0a-001.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id 4b1x2y3z4k-1; Mon, 30 Nov 2026 08:00:00 +0000';
  t.equal(previousMailbagQid(message(ours, theirs, upstream)), '0MWVXTKU30001', 'the topmost of mailbag\'s');
  t.equal(previousMailbagQid(message(upstream, theirs)), '0MWVXTKU30000', 'below another MTA\'s');
  t.equal(previousMailbagQid(message(upstream)), undefined, 'no mailbag before us');
  t.equal(previousMailbagQid(message('Received: by x.test (mailbag) with IMP id not-a-qid; date', theirs)), undefined, 'the nearest mailbag\'s id is not a qid: none');
  t.equal(previousMailbagQid(Buffer.from(ours)), '0MWVXTKU30001', 'a header section alone');
});
