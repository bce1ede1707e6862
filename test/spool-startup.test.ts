// Start-up never deletes a spool file it cannot prove finished. When the store lost its
// rows (an empty store file, a changed store.path, a WAL lost after a crash), every
// queued message that got a 250 used to be removed at the next start. Now such files
// are set aside in spool/unknown/ with a loud warning, and `mailbag queue recover`
// queues them again from the envelope each file carries.
import t from 'tap';
import { copyFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { captureLogs } from './helpers/logs.js';
import { startGateway } from '../src/gateway/gateway.js';
import { loadConfig } from '../src/config/load.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { Spool } from '../src/delivery/spool.js';
import { cli } from './helpers/cli.js';
import { maildirFiles, startSink, stripReceived, tempDir, waitFor, writeTestConfig } from './helpers/gateway.js';


const body = (n: number) => `From: ann@sender.test\r\nTo: user${n}@example.test\r\nSubject: number ${n}\r\n\r\nmessage ${n}\r\n`;

type Breakage = 'empty store file' | 'changed store.path' | 'WAL lost after a crash';

for (const breakage of ['empty store file', 'changed store.path', 'WAL lost after a crash'] as Breakage[]) {
  t.test(`${breakage}: queued messages are set aside, not deleted, and recovered`, async (t) => {
    const { dir, cleanup } = tempDir('startup');
    t.teardown(cleanup);
    const probe = await startSink();
    const downPort = probe.port;
    await probe.close();
    // First run: the next hop is down, so every accepted message stays queued.
    const first = loadConfig(
      writeTestConfig(dir, { routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${downPort}` }], queue: { retryInitial: '1h', retryMax: '1h' } }),
    );
    const gw1 = await startGateway(first, { pollMs: 50 });
    const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw1.smtpAddress().port, secure: false, ignoreTLS: true });
    const qids: string[] = [];
    for (let n = 1; n <= 3; n++) {
      const info = await client.sendMail({
        envelope: { from: 'ann@sender.test', to: [`user${n}@example.test`] },
        raw: body(n),
        dsn: { id: `env-${n}`, return: 'headers', notify: ['failure', 'delay'], recipient: 'ann@sender.test' },
      });
      qids.push(/queued as (\w+)/.exec(info.response)![1]!);
    }
    client.close();
    const db = first.store.path;
    if (breakage === 'WAL lost after a crash') copyFileSync(db, join(dir, 'main-file-only.db')); // the rows are still in the WAL
    await gw1.stop();

    // Second run: the same spool, a store without those rows; the next hop is a Maildir now.
    let storePath = db;
    if (breakage === 'empty store file') {
      for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
      writeFileSync(db, '');
    } else if (breakage === 'changed store.path') {
      storePath = join(dir, 'elsewhere', 'mailbag.db');
    } else {
      for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
      copyFileSync(join(dir, 'main-file-only.db'), db);
    }
    const file = writeTestConfig(dir, { store: { path: storePath } });
    const { logger, lines } = captureLogs();
    const gw2 = await startGateway(loadConfig(file), { logger, pollMs: 50 });
    t.teardown(() => gw2.stop());
    const spoolDir = join(dir, 'spool');
    for (const qid of qids) {
      t.notOk(gw2.store.queue.message(qid), `${qid}: the store does not know it`);
      t.ok(existsSync(join(spoolDir, 'unknown', qid)), `${qid}: its spool file is kept in unknown/`);
    }
    t.notOk(lines.some((l) => /removed files/.test(String(l.msg))), 'nothing reported removed');
    const warning = lines.find((l) => l.level === 40 && /unknown to the store/.test(String(l.msg)));
    t.match(warning, { files: 3, movedNow: 3, msg: /3 spool file\(s\) unknown to the store .* run: mailbag queue recover --config FILE/ }, 'a loud warning with the count and the command');

    // An unrelated file among them is reported and left alone.
    writeFileSync(join(spoolDir, 'unknown', 'notes.txt'), 'not a spool file\n');
    const recovered = await cli(['queue', 'recover', '--config', file]);
    t.equal(recovered.code, 1, 'exit 1: a file could not be recovered');
    const out = recovered.stdout.toString();
    for (const qid of qids) t.match(out, new RegExp(`^${qid}: queued again from its envelope$`, 'm'));
    t.match(out, /^notes\.txt: left: not a valid spool file: no mailbag spool header/m);
    t.match(out, /3 of 4 file\(s\) queued/);
    t.ok(existsSync(join(spoolDir, 'unknown', 'notes.txt')), 'the invalid file is left where it was');

    gw2.queue.kick();
    for (const [i, qid] of qids.entries()) {
      const n = i + 1;
      await waitFor(() => gw2.store.queue.message(qid)?.state === 'done', 10_000, `${qid} delivered`);
      const files = maildirFiles(join(dir, 'mailboxes'), 'example.test', `user${n}`);
      t.equal(files.length, 1, `${qid}: delivered once`);
      t.ok(stripReceived(files[0]!.bytes).equals(Buffer.from(body(n))), `${qid}: the accepted bytes`);
      t.match(files[0]!.bytes.toString(), new RegExp(`^Received: [^]*? id ${qid}\\r\\n`), `${qid}: under the same qid`);
      const m = gw2.store.queue.message(qid)!;
      t.match(m, { envelope_from: 'ann@sender.test', client_address: '127.0.0.1', dsn_envid: `env-${n}`, dsn_ret: 'HDRS' }, 'sender, client and MAIL parameters from the envelope');
      t.match(gw2.store.queue.recipients(qid), [{ rcpt: `user${n}@example.test`, dsn_notify: 'FAILURE,DELAY', dsn_orcpt: 'rfc822;ann@sender.test' }], 'recipients and their parameters from the envelope');
    }
    t.same(readdirSync(join(spoolDir, 'unknown')), ['notes.txt'], 'only the invalid file is left in unknown/');

    const again = await cli(['queue', 'recover', '--config', file]);
    t.match(again.stdout.toString(), /^notes\.txt: left: not a valid spool file/m, 'a second run changes nothing');
    t.match(again.stdout.toString(), /0 of 1 file\(s\) queued/);
    rmSync(join(spoolDir, 'unknown', 'notes.txt'));
    const third = await cli(['queue', 'recover', '--config', file]);
    t.same([third.code, third.stdout.toString()], [0, 'no spool files to recover\n']);
  });
}

t.test('new qids start past those of the files set aside, so a recovered message never collides', async (t) => {
  const { dir, cleanup } = tempDir('startup-qids');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  // A file set aside by an earlier run whose clock was ahead (or a store that was lost).
  const ahead = new QidGenerator().next(Date.now() + 86_400_000);
  const spool = new Spool(join(dir, 'spool'));
  const w = await spool.create({ qid: ahead, receivedAt: Date.now(), sender: 'ann@sender.test', recipients: [{ address: 'carol@example.test' }] });
  await new Promise<void>((r) => w.end('Subject: set aside\r\n\r\nhi\r\n', () => r()));
  await w.commit();
  await spool.moveAside(ahead);
  const gw = await startGateway(loadConfig(file), { pollMs: 50 });
  t.teardown(() => gw.stop());
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['dave@example.test'] }, raw: 'Subject: new\r\n\r\nhi\r\n' });
  client.close();
  const fresh = /queued as (\w+)/.exec(info.response)![1]!;
  t.ok(fresh > ahead, `the new message's qid ${fresh} comes after the set-aside ${ahead}`);
  const recovered = await cli(['queue', 'recover', '--config', file]);
  t.match(recovered.stdout.toString(), new RegExp(`^${ahead}: queued again from its envelope$`, 'm'));
  gw.queue.kick();
  await waitFor(() => gw.store.queue.message(ahead)?.state === 'done', 10_000, 'the recovered message delivered');
  t.equal(maildirFiles(join(dir, 'mailboxes'), 'example.test', 'carol').length, 1);
});
