// The publisher's facts of a message (from= line data, the message event's parts) are
// durable no later than the queue can claim the message: a recorder held back until the
// queue has delivered the message and removed its spool file changes nothing in what the
// live streams send.
import t from 'tap';
import nodemailer from 'nodemailer';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startGateway } from '../src/gateway/gateway.js';
import { PodFactsRecorder } from '../src/gateway/pod-facts-recorder.js';
import { loadOrCreateSecret } from '../src/gateway/pod-secret.js';
import { signToken } from '../src/pod/jwt.js';
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

t.test('a recorder that runs only after the queue delivered the message: from= still first, parts kept', async (t) => {
  const { dir, cleanup } = tempDir('pod-race');
  const secretFile = join(dir, 'var', 'pod.secret');
  const config = testConfig(dir, {
    pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'mailbag-test', pollInterval: 20 } },
  });
  const gw = await startGateway(config, { pollMs: 20 });
  const secret = loadOrCreateSecret(secretFile);
  const token = (): string => signToken(secret, { cid: 'mailbag-test', expiresInSec: 3600 });
  const port = gw.podPublisherAddress()!.port;
  const maillog = await openStream(port, token(), 'cid=mailbag-test&type=maillog');
  const messages = await openStream(port, token(), 'cid=mailbag-test&type=message');
  const linesOf = (qid: string) => maillog.events.filter((e) => e.sm?.qid === qid).map((e) => String(e.data));
  const hasFacts = (qid: string) => gw.store.podPublisher.factsAfter(0, 1000).some((f) => f.qid === qid);

  // The seam: whenever the recorder is asked for a message's facts, it first waits until the
  // queue has finished the message (spool file gone) and the live maillog stream has sent
  // a to= line for it, unless the facts are already there.
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
    await gw.stop();
    cleanup();
  });

  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: RAW });
  client.close();
  const qid = /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;

  await waitFor(() => linesOf(qid).length >= 2 && messages.events.some((e) => e.guid === qid), 20_000, 'from=, to= and the message event');
  const lines = linesOf(qid);
  t.match(lines[0], /: from=<ann@sender\.test>/, 'the first maillog line of the message is its from= line');
  t.match(lines[1], /: to=<alice@example\.test>/, 'then its to= line');
  const event = messages.events.find((e) => e.guid === qid)!;
  const parts = (event.msgParts ?? []) as Array<Record<string, unknown>>;
  t.same(parts.map((p) => p.detectedName).sort(), ['', 'a.bin'], 'the message event has both parts');

  maillog.ws.close();
  messages.ws.close();
  await Promise.all([maillog.closed, messages.closed]);
});
