// The publisher's facts of a message (from= line data, the message event's parts) are
// durable no later than the queue can claim the message: a recorder held back until the
// queue has delivered the message and removed its spool file changes nothing in what the
// live streams send.
import t from 'tap';
import nodemailer from 'nodemailer';
import { existsSync } from 'node:fs';
import type { Test } from 'tap';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { PodFactsRecorder } from '../src/gateway/pod-facts-recorder.js';
import { loadOrCreateSecret } from '../src/gateway/pod-secret.js';
import { signToken } from '../src/pod/jwt.js';
import { deliverCommand, encodeBag, encodeShippingUnit, proplist, readReply, textElement } from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { tempDir, testConfig, waitFor } from './helpers/gateway.js';

type Ev = Record<string, unknown> & { sm?: Record<string, unknown> };

function openStream(port: number, token: string, query: string): Promise<{ ws: WebSocket; events: Ev[]; closed: Promise<void> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?${query}`, { headers: { Authorization: `Bearer ${token}` } });
  const events: Ev[] = [];
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString('utf8')) as Ev));
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events, closed }));
    ws.once('error', reject);
  });
}

const RAW = Buffer.from(
  [
    'From: Ann <ann@sender.test>',
    'To: alice@example.test',
    'Subject: race',
    'Message-ID: <race-1@sender.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'hello',
    '--b1',
    'Content-Type: application/octet-stream; name="a.bin"',
    'Content-Disposition: attachment; filename="a.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('attached bytes').toString('base64'),
    '--b1--',
    '',
  ].join('\r\n'),
);

const ORIGIN_IHN = 167772404;

interface Fixture {
  gw: Gateway;
  /** The maillog lines the live stream sent for the message, in order. */
  linesOf(qid: string): string[];
  messageEvent(qid: string): Ev | undefined;
}

/**
 * A gateway with the publisher and the IMP acceptor, a live maillog and a live message
 * stream open on it, and the seam: whenever the recorder is asked for a message's facts,
 * it first waits until the queue has finished the message (spool file gone) and the live
 * maillog stream has sent a to= line for it, unless the facts are already recorded.
 */
async function start(t: Test): Promise<Fixture> {
  const { dir, cleanup } = tempDir('pod-race');
  const secretFile = join(dir, 'var', 'pod.secret');
  const config = testConfig(dir, {
    pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'mailbag-test', pollInterval: 20 } },
    imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 } },
  });
  const gw = await startGateway(config, { pollMs: 20 });
  const secret = loadOrCreateSecret(secretFile);
  const token = (): string => signToken(secret, { cid: 'mailbag-test', expiresInSec: 3600 });
  const port = gw.podPublisherAddress()!.port;
  const maillog = await openStream(port, token(), 'cid=mailbag-test&type=maillog');
  const messages = await openStream(port, token(), 'cid=mailbag-test&type=message');
  const linesOf = (qid: string) => maillog.events.filter((e) => e.sm?.qid === qid).map((e) => String(e.data));
  const hasFacts = (qid: string) => gw.store.podPublisher.factsAfter(0, 1000).some((f) => f.qid === qid);

  const record = PodFactsRecorder.prototype.record;
  PodFactsRecorder.prototype.record = async function held(this: PodFactsRecorder, qid: string): Promise<void> {
    await waitFor(
      () => {
        if (hasFacts(qid)) return true;
        const m = gw.store.queue.message(qid);
        return m?.state === 'done' && !existsSync(m.spool_path) && linesOf(qid).some((l) => /: to=/.test(l));
      },
      20_000,
      'the queue to finish the message first',
    );
    return record.call(this, qid);
  };
  t.teardown(async () => {
    PodFactsRecorder.prototype.record = record;
    maillog.ws.close();
    messages.ws.close();
    await Promise.all([maillog.closed, messages.closed]);
    await gw.stop();
    cleanup();
  });
  return { gw, linesOf, messageEvent: (qid) => messages.events.find((e) => e.guid === qid) };
}

async function bothEvents(f: Fixture, qid: string): Promise<{ lines: string[]; parts: Array<Record<string, unknown>> }> {
  await waitFor(() => f.linesOf(qid).length >= 2 && f.messageEvent(qid) !== undefined, 20_000, 'from=, to= and the message event');
  return { lines: f.linesOf(qid), parts: (f.messageEvent(qid)!.msgParts ?? []) as Array<Record<string, unknown>> };
}

t.test('SMTP: a recorder that runs only after the queue delivered the message: from= still first, parts kept', async (t) => {
  const f = await start(t);
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: f.gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: RAW });
  client.close();
  const qid = /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;
  const { lines, parts } = await bothEvents(f, qid);
  t.match(lines[0], /: from=<ann@sender\.test>/, 'the first maillog line of the message is its from= line');
  t.match(lines[1], /: to=<alice@example\.test>/, 'then its to= line');
  t.same(parts.map((p) => p.detectedName).sort(), ['', 'a.bin'], 'the message event has both parts');
});

t.test('IMP: the same for a message accepted over RFC 753', async (t) => {
  const f = await start(t);
  const c = await impClient(f.gw.impAddress()!.port);
  t.teardown(() => c.close());
  await c.send(
    encodeShippingUnit(
      encodeBag([
        {
          tid: { tn: 7, ihn: ORIGIN_IHN },
          command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN_IHN] }),
          document: {
            header: proplist({ FROM: 'Jon Postel <postel@isib.example>', SUBJECT: 'race', TO: 'alice@example.test' }),
            body: { type: 'list', items: [textElement('hello over IMP\r\n')] },
          },
        },
      ]),
    ),
  );
  t.equal(readReply((await c.replies(1))[0]!).answer, true, 'acknowledged');
  const qid = f.gw.store.queue.impMessagesByTid({ tn: 7, ihn: ORIGIN_IHN })[0]!.qid;
  const { lines, parts } = await bothEvents(f, qid);
  t.match(lines[0], /: from=/, 'the first maillog line of the message is its from= line');
  t.match(lines[1], /: to=<alice@example\.test>/, 'then its to= line');
  t.ok(parts.length >= 1, `the message event has its parts (${parts.length})`);
});
