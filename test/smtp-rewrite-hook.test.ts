// The per-message rewrite step between the queue and routing: it may split the
// envelope into copies with different bytes; a failing step postpones, never loses.
import t from 'tap';
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import type { RewriteStep } from '../src/delivery/queue.js';
import { startSink, stripReceived, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

t.test('a rewrite step that splits the envelope into two copies', async (t) => {
  const { dir, cleanup } = tempDir('rewrite');
  const sink = await startSink();
  let calls = 0;
  const rewrite: RewriteStep = async (message, recipients, original) => {
    calls++;
    t.equal(message.envelope_from, 'ann@sender.test', 'the step sees the stored message');
    const bytes = await readAll(original.open());
    return recipients.map((rcpt) => {
      const copy = Buffer.concat([Buffer.from(`X-Copy-For: ${rcpt}\r\n`), bytes]);
      return { recipients: [rcpt], size: copy.length, open: () => Readable.from([copy]) };
    });
  };
  const gw = await startGateway(testConfig(dir, { routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }] }), { rewrite, pollMs: 30 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const body = Buffer.from('Subject: split\r\n\r\nsame text\r\n');
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['a@example.test', 'b@example.test'] }, raw: body });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  await waitFor(() => sink.messages.length === 2, 5000, 'two copies');
  const byRcpt = new Map(sink.messages.map((m) => [m.to.join(','), m.bytes]));
  for (const rcpt of ['a@example.test', 'b@example.test']) {
    const got = byRcpt.get(rcpt);
    t.ok(got, `a copy for ${rcpt} only`);
    t.ok(got!.subarray(0, `X-Copy-For: ${rcpt}\r\n`.length).toString() === `X-Copy-For: ${rcpt}\r\n`, 'with its own bytes');
    t.ok(stripReceived(got!.subarray(`X-Copy-For: ${rcpt}\r\n`.length)).equals(body));
  }
  t.equal(calls, 1, 'one rewrite per attempt round');
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 2000, 'done');
  t.equal(gw.store.queue.attempts(qid).length, 2, 'one attempt record per copy and next hop');
});

t.test('a failing rewrite step postpones the recipients', async (t) => {
  const { dir, cleanup } = tempDir('rewrite-fail');
  const sink = await startSink();
  let failures = 0;
  const rewrite: RewriteStep = async (_m, _r, original) => {
    if (failures++ === 0) throw new Error('translation service unavailable');
    return [original];
  };
  const gw = await startGateway(
    testConfig(dir, { routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }], queue: { retryInitial: 300, retryMax: 300 } }),
    { rewrite, pollMs: 30 },
  );
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['a@example.test'] }, raw: 'Subject: x\r\n\r\ny\r\n' });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  const r = await waitFor(() => {
    const row = gw.store.queue.recipients(qid)[0];
    return row?.last_reply ? row : undefined;
  }, 3000, 'the postponement');
  t.match(r.last_reply, /^451 4\.3\.0 internal error: translation service unavailable/);
  t.ok(r.next_attempt_at > Date.now() + 100, 'not retried in a hot loop');
  await waitFor(() => sink.messages.length === 1, 5000, 'delivery on the next round');
  t.equal(failures, 2);
});
