// What a 250 promises, proven by the order of the spool's file-system calls (recorded
// through the spool's fs seam, node:fs itself untouched): for every accepted message,
// its tmp file is fsync'd, then renamed into the spool directory, then the spool
// directory is fsync'd, then the store commits its rows, and only then does the client
// get its 250. A bounce queued by the delivery queue follows the same order before its
// rows are committed. Remove any one of those fsyncs and this test fails.
import t from 'tap';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import { nodeSpoolFs, type SpoolFs } from '../src/delivery/spool-fs.js';
import type { NewMessage } from '../src/store/queue-store.js';
import { startSink, tempDir, testConfig, waitFor } from './helpers/gateway.js';

type Event =
  | { op: 'fsync'; path: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'commit'; qids: string[] }
  | { op: '250'; qid: string };

function recordingFs(events: Event[]): SpoolFs {
  const pathOf = new Map<number, string>();
  return {
    ...nodeSpoolFs,
    async open(path, flags, mode) {
      const fd = await nodeSpoolFs.open(path, flags, mode);
      pathOf.set(fd, path);
      return fd;
    },
    async fsync(fd) {
      await nodeSpoolFs.fsync(fd);
      events.push({ op: 'fsync', path: pathOf.get(fd) ?? `fd ${fd}` });
    },
    async close(fd) {
      pathOf.delete(fd);
      return nodeSpoolFs.close(fd);
    },
    async rename(from, to) {
      await nodeSpoolFs.rename(from, to);
      events.push({ op: 'rename', from, to });
    },
  };
}

/** Where each step of making `qid` durable happened in the event list (-1: never). */
function steps(events: Event[], spoolDir: string, qid: string) {
  const tmp = join(spoolDir, 'tmp', qid);
  const final = join(spoolDir, qid);
  const fileSynced = events.findIndex((e) => e.op === 'fsync' && e.path === tmp);
  const renamed = events.findIndex((e) => e.op === 'rename' && e.from === tmp && e.to === final);
  const dirSynced = renamed === -1 ? -1 : events.findIndex((e, i) => i > renamed && e.op === 'fsync' && e.path === spoolDir);
  const committed = events.findIndex((e) => e.op === 'commit' && e.qids.includes(qid));
  const acked = events.findIndex((e) => e.op === '250' && e.qid === qid);
  return { fileSynced, renamed, dirSynced, committed, acked };
}

t.test('spool file fsync, rename, directory fsync, store commit, 250: in that order, for every message', async (t) => {
  const { dir, cleanup } = tempDir('fsync-order');
  t.teardown(cleanup);
  const sink = await startSink();
  t.teardown(() => sink.close());
  sink.rcptReply.set('nobody@remote.test', { code: 550, message: 'no such user' });
  const events: Event[] = [];
  const config = testConfig(dir, {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${sink.port}` }],
  });
  // The queue on this thread, so the bounce is written through the same recorded spool.
  const gw = await startGateway(config, { spoolFs: recordingFs(events), queueThread: false, pollMs: 50 });
  t.teardown(() => gw.stop());
  const queue = gw.store.queue;
  const insert = queue.insertMessages.bind(queue);
  queue.insertMessages = (batch: readonly NewMessage[]) => {
    insert(batch);
    events.push({ op: 'commit', qids: batch.map((m) => m.qid) });
  };
  const spoolDir = join(dir, 'spool');

  // Concurrent sessions, so several messages share one group commit.
  const send = async (n: number, to: string) => {
    const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
    try {
      const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: [to] }, raw: `Subject: ${n}\r\n\r\n${'line\r\n'.repeat(n * 50)}` });
      const qid = /^250 .*queued as (\w+)/.exec(info.response)![1]!;
      events.push({ op: '250', qid });
      return qid;
    } finally {
      client.close();
    }
  };
  const qids = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => send(n, n === 6 ? 'nobody@remote.test' : `user${n}@remote.test`)));
  for (const qid of qids) {
    const s = steps(events, spoolDir, qid);
    t.ok(s.fileSynced >= 0, `${qid}: its spool file was fsync'd`);
    t.ok(s.renamed > s.fileSynced, `${qid}: then renamed into the spool directory`);
    t.ok(s.dirSynced > s.renamed, `${qid}: then the spool directory was fsync'd`);
    t.ok(s.committed > s.dirSynced, `${qid}: then its rows were committed`);
    t.ok(s.acked > s.committed, `${qid}: then the client got its 250`);
  }
  const batches = events.filter((e) => e.op === 'commit').length;
  t.comment(`${qids.length} messages in ${batches} group commit(s)`);

  // The 550 for nobody@ makes a bounce, queued like any message.
  const bounceQid = await waitFor(
    () => events.flatMap((e) => (e.op === 'commit' ? e.qids : [])).find((q) => !qids.includes(q)),
    10_000,
    'the bounce to be queued',
  );
  const b = steps(events, spoolDir, bounceQid);
  t.ok(b.fileSynced >= 0 && b.renamed > b.fileSynced && b.dirSynced > b.renamed && b.committed > b.dirSynced, `bounce ${bounceQid}: fsync, rename, directory fsync, then commit`);
});
