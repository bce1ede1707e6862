// The spool writer's descriptor life: a discard never closes the fd under a write still
// in flight (the number would be free for another session's spool file, which the late
// write would then hit), the spool directory stays open for the group commit's fsync (and
// is closed only once no fsync uses it), and the envelope and end record frame the
// message bytes.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Spool } from '../src/delivery/spool.js';
import { nodeSpoolFs, type SpoolFs } from '../src/delivery/spool-fs.js';
import { tempDir } from './helpers/gateway.js';

const envelope = (qid: string) => ({ qid, receivedAt: 1_700_000_000_000, sender: 'ann@sender.test', recipients: [{ address: 'bob@example.test' }] });

t.test('discard while a writev is in flight closes the fd only after the write completed', async (t) => {
  const { dir, cleanup } = tempDir('spool-discard');
  t.teardown(cleanup);
  const events: string[] = [];
  let releaseWrite!: () => void;
  const writeHeld = new Promise<void>((r) => (releaseWrite = r));
  let writeStarted!: () => void;
  const started = new Promise<void>((r) => (writeStarted = r));
  const slowFs: SpoolFs = {
    ...nodeSpoolFs,
    async writev(fd, bufs) {
      events.push('writev start');
      writeStarted();
      await writeHeld;
      const res = await nodeSpoolFs.writev(fd, bufs);
      events.push('writev done');
      return res;
    },
    async close(fd) {
      events.push('close');
      return nodeSpoolFs.close(fd);
    },
  };
  const spool = new Spool(`${dir}/spool`, { fs: slowFs });
  const w = await spool.create(envelope('0MAAAAAAA0000'));
  w.on('error', () => undefined);
  w.write(Buffer.alloc(200 * 1024, 0x61)); // over the flush threshold: a writev starts
  await started;
  const discarded = w.discard();
  // Give the discard every chance to close early: several turns of the event loop and the thread pool.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  t.same(events, ['writev start'], 'nothing closed while the write is in flight');
  releaseWrite();
  await discarded;
  t.same(events, ['writev start', 'writev done', 'close'], 'the fd is closed after the write completed');
});

t.test('a spool file is envelope, message, end record; the writer counts and hashes the message only', async (t) => {
  const { dir, cleanup } = tempDir('spool-format');
  t.teardown(cleanup);
  const spool = new Spool(`${dir}/spool`);
  const w = await spool.create(envelope('0MAAAAAAA0001'));
  const message = Buffer.from('Subject: hi\r\n\r\nbody\r\n');
  await new Promise<void>((r) => w.end(message, () => r()));
  const path = await w.commit();
  const bytes = readFileSync(path);
  const sha = createHash('sha256').update(message).digest('hex');
  t.equal(w.bytes, message.length);
  t.equal(w.sha256, sha);
  t.match(bytes.subarray(0, w.offset).toString(), /^MAILBAG-SPOOL 1 \d+\n\{.*"qid":"0MAAAAAAA0001".*\}\n$/s);
  t.ok(bytes.subarray(w.offset, w.offset + message.length).equals(message), 'the message bytes follow the envelope');
  t.equal(bytes.subarray(w.offset + message.length).toString(), `\nMAILBAG-SPOOL-END ${message.length} ${sha}\n`);
  const inspected = await spool.inspect(path);
  t.same(inspected, { envelope: envelope('0MAAAAAAA0001'), offset: w.offset, size: message.length, sha256: sha }, 'the file describes itself');
});

t.test('the envelope keeps MAIL and RCPT parameters; a damaged envelope or end record is not a spool file', async (t) => {
  const { dir, cleanup } = tempDir('spool-envelope');
  t.teardown(cleanup);
  const spool = new Spool(`${dir}/spool`);
  const full = {
    qid: '0MAAAAAAA0002',
    receivedAt: 1_700_000_000_000,
    sender: '',
    mail: { bodyType: '8bitmime' as const, smtpUtf8: true, dsnEnvid: 'abc123', dsnRet: 'HDRS' as const, declaredSize: 1234 },
    recipients: [
      { address: 'bob@example.test', orcpt: 'rfc822;bob@example.test', notify: ['FAILURE' as const, 'DELAY' as const] },
      { address: 'carol@example.test', notify: ['NEVER' as const] },
    ],
    client: { address: '192.0.2.1', hostname: 'client.example', helo: 'client.example', authUser: 'ann' },
  };
  const w = await spool.create(full);
  await new Promise<void>((r) => w.end('Subject: p\r\n\r\nx\r\n', () => r()));
  const path = await w.commit();
  t.same((await spool.inspect(path)).envelope, full, 'every parameter comes back');

  const bytes = readFileSync(path);
  const broken = (name: string, b: Buffer) => {
    const p = `${dir}/${name}`;
    writeFileSync(p, b);
    return spool.inspect(p);
  };
  await t.rejects(broken('cut', bytes.subarray(0, bytes.length - 10)), { code: 'ERR_MAILBAG_SPOOL_FORMAT', message: /no end record/ });
  const changed = Buffer.from(bytes);
  changed[w.offset] = changed[w.offset]! ^ 0x20;
  await t.rejects(broken('changed', changed), { code: 'ERR_MAILBAG_SPOOL_FORMAT', message: /does not match the checksum/ });
  const badJson = Buffer.from(bytes.toString('latin1').replace('"sender":""', '"sender":7 '), 'latin1');
  await t.rejects(broken('badjson', badJson), { code: 'ERR_MAILBAG_SPOOL_FORMAT', message: /envelope is invalid: sender/ });
  await t.rejects(broken('plain', Buffer.from('Subject: a plain message\r\n\r\n')), { code: 'ERR_MAILBAG_SPOOL_FORMAT', message: /no mailbag spool header/ });
});

t.test('syncDir keeps the spool directory open: one fsync per call, and close waits for a sync in flight', async (t) => {
  const { dir, cleanup } = tempDir('spool-syncdir');
  t.teardown(cleanup);
  const events: string[] = [];
  let holdSync: Promise<void> | undefined;
  let syncStarted!: () => void;
  const started = new Promise<void>((r) => (syncStarted = r));
  const fs: SpoolFs = {
    ...nodeSpoolFs,
    async open(path, flags, mode) {
      events.push(`open ${path === `${dir}/spool` ? 'dir' : 'file'}`);
      return nodeSpoolFs.open(path, flags, mode);
    },
    async fsync(fd) {
      events.push('fsync start');
      syncStarted();
      await holdSync;
      await nodeSpoolFs.fsync(fd);
      events.push('fsync done');
    },
    async close(fd) {
      events.push('close');
      return nodeSpoolFs.close(fd);
    },
  };
  const spool = new Spool(`${dir}/spool`, { fs });
  await spool.syncDir();
  await spool.syncDir();
  t.same(events, ['open dir', 'fsync start', 'fsync done', 'fsync start', 'fsync done'], 'opened once, one fsync per call, never closed in between');
  events.length = 0;
  let release!: () => void;
  holdSync = new Promise<void>((r) => (release = r));
  const syncing = spool.syncDir();
  await started;
  spool.close();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  t.same(events, ['fsync start'], 'nothing closed while the fsync is in flight');
  release();
  await syncing;
  while (!events.includes('close')) await new Promise((r) => setImmediate(r));
  t.same(events, ['fsync start', 'fsync done', 'close'], 'the descriptor is closed after the fsync completed');
  holdSync = undefined;
  events.length = 0;
  await spool.syncDir();
  t.same(events, ['open dir', 'fsync start', 'fsync done', 'close'], 'a sync after close fsyncs the directory and keeps no descriptor open');
});

t.test('a failed directory fsync is reported and the next syncDir opens the directory afresh', async (t) => {
  const { dir, cleanup } = tempDir('spool-syncdir-fail');
  t.teardown(cleanup);
  const events: string[] = [];
  let fail = true;
  const fs: SpoolFs = {
    ...nodeSpoolFs,
    async open(path, flags, mode) {
      events.push('open');
      return nodeSpoolFs.open(path, flags, mode);
    },
    async fsync(fd) {
      if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      return nodeSpoolFs.fsync(fd);
    },
  };
  const spool = new Spool(`${dir}/spool`, { fs });
  await t.rejects(spool.syncDir(), { code: 'EIO' });
  fail = false;
  await spool.syncDir();
  t.same(events, ['open', 'open'], 'the descriptor that failed is not trusted again');
  spool.close();
});

t.test('a commit that fails once the file is renamed leaves no spool file behind (it has no row: recovery would deliver it again)', async (t) => {
  const { dir, cleanup } = tempDir('spool-commit-fail');
  t.teardown(cleanup);
  let failClose = false;
  const fs: SpoolFs = {
    ...nodeSpoolFs,
    async close(fd) {
      await nodeSpoolFs.close(fd);
      if (failClose) throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO' });
    },
  };
  const spool = new Spool(`${dir}/spool`, { fs });
  const w = await spool.create(envelope('0MAAAAAAA0009'));
  await new Promise<void>((r) => w.end(Buffer.from('Subject: hi\r\n\r\nbody\r\n'), () => r()));
  failClose = true;
  await t.rejects(w.commit({ syncDir: false }), { code: 'EIO' });
  await w.discard();
  t.notOk(existsSync(w.finalPath), 'nothing at the final path');
  t.notOk(existsSync(w.tmpPath), 'nothing at the temporary path');
});
