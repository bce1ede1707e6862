// The delivery queue's decisions: 5xx and expiry bounce to the envelope sender (never
// to <>), 4xx retries with backoff until it succeeds, LMTP per-recipient replies.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import type { ConfigInput } from '../src/config/schema.js';
import { maildirFiles, startSink, tempDir, testConfig, waitFor, type Sink } from './helpers/gateway.js';

const ORIGINAL = Buffer.from('From: ann@example.test\r\nTo: bob@remote.test\r\nSubject: quarterly figures\r\nMessage-ID: <q1@example.test>\r\n\r\nthe body is not attached to bounces\r\n');

async function setup(t: Test, sinkOpts: { lmtp?: boolean } = {}, queue: Partial<Record<string, unknown>> = {}, sinkDown = false) {
  const { dir, cleanup } = tempDir('queue');
  let sink: Sink | undefined = await startSink(sinkOpts);
  const port = sink.port;
  if (sinkDown) {
    await sink.close();
    sink = undefined;
  }
  const overrides: Partial<Record<keyof ConfigInput, unknown>> = {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [
      { domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` },
      { domain: 'remote.test', nexthop: `${sinkOpts.lmtp ? 'lmtp' : 'smtp'}://127.0.0.1:${port}` },
    ],
    queue: { retryInitial: 30, retryMax: 60, ...queue },
  };
  const gw = await startGateway(testConfig(dir, overrides), { pollMs: 30 });
  t.teardown(async () => {
    await gw.stop();
    await sink?.close();
    cleanup();
  });
  return { gw, sink, dir };
}

async function send(gw: Gateway, from: string, to: string[], raw = ORIGINAL): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail({ envelope: { from, to }, raw });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

function bounces(gw: Gateway) {
  return gw.store.db.prepare("SELECT qid FROM messages WHERE envelope_from = ''").all() as { qid: string }[];
}

t.test('5xx for one recipient: the others are delivered, the sender gets an RFC 3464 bounce', async (t) => {
  const { gw, sink, dir } = await setup(t);
  sink!.rcptReply.set('bob@remote.test', { code: 550, message: '5.1.1 no such user here' });
  const qid = await send(gw, 'ann@example.test', ['bob@remote.test', 'carol@remote.test']);
  const dsn = await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'ann')[0], 5000, 'the bounce');
  t.same(sink!.messages.map((m) => m.to), [['carol@remote.test']], 'carol delivered, bob not');
  const text = dsn.bytes.toString('utf8');
  t.match(text, /^From: Mail Delivery System <MAILER-DAEMON@mx\.test\.invalid>/m);
  t.match(text, /^To: <ann@example\.test>/m);
  t.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
  t.match(text, /Final-Recipient: rfc822; ?bob@remote\.test/);
  t.match(text, /Action: failed/);
  t.match(text, /Status: 5\.1\.1/);
  t.match(text, /Diagnostic-Code: smtp; ?550 5\.1\.1 no such user here/);
  t.match(text, /Content-Type: text\/rfc822-headers/);
  t.ok(text.includes('Subject: quarterly figures\r\nMessage-ID: <q1@example.test>\r\n'), 'the original header section is attached');
  t.notMatch(text, /the body is not attached/, 'headers only');
  t.notMatch(text, /carol@remote\.test/, 'only the failed recipient is reported');
  const b = bounces(gw);
  t.equal(b.length, 1, 'one bounce, sent with the null sender');
  t.same(gw.store.queue.recipients(b[0]!.qid).map((r) => r.rcpt), ['ann@example.test'], 'to the envelope sender only');
  const rcpts = Object.fromEntries(gw.store.queue.recipients(qid).map((r) => [r.rcpt, r.state]));
  t.same(rcpts, { 'bob@remote.test': 'failed', 'carol@remote.test': 'delivered' });
  t.same(gw.store.queue.attempts(qid).map((a) => a.outcome), ['partial']);
});

t.test('a message from the null sender is never bounced', async (t) => {
  const { gw, sink } = await setup(t);
  sink!.rcptReply.set('bob@remote.test', { code: 550, message: '5.1.1 no such user here' });
  const qid = await send(gw, '', ['bob@remote.test']);
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 5000, 'the message to finish');
  t.equal(gw.store.queue.recipients(qid)[0]!.state, 'failed');
  // A bounce is queued before its round is recorded: none by now means none at all.
  t.same(bounces(gw).filter((b) => b.qid !== qid), [], 'no bounce queued');
});

t.test('4xx is retried with backoff until the next hop accepts', async (t) => {
  const { gw, sink } = await setup(t);
  sink!.rcptReply.set('bob@remote.test', { code: 451, message: '4.2.0 greylisted, come back later' });
  const qid = await send(gw, 'ann@example.test', ['bob@remote.test']);
  await waitFor(() => gw.store.queue.attempts(qid).length >= 3, 5000, 'three deferred attempts');
  // the attempts first: a round recorded in between only moves next_attempt_at later
  const lastTry = gw.store.queue.attempts(qid).at(-1)!;
  const r = gw.store.queue.recipients(qid)[0]!;
  t.equal(r.state, 'deferred');
  t.match(r.last_reply, /^451 4\.2\.0 greylisted/);
  t.ok(r.next_attempt_at > lastTry.started_at, 'a next attempt is scheduled after the last one');
  sink!.rcptReply.clear();
  await waitFor(() => sink!.messages.length === 1, 5000, 'delivery');
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 2000, 'done');
  const outcomes = gw.store.queue.attempts(qid).map((a) => a.outcome);
  t.equal(outcomes.at(-1), 'delivered');
  t.ok(outcomes.slice(0, -1).every((o) => o === 'deferred'));
  t.equal(bounces(gw).length, 0, 'no bounce for a temporary failure');
});

t.test('expiry: a recipient still deferred after queue.lifetime bounces with 5.4.7', async (t) => {
  const { gw, dir } = await setup(t, {}, { lifetime: 400 }, true);
  const qid = await send(gw, 'ann@example.test', ['bob@remote.test']);
  const dsn = await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'ann')[0], 5000, 'the expiry bounce');
  const text = dsn.bytes.toString('utf8');
  t.match(text, /Status: 5\.4\.7/);
  t.match(text, /Final-Recipient: rfc822; ?bob@remote\.test/);
  const r = gw.store.queue.recipients(qid)[0]!;
  t.equal(r.state, 'failed');
  t.match(r.last_reply, /^expired after/);
  t.ok(gw.store.queue.attempts(qid).length >= 2, 'retried before expiring');
});

t.test('LMTP next hop: per-recipient outcome', async (t) => {
  const { gw, sink } = await setup(t, { lmtp: true });
  sink!.rcptReply.set('bob@remote.test', { code: 550, message: '5.1.1 unknown mailbox' });
  const qid = await send(gw, 'ann@example.test', ['bob@remote.test', 'carol@remote.test', 'dave@remote.test']);
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 5000, 'done');
  t.same(sink!.messages.map((m) => m.to), [['carol@remote.test', 'dave@remote.test']]);
  const rcpts = Object.fromEntries(gw.store.queue.recipients(qid).map((r) => [r.rcpt, r.state]));
  t.same(rcpts, { 'bob@remote.test': 'failed', 'carol@remote.test': 'delivered', 'dave@remote.test': 'delivered' });
});

t.test('pooled connections: reused while open, replaced when the next hop drops them', async (t) => {
  const { dir, cleanup } = tempDir('pool');
  const sink = await startSink({ socketTimeout: 300 });
  const gw = await startGateway(
    testConfig(dir, { smtp: { trustedNetworks: ['127.0.0.0/8'] }, routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${sink.port}` }], queue: { retryInitial: 30, retryMax: 60 } }),
    { pollMs: 30 },
  );
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const first = await send(gw, 'ann@example.test', ['a@remote.test']);
  const second = await send(gw, 'ann@example.test', ['b@remote.test']);
  await waitFor(() => sink.messages.length === 2, 3000, 'two deliveries on a warm pool');
  // The sink drops idle connections after 300 ms: the next message needs a new one.
  await waitFor(() => sink.closedConnections === sink.openedConnections, 10_000, 'the next hop to close every idle connection');
  const third = await send(gw, 'ann@example.test', ['c@remote.test']);
  await waitFor(() => sink.messages.length === 3, 3000, 'delivery after the next hop closed the idle connection');
  // the sink has the message before the queue has recorded the sink's reply
  await waitFor(() => gw.store.queue.message(third)!.state === 'done', 3000, 'the third attempt recorded');
  for (const q of [first, second, third]) {
    t.same(gw.store.queue.attempts(q).map((a) => a.outcome), ['delivered'], `${q}: delivered at the first attempt`);
  }
});
