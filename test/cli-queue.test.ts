// `mailbag queue list|show|retry|delete` against the store of a running gateway.
import t from 'tap';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import { loadConfig } from '../src/config/load.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { startSink, tempDir, waitFor, writeTestConfig } from './helpers/gateway.js';

t.test('queue commands on a live queue', async (t) => {
  const { dir, cleanup } = tempDir('cli-queue');
  t.teardown(cleanup);
  const probe = await startSink();
  const port = probe.port;
  await probe.close();
  // The next hop is down and retries are an hour apart: messages stay deferred until `retry`.
  const file = writeTestConfig(dir, {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${port}` }],
    queue: { retryInitial: '1h', retryMax: '1h' },
  });
  const gw = await startGateway(loadConfig(file), { pollMs: 50 });
  t.teardown(() => gw.stop());

  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const qids: string[] = [];
  for (const to of ['bob@remote.test', 'carol@remote.test']) {
    const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: [to] }, raw: `Subject: for ${to}\r\n\r\nhi\r\n` });
    qids.push(/queued as (\w+)/.exec(info.response)![1]!);
  }
  client.close();
  const [keep, drop] = qids as [string, string];
  await waitFor(() => qids.every((q) => gw.store.queue.attempts(q).length === 1), 3000, 'first attempts');

  const list = await cli(['queue', 'list', '--config', file]);
  t.equal(list.code, 0);
  const out = list.stdout.toString();
  t.match(out, /^QID\s+RECEIVED\s+SIZE\s+PENDING/);
  t.match(out, new RegExp(`^${keep} .* ann@sender\\.test$`, 'm'));
  t.match(out, /2 message\(s\) in the queue/);
  const json = JSON.parse((await cli(['queue', 'list', '--json', '--config', file])).stdout.toString()) as { qid: string; pending: number }[];
  t.same(json.map((r) => [r.qid, r.pending]), [[keep, 1], [drop, 1]]);

  const show = await cli(['queue', 'show', keep.toLowerCase(), '--config', file]);
  t.equal(show.code, 0, 'qids are case-insensitive on the command line');
  const s = show.stdout.toString();
  t.match(s, new RegExp(`qid:\\s+${keep}`));
  t.match(s, /bob@remote\.test {2}deferred {2}attempts 1 {2}next \S+ {2}last: .*ECONNREFUSED/);
  t.match(s, new RegExp(`attempts:\\n {2}\\S+ {2}smtp://127\\.0\\.0\\.1:${port} {2}deferred`));

  // delete: recipients marked deleted, spool file gone, no longer listed, no bounce
  const spoolPath = gw.store.queue.message(drop)!.spool_path;
  const del = await cli(['queue', 'delete', drop, '--config', file]);
  t.equal(del.code, 0);
  t.match(del.stdout.toString(), new RegExp(`^${drop}: 1 recipient\\(s\\) deleted; spool file removed`));
  t.notOk(existsSync(spoolPath));
  t.equal(gw.store.queue.recipients(drop)[0]!.state, 'deleted');
  t.notMatch((await cli(['queue', 'list', '--config', file])).stdout.toString(), new RegExp(drop));
  t.equal((gw.store.db.prepare("SELECT COUNT(*) AS n FROM messages WHERE envelope_from = ''").get() as { n: number }).n, 0, 'a deleted message is not bounced');

  // retry: the next hop is back; the running gateway picks the recipient up
  const sink = await startSink({ port });
  t.teardown(() => sink.close());
  const retry = await cli(['queue', 'retry', keep, '--config', file]);
  t.equal(retry.code, 0);
  t.match(retry.stdout.toString(), `${keep}: 1 recipient(s) due now`);
  await waitFor(() => sink.messages.length === 1, 3000, 'delivery after retry');
  await waitFor(() => gw.store.queue.message(keep)?.state === 'done', 2000, 'done');
  t.match((await cli(['queue', 'list', '--config', file])).stdout.toString(), /^queue is empty$/m);

  for (const argv of [['show', '0000000000000'], ['retry', '0000000000000'], ['delete', '0000000000000']]) {
    const r = await cli(['queue', ...argv, '--config', file]);
    t.equal(r.code, 1, `${argv[0]} of an unknown qid fails`);
    t.equal(r.stderr, `mailbag queue ${argv[0]}: no message 0000000000000 in the queue\n`, 'with one line');
  }
  t.equal((await cli(['queue', 'show', 'not-a-qid', '--config', file])).code, 1);
  t.equal((await cli(['queue', 'show', '--config', file])).code, 2, 'missing QID is a usage error');
});

t.test('queue commands without a store say so', async (t) => {
  const { dir, cleanup } = tempDir('cli-nostore');
  t.teardown(cleanup);
  const r = await cli(['queue', 'list', '--config', writeTestConfig(dir)]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^mailbag queue list: no store at .*mailbag\.db/);
});

t.test('queue recover: a file left as invalid exits 1 with one line on stderr saying so', async (t) => {
  const { dir, cleanup } = tempDir('cli-recover');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  Store.open(join(dir, 'mailbag.db')).close();
  mkdirSync(join(dir, 'spool', 'unknown'), { recursive: true });
  writeFileSync(join(dir, 'spool', 'unknown', 'notes.txt'), 'not a spool file\n');
  const r = await cli(['queue', 'recover', '--config', file]);
  t.equal(r.code, 1);
  t.match(r.stdout.toString(), /^notes\.txt: left: not a valid spool file/m, 'each file on stdout');
  t.equal(r.stderr, `mailbag queue recover: 1 file(s) in ${join(dir, 'spool', 'unknown')} are not valid spool files and were left there\n`);
});
