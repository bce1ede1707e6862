// The rewrite step between the queue and routing, configured as a module the queue
// thread imports (queue.rewrite): it may split the envelope into copies with different
// bytes; a failing step counts as an attempt, never loses the message.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import { startSink, stripReceived, tempDir, testConfig, waitFor } from './helpers/gateway.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/rewrite/${name}.ts`, import.meta.url));

t.test('a configured rewrite module splits the envelope into two copies, on the queue thread', async (t) => {
  const { dir, cleanup } = tempDir('rewrite');
  const sink = await startSink();
  const gw = await startGateway(
    testConfig(dir, {
      routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }],
      queue: { rewrite: { module: fixture('per-recipient'), options: { header: 'X-Copy-For' } } },
    }),
    { pollMs: 30 },
  );
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  t.equal(gw.queue.constructor.name, 'QueueThread', 'the queue stays on its own thread');
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
    const head = `X-Copy-For: ${rcpt}\r\nX-Rewrite-Call: 1\r\n`;
    t.equal(got!.subarray(0, head.length).toString(), head, 'with its own bytes');
    t.ok(stripReceived(got!.subarray(head.length)).equals(body));
  }
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 2000, 'done');
  t.equal(gw.store.queue.attempts(qid).length, 2, 'one attempt record per copy and next hop');
  await waitFor(() => readdirSync(join(dir, 'spool', 'copies')).length === 0, 2000, 'copies removed');
  t.notOk(readdirSync(join(dir, 'spool')).includes(qid), 'the original removed with the copies');
});

t.test('a failing rewrite step counts as an attempt and is retried with backoff', async (t) => {
  const { dir, cleanup } = tempDir('rewrite-fail');
  const sink = await startSink();
  const gw = await startGateway(
    testConfig(dir, {
      routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }],
      queue: { retryInitial: 300, retryMax: 300, rewrite: { module: fixture('fails-once'), options: { reason: 'translation service unavailable' } } },
    }),
    { pollMs: 30 },
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
  await waitFor(() => sink.messages.length === 1, 5000, 'delivery on the next round');
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 2000, 'done');
  const attempts = gw.store.queue.attempts(qid);
  t.same(attempts.map((a) => [a.nexthop, a.outcome]), [['internal', 'deferred'], [`smtp://127.0.0.1:${sink.port}`, 'delivered']]);
  t.match(attempts[0]!.reply, /^451 4\.3\.0 internal error: translation service unavailable/);
  t.equal(gw.store.queue.recipients(qid)[0]!.attempts, 2, 'the internal error counted as an attempt');
});

t.test('a rewrite module that cannot be loaded stops the gateway from starting', async (t) => {
  const { dir, cleanup } = tempDir('rewrite-missing');
  t.teardown(cleanup);
  await t.rejects(startGateway(testConfig(dir, { queue: { rewrite: { module: fixture('no-such-module') } } })), /queue\.rewrite\.module .*cannot be loaded/);
});

t.test('the built-in multilingual step runs on the queue thread when multilingual: turns it on', async (t) => {
  const { dir, cleanup } = tempDir('rewrite-multilingual');
  const sink = await startSink();
  const gw = await startGateway(
    testConfig(dir, {
      routes: [{ domain: '*.example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }, { domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }],
      multilingual: { mode: 'select', defaultLanguages: 'en', verifyDkim: false, domains: { 'off.example.test': { mode: 'off' } } },
    }),
    { pollMs: 30 },
  );
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  gw.store.users.set('ana@example.test', 'es');
  const example = readFileSync(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url));
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'nik@sender.test', to: ['ana@example.test', 'bob@example.test', 'dora@off.example.test'] }, raw: example });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 5000, 'delivered');
  const byRcpt = new Map(sink.messages.map((m) => [m.to.join(','), stripReceived(m.bytes).toString('latin1')]));
  t.match(byRcpt.get('ana@example.test'), /Content-Language: es-ES\r\n/, 'the stored preference picks the Spanish part');
  t.notMatch(byRcpt.get('ana@example.test'), /multipart\/multilingual/);
  t.match(byRcpt.get('bob@example.test'), /Content-Language: en\r\n/, 'the default picks the English part');
  t.equal(byRcpt.get('dora@off.example.test'), example.toString('latin1'), 'mode off: the original bytes');
  t.same(gw.store.multilingual.choices(qid).map((c) => c.rcpt).sort(), ['ana@example.test', 'bob@example.test']);
});

t.test('queue.rewrite and the multilingual step together: the config is refused (config check and start alike)', async (t) => {
  const { dir, cleanup } = tempDir('rewrite-both');
  t.teardown(cleanup);
  t.throws(
    () => testConfig(dir, { multilingual: { mode: 'select' }, queue: { rewrite: { module: fixture('per-recipient') } } }),
    /queue\.rewrite: the multilingual step is on \(multilingual\.mode select\); a gateway has one rewrite step/,
  );
});
