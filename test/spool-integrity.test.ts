// Spool files are checked before delivery against what the store recorded at accept
// (length, envelope header, end record, sha256 of the message): a truncated, altered
// or missing file is held with its reason in `queue list/show` and an error log line,
// never delivered as it is and never retried on its own.
import t from 'tap';
import { appendFileSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureLogs } from './helpers/logs.js';
import { startGateway } from '../src/gateway/gateway.js';
import { loadConfig } from '../src/config/load.js';
import { Store } from '../src/store/store.js';
import { HELD_UNTIL } from '../src/store/queue-store.js';
import { Spool } from '../src/delivery/spool.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { enqueueGenerated } from '../src/delivery/enqueue.js';
import { cli } from './helpers/cli.js';
import { maildirFiles, tempDir, waitFor, writeTestConfig } from './helpers/gateway.js';

function message(name: string, bytes = 0): Buffer {
  return Buffer.from(`From: ann@sender.test\r\nTo: ${name}@example.test\r\nSubject: ${name}\r\n\r\n${'x'.repeat(bytes)}body of ${name}\r\n`);
}


t.test('truncated, altered, grown and missing spool files are held, never delivered', async (t) => {
  const { dir, cleanup } = tempDir('integrity');
  t.teardown(cleanup);
  const file = writeTestConfig(dir);
  const config = loadConfig(file);
  const store = Store.open(config.store.path);
  const spool = new Spool(config.spool.dir);
  const qids = new QidGenerator();
  const names = ['intact', 'truncated', 'altered', 'grown', 'missing', 'bigintact', 'bigaltered'] as const;
  const qidOf: Record<string, string> = {};
  const bytesOf: Record<string, Buffer> = {};
  for (const name of names) {
    bytesOf[name] = message(name, name.startsWith('big') ? 400 * 1024 : 0);
    qidOf[name] = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'ann@sender.test', recipients: [`${name}@example.test`], bytes: bytesOf[name]! });
  }
  const pathOf = (name: string) => store.queue.message(qidOf[name]!)!.spool_path;
  const original = readFileSync(pathOf('altered'));
  store.close();

  // What a disk, a crash of the file system or a careless hand can do to a spool file.
  const s = new Spool(config.spool.dir);
  const at = (name: string) => s.pathFor(qidOf[name]!);
  truncateSync(at('truncated'), readFileSync(at('truncated')).length - 30);
  const flip = (name: string, from: string, to: string) => {
    const b = readFileSync(at(name));
    const i = b.indexOf(from);
    b.write(to, i);
    writeFileSync(at(name), b);
  };
  flip('altered', 'body of altered', 'BODY OF ALTERED'); // same length, different bytes
  flip('bigaltered', 'body of bigaltered', 'BODY OF BIGALTERED');
  appendFileSync(at('grown'), 'more\r\n');
  rmSync(at('missing'));

  const { logger, lines } = captureLogs();
  const gw = await startGateway(config, { logger, queueThread: false, pollMs: 50 });
  t.teardown(() => gw.stop());
  const q = gw.store.queue;
  await waitFor(() => q.message(qidOf.intact!)?.state === 'done' && q.message(qidOf.bigintact!)?.state === 'done', 10_000, 'the intact messages delivered');
  const damaged = ['truncated', 'altered', 'grown', 'missing', 'bigaltered'];
  await waitFor(() => damaged.every((n) => q.message(qidOf[n]!)?.hold_reason), 10_000, 'the damaged messages held');

  const box = (name: string) => maildirFiles(join(dir, 'mailboxes'), 'example.test', name);
  t.ok(box('intact')[0]?.bytes.equals(bytesOf.intact!), 'an intact file is delivered byte for byte');
  t.ok(box('bigintact')[0]?.bytes.equals(bytesOf.bigintact!), 'an intact large (streamed) file too');
  const expected: Record<string, RegExp> = {
    truncated: /is truncated: \d+ octets, \d+ recorded at accept/,
    altered: /has changed: sha256 [0-9a-f]{64}, [0-9a-f]{64} recorded at accept/,
    grown: /has changed: \d+ octets, \d+ recorded at accept/,
    missing: /is missing/,
    bigaltered: /has changed: sha256/,
  };
  for (const name of damaged) {
    const qid = qidOf[name]!;
    t.same(box(name), [], `${name}: nothing delivered`);
    const m = q.message(qid)!;
    t.match(m, { state: 'queued', hold_reason: expected[name] }, `${name}: held with the reason`);
    const r = q.recipients(qid)[0]!;
    t.match(r, { state: 'queued', attempts: 0, next_attempt_at: HELD_UNTIL, inflight_until: null }, `${name}: no attempt, never due while held`);
    t.ok(
      lines.some((l) => l.level === 50 && l.qid === qid && /message held/.test(String(l.msg)) && expected[name]!.test(String(l.reason))),
      `${name}: an error log line says why`,
    );
  }
  t.equal(q.attempts(qidOf.missing!).length, 0, 'a missing file is not retried (no attempt recorded)');

  const list = await cli(['queue', 'list', '--config', file]);
  t.equal(list.code, 0);
  t.match(list.stdout.toString(), new RegExp(`^${qidOf.truncated} .* HELD +ann@sender\\.test$`, 'm'), 'queue list marks it HELD');
  t.match(list.stdout.toString(), new RegExp(`^held ${qidOf.missing}: spool file .* is missing$`, 'm'), 'and says why');
  t.match(list.stdout.toString(), /5 message\(s\) in the queue, 5 held/);
  const show = await cli(['queue', 'show', qidOf.altered!, '--config', file]);
  t.match(show.stdout.toString(), /^state: +queued \(held since \S+: spool file .* has changed: sha256/m, 'queue show says held and why');
  t.match(show.stdout.toString(), /altered@example\.test {2}queued {2}attempts 0 {2}held/);

  // The operator puts the right file back and releases the hold: delivered as accepted.
  writeFileSync(at('altered'), original);
  const retry = await cli(['queue', 'retry', qidOf.altered!, '--config', file]);
  t.match(retry.stdout.toString(), /hold released; 1 recipient\(s\) due now/);
  gw.queue.kick();
  await waitFor(() => q.message(qidOf.altered!)?.state === 'done', 10_000, 'the released message delivered');
  t.ok(box('altered')[0]?.bytes.equals(bytesOf.altered!), 'delivered byte for byte once the file is right');
  t.equal(q.message(qidOf.altered!)!.hold_reason, null, 'no longer held');
});

t.test('a spool file cut short after its check is never streamed as a whole message', async (t) => {
  const { dir, cleanup } = tempDir('integrity-late');
  t.teardown(cleanup);
  const config = loadConfig(writeTestConfig(dir));
  const store = Store.open(config.store.path);
  t.teardown(() => store.close());
  const spool = new Spool(config.spool.dir);
  const qid = await enqueueGenerated({ spool, store, qids: new QidGenerator() }, { envelopeFrom: 'ann@sender.test', recipients: ['bob@example.test'], bytes: message('late', 400 * 1024) });
  const row = store.queue.message(qid)!;
  const verified = await spool.openVerified(row);
  // the file loses its tail between the check and the delivery (a disk, a careless hand)
  truncateSync(row.spool_path, row.spool_offset + 1000);
  const got: Buffer[] = [];
  const err = await new Promise<Error | undefined>((resolve) => {
    const stream = verified.open();
    stream.on('data', (c: Buffer) => got.push(c));
    stream.on('end', () => resolve(undefined));
    stream.on('error', resolve);
  });
  t.ok(err, 'the stream fails instead of ending: a next hop never gets the final dot after a short message');
  t.match(err, { code: 'ERR_MAILBAG_SPOOL_TRUNCATED' });
  t.ok(Buffer.concat(got).length < row.size, `${Buffer.concat(got).length} of ${row.size} octets`);
});

t.test('a spool file gone before it is read fails the stream with the error', async (t) => {
  const { dir, cleanup } = tempDir('integrity-gone');
  t.teardown(cleanup);
  const config = loadConfig(writeTestConfig(dir));
  const store = Store.open(config.store.path);
  t.teardown(() => store.close());
  const spool = new Spool(config.spool.dir);
  const qid = await enqueueGenerated({ spool, store, qids: new QidGenerator() }, { envelopeFrom: 'ann@sender.test', recipients: ['bob@example.test'], bytes: message('gone', 400 * 1024) });
  const row = store.queue.message(qid)!;
  rmSync(row.spool_path);
  const err = await new Promise<Error | undefined>((resolve) => {
    const stream = spool.read(row);
    stream.resume();
    stream.on('end', () => resolve(undefined));
    stream.on('error', resolve);
  });
  t.match(err, { code: 'ENOENT' });
});
