// Crash safety: the queue resumes every unfinished message after a restart, and a
// Maildir recipient is never delivered twice whatever point the last run died at.
import t from 'tap';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import { Store } from '../src/store/store.js';
import { Spool } from '../src/delivery/spool.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { enqueueGenerated } from '../src/delivery/enqueue.js';
import { MaildirTransport } from '../src/delivery/transports/maildir.js';
import { maildirFiles, startSink, stripReceived, tempDir, testConfig, waitFor } from './helpers/gateway.js';

const BODY = Buffer.from('From: ann@sender.test\r\nTo: bob@remote.test\r\nSubject: resume\r\n\r\nqueued while the next hop was down\r\n');

t.test('accepted with the next hop down, delivered by the next gateway on the same store', async (t) => {
  const { dir, cleanup } = tempDir('resume');
  t.teardown(cleanup);
  const probe = await startSink();
  const port = probe.port;
  await probe.close();
  const config = testConfig(dir, {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${port}` }],
    queue: { retryInitial: 100, retryMax: 100 },
  });
  const gw1 = await startGateway(config, { pollMs: 50 });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw1.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['bob@remote.test'] }, raw: BODY });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  await waitFor(() => gw1.store.queue.attempts(qid).length >= 1, 3000, 'a failed attempt');
  const first = gw1.store.queue.recipients(qid)[0]!;
  t.equal(first.state, 'deferred', 'connection refused defers');
  t.match(first.last_reply, /ECONNREFUSED|4\.4\.1/);
  await gw1.stop();

  const sink = await startSink({ port });
  t.teardown(() => sink.close());
  const gw2 = await startGateway(config, { pollMs: 50 });
  t.teardown(() => gw2.stop());
  await waitFor(() => sink.messages.length === 1, 5000, 'delivery after restart');
  t.ok(stripReceived(sink.messages[0]!.bytes).equals(BODY), 'the spooled bytes arrive intact');
  await waitFor(() => gw2.store.queue.message(qid)?.state === 'done', 3000, 'message done');
  const attempts = gw2.store.queue.attempts(qid);
  t.same(attempts.slice(-1).map((a) => a.outcome), ['delivered']);
  t.ok(attempts.slice(0, -1).every((a) => a.outcome === 'deferred'), 'earlier attempts recorded as deferred');
  t.ok(attempts.every((a) => a.nexthop === `smtp://127.0.0.1:${port}` && a.duration_ms >= 0 && a.started_at > 0), 'each attempt has next hop, time and duration');
  // stop() waits for every attempt in flight: after it, no second delivery can still arrive.
  await gw2.stop();
  t.equal(sink.messages.length, 1, 'delivered exactly once');
});

type Stage = 'renamed-not-recorded' | 'intent-recorded-still-in-tmp' | 'tmp-written-no-intent' | 'delivered-then-removed-by-reader' | 'moved-to-cur';

/** Runs the first half of a Maildir delivery by hand and "crashes" at the given point. */
async function stage(dir: string, config: ReturnType<typeof testConfig>, at: Stage): Promise<{ qid: string; name: string }> {
  const store = Store.open(config.store.path);
  try {
    const spool = new Spool(config.spool.dir);
    const qids = new QidGenerator(store.queue.maxQid());
    const qid = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'ann@sender.test', recipients: ['alice@example.test'], bytes: BODY });
    const msg = store.queue.message(qid)!;
    const hop = config.routes[0]!.nexthop;
    const maildir = new MaildirTransport(config.gateway.hostname);
    const res = await maildir.deliver(hop, {
      qid,
      envelopeFrom: msg.envelope_from,
      recipients: ['alice@example.test'],
      receivedAt: msg.received_at,
      size: msg.size,
      openMessage: () => spool.read(msg),
      intendedName: () => undefined,
      recordIntent: (rcpt, name) => store.queue.setDeliveredAs(qid, rcpt, name),
    });
    const name = res.recipients[0]!.deliveredAs!;
    const box = join(dir, 'mailboxes', 'example.test', 'alice');
    if (at === 'intent-recorded-still-in-tmp' || at === 'tmp-written-no-intent') renameSync(join(box, 'new', name), join(box, 'tmp', name));
    if (at === 'tmp-written-no-intent') store.db.prepare('UPDATE recipients SET delivered_as = NULL').run();
    if (at === 'delivered-then-removed-by-reader') rmSync(join(box, 'new', name));
    if (at === 'moved-to-cur') renameSync(join(box, 'new', name), join(box, 'cur', `${name}:2,S`));
    return { qid, name };
  } finally {
    store.close();
  }
}

for (const [at, expectedFiles] of [
  ['renamed-not-recorded', 1],
  ['moved-to-cur', 1],
  ['intent-recorded-still-in-tmp', 1],
  ['tmp-written-no-intent', 1],
  ['delivered-then-removed-by-reader', 0],
] as const) {
  t.test(`Maildir exactly once after a crash: ${at}`, async (t) => {
    const { dir, cleanup } = tempDir('maildir-once');
    t.teardown(cleanup);
    const config = testConfig(dir);
    const { qid, name } = await stage(dir, config, at);
    const gw = await startGateway(config, { pollMs: 50 });
    t.teardown(() => gw.stop());
    await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 5000, 'the resumed message to finish');
    const files = maildirFiles(join(dir, 'mailboxes'), 'example.test', 'alice');
    t.equal(files.length, expectedFiles, `${expectedFiles} file(s) in the mailbox`);
    for (const f of files) {
      t.ok(f.name.startsWith(name), 'under the recorded name');
      t.ok(f.bytes.equals(BODY));
    }
    const r = gw.store.queue.recipients(qid)[0]!;
    t.equal(r.state, 'delivered');
    t.equal(r.delivered_as, name);
    t.notOk(existsSync(join(dir, 'mailboxes', 'example.test', 'alice', 'tmp', name)), 'nothing left in tmp/');
    const spoolPath = gw.store.queue.message(qid)!.spool_path;
    await waitFor(() => !existsSync(spoolPath), 2000, 'spool file removal');
  });
}

t.test('start-up sweeps half-written spool files', async (t) => {
  const { dir, cleanup } = tempDir('sweep');
  t.teardown(cleanup);
  const config = testConfig(dir);
  const spool = new Spool(config.spool.dir);
  const w = await spool.create({ qid: '0000000000000', receivedAt: Date.now(), sender: 'a@sender.test', recipients: [{ address: 'x@example.test' }] });
  await new Promise((r) => w.write('Subject: half', r));
  w.destroy();
  t.ok(existsSync(w.tmpPath));
  const gw = await startGateway(config);
  t.teardown(() => gw.stop());
  t.notOk(existsSync(w.tmpPath), 'tmp file of an unfinished transaction removed');
});

t.test('start-up removes the files of finished messages and sets never-committed ones aside', async (t) => {
  const { dir, cleanup } = tempDir('orphans');
  t.teardown(cleanup);
  const config = testConfig(dir, { routes: [{ domain: 'example.test', nexthop: 'smtp://127.0.0.1:1' }], queue: { retryInitial: '1h', retryMax: '1h' } });
  const store = Store.open(config.store.path);
  const spool = new Spool(config.spool.dir);
  const qids = new QidGenerator();
  const live = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'a@sender.test', recipients: ['x@example.test'], bytes: BODY });
  const finished = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'a@sender.test', recipients: ['y@example.test'], bytes: BODY });
  store.db.prepare("UPDATE recipients SET state = 'delivered' WHERE qid = ?").run(finished);
  store.db.prepare("UPDATE messages SET state = 'done' WHERE qid = ?").run(finished);
  // renamed into the spool, but the process died before the row committed: no 250 was given
  const uncommitted = qids.next();
  const w = await spool.create({ qid: uncommitted, receivedAt: Date.now(), sender: 'a@sender.test', recipients: [{ address: 'z@example.test' }] });
  await new Promise<void>((r) => w.end(BODY, () => r()));
  await w.commit();
  store.close();
  const gw = await startGateway(config);
  t.teardown(() => gw.stop());
  t.ok(existsSync(spool.pathFor(live)), 'a queued message keeps its file');
  t.notOk(existsSync(spool.pathFor(finished)), 'a finished message loses its file');
  t.notOk(existsSync(spool.pathFor(uncommitted)), 'a never-committed file leaves the spool directory');
  t.ok(existsSync(join(spool.unknownDir, uncommitted)), 'but is kept in unknown/, not deleted (the store cannot prove it unfinished)');
});

t.test('a queue thread that dies is replaced and the queue goes on', async (t) => {
  const { dir, cleanup } = tempDir('thread-restart');
  t.teardown(cleanup);
  const { QueueThread } = await import('../src/gateway/queue-thread.js');
  const gw = await startGateway(testConfig(dir), { pollMs: 50 });
  t.teardown(() => gw.stop());
  const thread = gw.queue;
  if (!(thread instanceof QueueThread)) throw new Error('expected the queue on its own thread');
  await thread['worker'].terminate(); // as if it had crashed
  await waitFor(() => thread.failed, 2000, 'the failure to be noticed');
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: BODY });
  client.close();
  t.match(info.response, /^250 /, 'accepting goes on meanwhile');
  await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'alice').length === 1, 5000, 'delivery by the new thread');
  t.equal(thread.restarts, 1);
  t.equal(thread.failed, undefined, 'healthy again');
});
