// The queue thread's side of the accept path's hand-off: it commits what the SMTP thread
// accepted (so that message's kick is not sent), and a commit it may or may not have made
// (its thread died, it did not answer in time) is answered "unknown", never left waiting.
import t from 'tap';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { toNewMessage } from '../src/delivery/accept.js';
import { ERR_COMMIT_UNKNOWN } from '../src/delivery/group-commit.js';
import { startGateway } from '../src/gateway/gateway.js';
import { QueueThread, type ToQueueThread } from '../src/gateway/queue-thread.js';
import { maildirFiles, tempDir, testConfig, waitFor } from './helpers/gateway.js';

const BODY = Buffer.from('From: ann@sender.test\r\nTo: alice@example.test\r\nSubject: hand-off\r\n\r\nbody\r\n');

async function gatewayWithThread(t: { teardown(fn: () => unknown): void }, name: string) {
  const { dir, cleanup } = tempDir(name);
  t.teardown(cleanup);
  const gw = await startGateway(testConfig(dir), { pollMs: 50 });
  t.teardown(() => gw.stop());
  const thread = gw.queue;
  if (!(thread instanceof QueueThread)) throw new Error('expected the queue on its own thread');
  const posted: ToQueueThread[] = [];
  const post = thread['post'].bind(thread);
  thread['post'] = (m: ToQueueThread) => {
    posted.push(m);
    post(m);
  };
  return { dir, gw, thread, posted, post };
}

const row = (dir: string, qid: string) =>
  toNewMessage({ qid, receivedAt: Date.now(), sender: 'ann@sender.test', recipients: [{ address: 'alice@example.test' }] }, { spoolPath: join(dir, 'spool', qid), spoolOffset: 0, size: 1, sha256: '0'.repeat(64) });

t.test('a message over SMTP is committed by the queue thread, which needs no kick for it', async (t) => {
  const { dir, gw, posted } = await gatewayWithThread(t, 'hand-off-smtp');
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: BODY });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'alice').length === 1, 5000, 'the delivery');
  const commits = posted.flatMap((m) => (m.type === 'commit' ? m.rows.map((r) => r.qid) : []));
  const kicked = posted.flatMap((m) => (m.type === 'kick' ? m.accepted : []));
  t.same(commits, [qid], 'handed to the queue thread');
  t.notOk(kicked.includes(qid), 'and not kicked: the queue thread has it');
});

t.test('a queue thread that dies with a commit in flight: the commit is answered "unknown"', async (t) => {
  const { dir, thread, post } = await gatewayWithThread(t, 'hand-off-died');
  // held back, so the thread cannot answer before it dies (it may have committed or not)
  thread['post'] = (m: ToQueueThread) => (m.type === 'commit' ? undefined : post(m));
  thread.handOffTimeoutMs = 60_000;
  const answer = thread.commitAccepted([row(dir, '0Q00000000Z01')]);
  t.ok(answer, 'the thread takes commits');
  await thread['worker'].terminate(); // as if it had crashed
  await t.rejects(answer!, { code: ERR_COMMIT_UNKNOWN, message: /queue thread exited/ });
  await waitFor(() => thread.failed, 2000, 'the failure to be noticed');
  t.equal(thread.commitAccepted([row(dir, '0Q00000000Z02')]), undefined, 'no commits taken until the thread is replaced');
});

t.test('a queue thread that does not answer in time: the commit is answered "unknown", the late answer dropped', async (t) => {
  const { dir, thread, post } = await gatewayWithThread(t, 'hand-off-timeout');
  const held: ToQueueThread[] = [];
  thread['post'] = (m: ToQueueThread) => (m.type === 'commit' ? held.push(m) : post(m));
  thread.handOffTimeoutMs = 20;
  const answer = thread.commitAccepted([row(dir, '0Q00000000Z03')]);
  await t.rejects(answer!, { code: ERR_COMMIT_UNKNOWN });
  t.equal(held.length, 1);
  // the queue thread answers after all: nothing left to settle, no kick suppressed for it
  const answers: unknown[] = [];
  const committed = thread['committed'].bind(thread);
  thread['committed'] = (m) => {
    answers.push(m);
    committed(m);
  };
  post(held[0]!);
  await waitFor(() => answers.length === 1, 2000, 'the late answer');
  t.same(answers, [{ type: 'committed', id: (held[0] as { id: number }).id }], 'the queue thread committed it');
  t.equal(thread['commits'].size, 0);
  t.notOk(thread['handedOver'].has('0Q00000000Z03'), 'its kick (sent by the accept path, which committed too) is not suppressed');
});
