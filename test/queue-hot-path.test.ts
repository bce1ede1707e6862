// The queue thread's per-message work: the spool file is read once per delivery (the check
// before delivery hands the header section to the correlation keys), the keys commit in
// the round's own transaction, and a backlog of handed-over messages is claimed without a
// store scan per claim, in the transaction that records the round before. Events and counts are ordered, never timed.
import t from 'tap';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { Spool, headerSectionOf, MAX_HEADER_SECTION_BYTES, type SpooledMessageRef } from '../src/delivery/spool.js';
import { CorrelationStore } from '../src/store/correlation-store.js';
import { QueueStore } from '../src/store/queue-store.js';
import { waitFor, tempDir } from './helpers/gateway.js';
import { gate, reply, startEngine } from './helpers/queue-engine.js';

/** Counts the opens of `path` through node:fs's read calls, in every module (ESM bindings too). */
function countReads(t: { teardown(fn: () => void): void }, path: () => string | undefined): { count: number } {
  const seen = { count: 0 };
  const readFileSync = fs.readFileSync;
  const createReadStream = fs.createReadStream;
  const open = fs.promises.open;
  const hit = (p: unknown) => {
    if (String(p) === path()) seen.count++;
  };
  fs.readFileSync = ((p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    hit(p);
    return (readFileSync as (...a: unknown[]) => unknown)(p, ...rest);
  }) as typeof fs.readFileSync;
  fs.createReadStream = ((p: fs.PathLike, ...rest: unknown[]) => {
    hit(p);
    return (createReadStream as (...a: unknown[]) => fs.ReadStream)(p, ...rest);
  }) as typeof fs.createReadStream;
  fs.promises.open = ((p: fs.PathLike, ...rest: unknown[]) => {
    hit(p);
    return (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
  }) as typeof fs.promises.open;
  syncBuiltinESMExports();
  t.teardown(() => {
    fs.readFileSync = readFileSync;
    fs.createReadStream = createReadStream;
    fs.promises.open = open;
    syncBuiltinESMExports();
  });
  return seen;
}

const HEADER = 'Message-ID: <hot-path-1@sender.test>\r\nX-Proofpoint-GUID: hotpathguid0001\r\nSubject: test\r\n\r\n';

/**
 * One delivery slot, a poll interval longer than the test (every scan has a reason), and a
 * first message whose delivery is held until `held.open()`, so what is enqueued next waits.
 */
async function engineWithHeldFirst(t: { teardown(fn: () => unknown): void }) {
  const e = await startEngine({ queue: { concurrency: 1 }, pollMs: 600_000 });
  t.teardown(() => e.close());
  const held = gate();
  e.transport.answers.push(async (req) => {
    await held.promise;
    return reply(req, 'delivered', '250 2.0.0 ok');
  });
  const first = await e.enqueue(['bob@example.test']);
  await e.transport.started(1);
  return { e, held, first };
}

t.test('one read of the spool file per delivery; the keys commit with the round that carries them', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20, attemptTimeout: 50 } });
  t.teardown(() => e.close());
  let spoolPath: string | undefined;
  const reads = countReads(t, () => spoolPath);
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  let refused = 0;
  let diskFull = true;
  const order: string[] = [];
  e.store.queue.recordRounds = (rounds, now, keysFailed, ...rest) => {
    if (diskFull) {
      if (++refused === 1) order.push(`result refused; keys ${e.store.correlation.hasKeys(rounds[0]!.qid) ? 'recorded' : 'not recorded'}`);
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    const done = recordRounds(rounds, now, keysFailed, ...rest);
    order.push(`result recorded; keys ${e.store.correlation.hasKeys(rounds[0]!.qid) ? 'recorded' : 'not recorded'}`);
    return done;
  };
  // the spool path is known once the message is queued; the queue reads it after the kick
  const { QidGenerator } = await import('../src/delivery/qid.js');
  const { enqueueGenerated } = await import('../src/delivery/enqueue.js');
  const qid = await enqueueGenerated(
    { spool: e.spool, store: e.store, qids: new QidGenerator(undefined) },
    { envelopeFrom: 'ann@sender.test', recipients: ['bob@example.test', 'carol@example.test'], bytes: Buffer.from(`${HEADER}body\r\n`) },
  );
  spoolPath = e.store.queue.message(qid)!.spool_path;
  e.queue.kick([qid]);
  await waitFor(() => refused >= 2, 5000, 'the result refused twice');
  t.notOk(e.store.correlation.hasKeys(qid), 'no keys while the round result waits: they commit together');
  diskFull = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the result recorded');
  t.same(order, ['result refused; keys not recorded', 'result recorded; keys recorded']);
  t.equal(e.transport.attempts.length, 1, 'delivered once');
  t.equal(reads.count, 1, 'the spool file was opened once: the check before delivery; the keys came from its bytes');
  const keys = e.store.correlation.keys(qid)!;
  t.equal(keys.message_id, 'hot-path-1@sender.test');
  t.equal(keys.pp_guid, 'hotpathguid0001');
  t.same(JSON.parse(keys.rcpts), ['bob@example.test', 'carol@example.test'], 'every recipient, read in the recording transaction');
});

t.test('keys the store refuses are logged; the round result is recorded all the same', async (t) => {
  const e = await startEngine();
  t.teardown(() => e.close());
  // on the prototype: the queue records on a connection of its own, with statements of its own
  const recordIn = CorrelationStore.prototype.recordMessageKeysIn;
  t.teardown(() => {
    CorrelationStore.prototype.recordMessageKeysIn = recordIn;
  });
  let refuse = true;
  CorrelationStore.prototype.recordMessageKeysIn = function (this: CorrelationStore, m, now, upstream) {
    if (refuse) throw Object.assign(new Error('CHECK constraint failed: keys'), { code: 'SQLITE_CONSTRAINT_CHECK' });
    return recordIn.call(this, m, now, upstream);
  };
  e.transport.answers.push((req) => reply(req, 'deferred', '451 4.3.2 try later'));
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => e.store.queue.attempts(qid).length === 1, 5000, 'the first round recorded');
  t.equal(e.store.queue.recipients(qid)[0]!.state, 'deferred', 'the result is recorded');
  t.notOk(e.store.correlation.hasKeys(qid), 'the keys are not');
  t.ok(e.logs.some((l) => l.level === 50 && l.qid === qid && /correlation: keys not recorded/.test(l.msg)), 'logged at error level');
  refuse = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the retry delivered');
  t.ok(e.store.correlation.hasKeys(qid), 'the next round recorded them');
});

t.test('a backlog of handed-over messages is claimed without a store scan per claim', async (t) => {
  const { e, held, first } = await engineWithHeldFirst(t);
  const backlog: string[] = [];
  for (let i = 0; i < 5; i++) backlog.push(await e.enqueue([`r${i}@example.test`]));
  // an external kick (the queue CLI): the next tick scans the store, and that scan fills the slot
  e.queue.kick();
  let scans = 0;
  const dueMessages = e.store.queue.dueMessages.bind(e.store.queue);
  e.store.queue.dueMessages = (now, limit) => {
    scans++;
    return dueMessages(now, limit);
  };
  held.open();
  await waitFor(() => [first, ...backlog].every((q) => e.store.queue.message(q)!.state === 'done'), 10_000, 'the backlog delivered');
  t.equal(e.transport.attempts.length, 6, 'each message delivered once');
  // the kick's scan filled the slot; the handed-over qids then filled it without asking the
  // store, which is scanned again at most once, when they ran out (more may have been due)
  t.ok(scans >= 1 && scans <= 2, `at most two scans for six claims (one per claim before): ${scans}`);
});

t.test('the next messages are claimed in the transaction that records the finished rounds', async (t) => {
  const { e, held, first } = await engineWithHeldFirst(t);
  const backlog: string[] = [];
  for (let i = 0; i < 4; i++) backlog.push(await e.enqueue([`r${i}@example.test`]));
  let claimTransactions = 0;
  const claimMany = e.store.queue.claimMany.bind(e.store.queue);
  e.store.queue.claimMany = (qids, now, until, opts) => {
    claimTransactions++;
    return claimMany(qids, now, until, opts);
  };
  // what each recording transaction left leased: the next message, claimed before its commit
  const leasedAfterRecording: number[] = [];
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  e.store.queue.recordRounds = (rounds, now, keysFailed, next, opts) => {
    const done = recordRounds(rounds, now, keysFailed, next, opts);
    leasedAfterRecording.push(backlog.filter((q) => e.store.queue.recipients(q).some((r) => r.inflight_until !== null)).length);
    return done;
  };
  held.open();
  await waitFor(() => [first, ...backlog].every((q) => e.store.queue.message(q)!.state === 'done'), 10_000, 'the backlog delivered');
  t.equal(e.transport.attempts.length, 5, 'each message delivered once');
  t.equal(claimTransactions, 0, 'no claim had a transaction of its own: each came with the recording of the round before');
  t.same(leasedAfterRecording, [1, 1, 1, 1, 0], 'each recording transaction left the next message claimed');
});

t.test('a claim the store refuses in the recording transaction costs the rounds nothing; the message is claimed later', async (t) => {
  const { e, held, first } = await engineWithHeldFirst(t);
  const second = await e.enqueue(['carol@example.test']);
  // the store's claim statement fails once: the claim made with the first round's recording
  // on the prototype: the queue claims on a connection of its own, with statements of its own
  const proto = QueueStore.prototype as unknown as { claimManyIn(...a: unknown[]): unknown };
  const claimManyIn = proto.claimManyIn;
  t.teardown(() => {
    proto.claimManyIn = claimManyIn;
  });
  let refused = 0;
  proto.claimManyIn = function (this: unknown, ...a: unknown[]) {
    if (refused++ === 0) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    return claimManyIn.apply(this, a);
  };
  held.open();
  await waitFor(() => e.store.queue.message(second)!.state === 'done', 10_000, 'the second message delivered');
  t.equal(e.store.queue.message(first)!.state, 'done', 'the first round was recorded');
  t.equal(e.store.queue.attempts(first).length, 1, 'once');
  t.ok(refused >= 2, 'the claim was refused, then made again');
  t.ok(e.logs.some((l) => l.level === 50 && /queue: scheduling failed/.test(l.msg)), 'the refused claim is logged at error level');
  t.equal(e.transport.attempts.length, 2, 'each message delivered once');
});

t.test('openVerified hands out the header section of the bytes it checked', async (t) => {
  const { dir, cleanup } = tempDir('hot-path-spool');
  t.teardown(cleanup);
  const spool = new Spool(join(dir, 'spool'));
  const write = async (qid: string, bytes: Buffer): Promise<SpooledMessageRef> => {
    const w = await spool.create({ qid, receivedAt: 0, sender: 'a@b.test', recipients: [{ address: 'c@d.test' }] });
    await new Promise<void>((r) => w.end(bytes, () => r()));
    const path = await w.commit();
    return { qid, spool_path: path, size: w.bytes, spool_offset: w.offset, sha256: w.sha256! };
  };
  const small = await spool.openVerified(await write('0Q0000000000A', Buffer.from(`${HEADER}body\r\n`)));
  t.equal(small.headerSection.toString(), HEADER, 'a small message: up to and including the blank line');
  // a large message, hashed in a streaming pass: the blank line falls across two read chunks
  const filler = `X-Filler: ${'f'.repeat(1000)}\r\n`;
  const head = filler.repeat(65) + 'Subject: large\r\n';
  // the header section ends 2 octets past the second 64 KiB chunk: its CRLF CRLF straddles them
  const boundary = 128 * 1024;
  const padding = 'X-Pad: ' + 'p'.repeat(boundary - head.length - 'X-Pad: '.length - 2) + '\r\n';
  const largeHeader = head + padding + '\r\n';
  t.equal(largeHeader.length, boundary + 2);
  const large = await spool.openVerified(await write('0Q0000000000B', Buffer.concat([Buffer.from(largeHeader), Buffer.alloc(300 * 1024, 0x61)])));
  t.equal(large.headerSection.toString(), largeHeader, 'a large message: the header section from the hashing pass');
  const noBlank = await spool.openVerified(await write('0Q0000000000C', Buffer.alloc(400 * 1024, 0x62)));
  t.equal(noBlank.headerSection.length, MAX_HEADER_SECTION_BYTES, 'no blank line: cut at the bound');
  t.equal(headerSectionOf(Buffer.from('Subject: x\r\n')).toString(), 'Subject: x\r\n', 'no body: the whole message');
});

t.test('the next due time is asked once per poll interval, not per tick; the queue\'s own deferrals still retry on time', async (t) => {
  // a poll interval no test waits for: a retry that happens came from the queue's own note
  const e = await startEngine({ pollMs: 600_000, queue: { retryInitial: 20, retryMax: 20 } });
  t.teardown(() => e.close());
  let asked = 0;
  const nextDueAt = e.store.queue.nextDueAt.bind(e.store.queue);
  e.store.queue.nextDueAt = (now) => (asked++, nextDueAt(now));
  e.transport.answers.push((req) => reply(req, 'deferred', '451 4.3.0 try again'));
  const deferred = await e.enqueue(['slow@example.test']);
  const others: string[] = [];
  for (let i = 0; i < 5; i++) others.push(await e.enqueue([`r${i}@example.test`]));
  await waitFor(() => [deferred, ...others].every((q) => e.store.queue.message(q)!.state === 'done'), 10_000, 'every message delivered');
  t.equal(e.transport.attempts.filter((a) => a.rcpts[0] === 'slow@example.test').length, 2, 'the deferred recipient was retried without a poll');
  t.ok(asked <= 2, `the store asked for its next due time at most twice over many ticks: ${asked}`);
});
