// The end-to-end test: a message goes through the SMTP path while a PoD publisher
// plays the upstream filter's events for it, and the gateway's own PoD consumer takes them
// in; `mailbag trace` by each of the four key kinds shows both sides in one timeline.
//
// The upstream is the real publisher module playing PoD-shaped events
// (test/helpers/pod-played-publisher.ts), not a second mailbag: a mailbag upstream's events
// would link only through the stat line, since mailbag skips its own Received fields when
// it looks for the upstream queue id, sets no X-Proofpoint-GUID, and publishes guid = qid,
// so the guid key could not be told from the upstream qid. PoD's events carry all four.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import t from 'tap';
import { startGateway } from '../src/gateway/gateway.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { maildirFiles, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';
import { maillogEvent, messageEvent } from './helpers/pod-events.js';
import { reservePlayedPublisher } from './helpers/pod-played-publisher.js';

const UPSTREAM = '4AUGx1Zq012345';
const GUID = 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x';
const MESSAGE_ID = '<20261130.4AUGx1Zq012345@Sender.TEST>';

// RFC 8255 example 8.2 (Spanish and English) as the upstream filter relays it to mailbag.
const MESSAGE = Buffer.concat([
  Buffer.from(
    [
      'Received: from mail.sender.test (mail.sender.test [192.0.2.10])',
      `\tby mx0a-00123.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id ${UPSTREAM}`,
      '\tfor <ana@example.test>; Mon, 30 Nov 2026 02:12:01 -0700',
      `X-Proofpoint-GUID: ${GUID}`,
      `Message-ID: ${MESSAGE_ID}`,
      '',
    ].join('\r\n'),
  ),
  readFileSync(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url)),
]);

interface Json {
  by: string;
  matches: { mailbagQids: string[]; upstreamQids: string[]; links: { via: string }[]; timeline: { hop: string; kind: string; atUs: number; data: Record<string, unknown> }[] }[];
}

t.test('a message through the SMTP path while a PoD publisher plays its events: trace by each key kind shows both hops in one timeline', async (t) => {
  const { dir, cleanup } = tempDir('trace-e2e');
  t.teardown(cleanup);
  const upstream = { message: await reservePlayedPublisher(dir, 'message'), maillog: await reservePlayedPublisher(dir, 'maillog') };
  const mailboxes = join(dir, 'mailboxes');
  const overrides = {
    routes: [{ domain: 'example.test', nexthop: `maildir:${mailboxes}` }],
    multilingual: { mode: 'select', verifyDkim: false },
    pod: {
      streams: [
        { name: 'upstream-message', url: upstream.message.url, cid: upstream.message.cid, type: 'message', token: upstream.message.token() },
        { name: 'upstream-maillog', url: upstream.maillog.url, cid: upstream.maillog.cid, type: 'maillog', token: upstream.maillog.token() },
      ],
      batchDelay: 20,
      // the publishers start after the gateway: its consumer retries until they listen
      reconnectInitial: 20,
      reconnectMax: 100,
    },
  };
  const config = testConfig(dir, overrides);
  const cfg = writeTestConfig(dir, overrides);
  {
    const store = Store.open(config.store.path);
    store.users.set('ana@example.test', 'es');
    store.users.set('ben@example.test', 'en');
    store.close();
  }
  const gw = await startGateway(config, { pollMs: 50 });
  t.teardown(() => gw.stop());
  const messages = await upstream.message.start(t);
  const maillog = await upstream.maillog.start(t);
  const reader = Store.openExisting(config.store.path);
  t.teardown(() => reader.close());
  // a live session starts at "now": events played before it opened would not be sent
  await waitFor(() => messages.sessions === 1 && maillog.sessions === 1, 10_000, 'the consumer\'s live sessions');

  // before the message reaches mailbag: the upstream's from= line and its filter verdict
  const before = Date.now();
  maillog.play(maillogEvent('e2e-1', UPSTREAM, before - 1300, `from=<alice@sender.test>, size=1557, class=0, nrcpts=2, msgid=${MESSAGE_ID}, proto=ESMTP, daemon=MTA, relay=mail.sender.test [192.0.2.10]`));
  messages.play(messageEvent({ guid: GUID, qid: UPSTREAM, at: before - 900, messageId: MESSAGE_ID, rcpts: ['ana@example.test', 'ben@example.test'], spam: 12, phish: 3, impostor: 1, quarantine: { folder: 'Audit', rule: 'inbound_audit' } }));
  await waitFor(() => reader.pod.messageEventsByQid(UPSTREAM).length === 1 && reader.pod.maillogEventsByQid(UPSTREAM).length === 1, 10_000, 'the events played before');

  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'alice@sender.test', to: ['ana@example.test', 'ben@example.test'] }, raw: MESSAGE });
  client.close();
  const reply = (info.response as string).replace(/^250 /, '');
  const qid = /queued as ([0-9A-Z]+)/.exec(reply)![1]!;
  for (const local of ['ana', 'ben']) await waitFor(() => maildirFiles(mailboxes, 'example.test', local).length > 0, 10_000, `delivery to ${local}`);

  await waitFor(() => reader.queue.message(qid)?.state === 'done' && reader.queue.attempts(qid).length > 0, 10_000, 'attempts recorded');
  t.match(reader.correlation.keys(qid), { message_id: '20261130.4AUGx1Zq012345@sender.test', upstream_qid: UPSTREAM, upstream_host: 'mx0a-00123.pphosted.com', pp_guid: GUID, client_address: '127.0.0.1' }, 'keys recorded at the first claim');
  t.same(reader.correlation.linksOfQid(qid).map((l) => l.via).sort(), ['guid', 'received'], 'the events played before linked when the keys were recorded');

  // after: the upstream's delivery line to mailbag, whose stat carries mailbag's own 250 reply
  maillog.play(maillogEvent('e2e-2', UPSTREAM, Date.now(), `to=<ana@example.test>,<ben@example.test>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120812, relay=mailbag.example.test. [127.0.0.1], dsn=2.0.0, stat=Sent (${reply})`));
  await waitFor(() => reader.correlation.linksOfQid(qid).some((l) => l.via === 'queued-as'), 10_000, 'the stat line linked when it was stored');
  t.same(reader.correlation.linksOfQid(qid).map((l) => l.via).sort(), ['guid', 'queued-as', 'received'], 'linked by the stat line, the Received id and the GUID');
  t.same(
    reader.podStreams.statuses().map((s) => [s.stream, s.state, s.stored, s.deadLettered]).sort(),
    [
      ['upstream-maillog', 'live', 2, 0],
      ['upstream-message', 'live', 1, 0],
    ],
    'every played event came through the consumer, none dead-lettered',
  );

  const keys: [string, string][] = [
    ['qid', qid],
    ['upstream', UPSTREAM],
    ['message-id', MESSAGE_ID],
    ['guid', GUID],
  ];
  for (const [kind, key] of keys) {
    const r = await cli(['trace', key, '--json', '--config', cfg]);
    t.equal(r.code, 0, `${kind}: ${r.stderr}`);
    const j = JSON.parse(r.stdout.toString()) as Json;
    t.equal(j.by, kind, `${key} detected as ${kind}`);
    t.equal(j.matches.length, 1);
    const m = j.matches[0]!;
    t.same([m.mailbagQids, m.upstreamQids], [[qid], [UPSTREAM]], `${kind}: both sides`);
    const kinds = m.timeline.map((e) => `${e.hop}:${e.kind}`);
    // from= line, filter verdict, mailbag's receipt, then the to= line logging mailbag's 250
    t.same(kinds.slice(0, 3), ['upstream:maillog', 'upstream:verdict', 'mailbag:received'], `${kind}: both hops in one timeline`);
    t.ok(kinds.lastIndexOf('upstream:maillog') > kinds.indexOf('mailbag:received'), `${kind}: the to= line logged after mailbag's receipt comes after it`);
    t.equal(kinds.filter((k) => k === 'mailbag:language').length, 2, `${kind}: the language decision per recipient`);
    t.ok(kinds.includes('mailbag:attempt'), `${kind}: the delivery attempts`);
    t.same(m.timeline.map((e) => e.atUs), [...m.timeline.map((e) => e.atUs)].sort((a, b) => a - b), `${kind}: oldest first`);
    const verdict = m.timeline.find((e) => e.kind === 'verdict')!.data;
    t.match(verdict, { disposition: 'continue', scores: { spam: 12, phish: 3, impostor: 1 }, quarantine: { folder: 'Audit', rule: 'inbound_audit' }, finalAction: { action: 'accept' } });
  }

  const text = await cli(['trace', qid, '--config', cfg]);
  t.equal(text.code, 0);
  const out = text.stdout.toString();
  t.notMatch(out, /\x1b\[/, 'no colour when stdout is not a terminal');
  t.same(out.split('\n').filter((l) => l.length > 80), [], 'fits 80 columns');
  t.match(out, new RegExp(`linked +${UPSTREAM} -> ${qid} by`));
  t.match(out, /verdict continue, final action accept/);
  t.match(out, /stat Sent \(.*queued as /);
  t.match(out, /language <ana@example.test>: select, part \d \(es/);
  t.match(out, /attempt maildir:/);
  t.match(out, /maillog to <ana@example.test>, <ben@example.test>/);
});
