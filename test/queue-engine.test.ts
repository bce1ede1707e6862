// The delivery engine's error paths, in process with a fake next hop the test holds
// open: nothing is lost (failed bounces, internal errors, unrecordable results), nothing
// is doubled (rewrite copies, results kept in memory), and the queue CLI's retry and
// delete interleaved with a running attempt. Events are ordered, never timed.
import t from 'tap';
import { existsSync, fstatSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { MessageCopy, RewriteStep } from '../src/delivery/queue.js';
import { nodeJournalFs, ResultJournal, type JournalFs } from '../src/delivery/result-journal.js';
import { cli } from './helpers/cli.js';
import { waitFor } from './helpers/gateway.js';
import { gate, readAll, reply, startEngine, type Engine } from './helpers/queue-engine.js';

const bouncesOf = (e: Engine) => e.store.db.prepare(`SELECT qid FROM messages WHERE envelope_from = ''`).all() as { qid: string }[];

t.test('a bounce that cannot be queued keeps the recipient open and is queued on a later round', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 20, retryMax: 40 } });
  t.teardown(() => e.close());
  e.transport.fallback = (req) => reply(req, 'failed', '550 5.1.1 no such user');
  const qid = await e.enqueue(['bob@example.test']);
  // from here on the spool takes no new file: the bounce cannot be queued
  const create = e.spool.create.bind(e.spool);
  let spoolFull = true;
  let refused = 0;
  e.spool.create = async (qid) => {
    if (spoolFull) {
      refused++;
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    }
    return create(qid);
  };
  await waitFor(() => e.store.queue.attempts(qid).length >= 1, 5000, 'the first attempt');
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.equal(refused >= 1, true, 'the bounce was tried');
  t.equal(rcpt.state, 'deferred', 'the recipient stays open');
  t.match(rcpt.last_reply, /^550 5\.1\.1 no such user \(bounce not queued: no space left on device\)/);
  t.equal(e.store.queue.message(qid)!.state, 'queued', 'the message is not finished');
  t.ok(existsSync(e.store.queue.message(qid)!.spool_path), 'its spool file is kept');
  t.same(bouncesOf(e), [], 'no bounce yet');
  t.ok(e.logs.some((l) => l.level === 50 && /could not queue the bounce/.test(l.msg)), 'logged at error level');
  spoolFull = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the message finished');
  t.equal(bouncesOf(e).length, 1, 'exactly one bounce queued once the spool works');
  t.equal(e.store.queue.recipients(qid)[0]!.state, 'failed');
});

t.test('internal errors count as attempts and bounce at the lifetime', async (t) => {
  const calls = new Map<string, number>();
  const rewrite: RewriteStep = async (m) => {
    calls.set(m.qid, (calls.get(m.qid) ?? 0) + 1);
    throw new Error('rewrite backend down');
  };
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 40, lifetime: 300 }, rewrite });
  t.teardown(() => e.close());
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 10_000, 'the message finished by its lifetime');
  const attempts = e.store.queue.attempts(qid);
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.ok(attempts.length >= 2, 'several internal attempts');
  t.ok(attempts.every((a) => a.nexthop === 'internal'), 'each recorded as an attempt');
  t.equal(rcpt.attempts, attempts.length, 'each counted on the recipient');
  t.equal(calls.get(qid), attempts.length, 'one rewrite call per attempt');
  t.equal(rcpt.state, 'failed');
  t.match(rcpt.last_reply, /^expired after \d+s in the queue; last reply: 451 4\.3\.0 internal error: rewrite backend down/);
  t.equal(bouncesOf(e).length, 1, 'the sender gets a bounce');
  t.equal(e.transport.attempts.length, 0, 'nothing was delivered');
});

t.test("a rewrite step's copies must split the recipients exactly", async (t) => {
  for (const [name, split] of [
    ['a recipient in two copies', (r: string[], o: MessageCopy) => [o, { ...o, recipients: [r[0]!] }]],
    ['a recipient left out', (r: string[], o: MessageCopy) => [{ ...o, recipients: r.slice(1) }]],
    ['a recipient nobody claimed', (r: string[], o: MessageCopy) => [o, { ...o, recipients: ['eve@example.test'] }]],
  ] as const) {
    await t.test(name, async (t) => {
      const e = await startEngine({ queue: { retryInitial: 10, retryMax: 40, lifetime: 250 }, rewrite: async (_m, r, o) => split(r, o) });
      t.teardown(() => e.close());
      const qid = await e.enqueue(['a@example.test', 'b@example.test']);
      await waitFor(() => e.store.queue.message(qid)!.state === 'done', 10_000, 'the message finished by its lifetime');
      t.equal(e.transport.attempts.length, 0, 'no copy is delivered, none twice');
      const attempts = e.store.queue.attempts(qid);
      t.ok(attempts.length >= 1 && attempts.every((a) => a.nexthop === 'internal'), 'postponed as internal errors');
      t.match(attempts[0]!.reply, /^451 4\.3\.0 internal error: the rewrite step's copies do not split the recipients exactly/);
      const logged = e.logs.find((l) => l.level === 50 && (l.err as { code?: string }).code === 'ERR_MAILBAG_REWRITE_SPLIT');
      t.ok(logged, 'logged at error level with its code');
      t.same(e.store.queue.recipients(qid).map((r) => r.state), ['failed', 'failed'], 'bounced at the lifetime');
      // the recipients' jittered retries may part: one bounce per round that failed some
      t.ok(bouncesOf(e).length >= 1, 'the sender gets a bounce');
    });
  }
});

t.test('a transport that leaves a recipient without a result: an internal error, not a hot loop', async (t) => {
  const e = await startEngine({ queue: { retryInitial: '1h', retryMax: '1h' } });
  t.teardown(() => e.close());
  e.transport.answers.push((req) => ({ reply: '250 ok', recipients: req.recipients.slice(1).map((rcpt) => ({ rcpt, outcome: 'delivered' as const, reply: '250 ok' })) }));
  const qid = await e.enqueue(['a@example.test', 'b@example.test']);
  await waitFor(() => e.store.queue.attempts(qid).length === 2, 5000, 'the round recorded');
  const [a, b] = e.store.queue.recipients(qid);
  t.equal(b!.state, 'delivered');
  t.equal(a!.state, 'deferred');
  t.match(a!.last_reply, /^451 4\.3\.0 internal error: no delivery result for a@example\.test/);
  t.ok(a!.next_attempt_at > Date.now(), 'retried with the backoff, not at once');
  t.equal(e.transport.attempts.length, 1);
});

t.test('queue retry during an attempt is not overwritten by its deferral', async (t) => {
  const e = await startEngine({ queue: { retryInitial: '1h', retryMax: '1h' } });
  t.teardown(() => e.close());
  const held = gate();
  e.transport.answers.push(async (req) => {
    await held.promise;
    return reply(req, 'deferred', '451 4.3.2 try later');
  });
  const second = gate();
  e.transport.answers.push(async (req) => {
    await second.promise;
    return reply(req, 'delivered', '250 2.0.0 ok');
  });
  const qid = await e.enqueue(['bob@example.test']);
  await e.transport.started(1);
  const r = await cli(['queue', 'retry', qid, '--config', e.configFile]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /1 recipient\(s\) due now/);
  const afterRetry = Date.now();
  held.open();
  await waitFor(() => e.store.queue.attempts(qid).length === 1, 5000, 'the attempt recorded');
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.equal(rcpt.state, 'deferred');
  t.ok(rcpt.next_attempt_at <= afterRetry, 'still due as the retry asked, not an hour out');
  // found at the next poll: another process's change (the queue's timers keep no process alive)
  await waitFor(() => e.transport.attempts.length === 2, 5000, 'the second attempt');
  t.pass('the retry made the next attempt');
  second.open();
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'delivered');
});

t.test('queue delete during an attempt keeps the spool file until the attempt ends', async (t) => {
  const e = await startEngine();
  t.teardown(() => e.close());
  const held = gate();
  e.transport.answers.push(async (req) => {
    await held.promise;
    return reply(req, 'deferred', '451 4.3.2 try later');
  });
  const qid = await e.enqueue(['bob@example.test']);
  const path = e.store.queue.message(qid)!.spool_path;
  await e.transport.started(1);
  const r = await cli(['queue', 'delete', qid, '--config', e.configFile]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /an attempt is in flight/);
  t.ok(existsSync(path), 'the spool file stays under the running attempt');
  held.open();
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'finished when the attempt ends');
  await waitFor(() => !existsSync(path), 5000, 'the spool file removed by the queue');
  t.equal(e.store.queue.recipients(qid)[0]!.state, 'deleted', 'the deletion stands');
});

t.test('every attempt round ends at its deadline, before its lease', async (t) => {
  const e = await startEngine({ queue: { attemptTimeout: 50, retryInitial: '1h', retryMax: '1h' } });
  t.teardown(() => e.close());
  const events: string[] = [];
  e.transport.answers.push(
    (req) =>
      new Promise((resolve) => {
        events.push('attempt started');
        const rcpt = e.store.queue.recipients(req.qid)[0]!;
        t.ok(rcpt.inflight_until !== null && rcpt.inflight_until > Date.now(), 'leased while running');
        // a hung next hop: only the deadline's abort ends it
        req.signal?.addEventListener('abort', () => {
          events.push('aborted');
          resolve(reply(req, 'deferred', '451 4.4.2 aborted at the deadline'));
        });
      }),
  );
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  e.store.queue.recordRounds = (rounds, now, ...rest) => {
    events.push('recorded');
    return recordRounds(rounds, now, ...rest);
  };
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => e.store.queue.attempts(qid).length === 1, 10_000, 'the round to end');
  t.same(events, ['attempt started', 'aborted', 'recorded'], 'the transport was aborted and finished before the lease was released');
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.equal(rcpt.state, 'deferred');
  t.equal(rcpt.inflight_until, null, 'the lease is released');
  t.match(rcpt.last_reply, /aborted at the deadline/);
});

t.test('a result the store cannot record is kept and recorded later, never delivered twice', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20, attemptTimeout: 50 } });
  t.teardown(() => e.close());
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  let refused = 0;
  let diskFull = true;
  let firstLease = 0;
  e.store.queue.recordRounds = (rounds, now, ...rest) => {
    if (diskFull) {
      if (++refused === 1) firstLease = e.store.queue.recipients(rounds[0]!.qid)[0]!.inflight_until ?? 0;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    return recordRounds(rounds, now, ...rest);
  };
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => refused >= 3, 5000, 'three refused recordings');
  const show = await cli(['queue', 'show', qid, '--config', e.configFile]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout.toString(), /attempt:\s+in flight/, 'queue show says an attempt is in flight');
  t.match(show.stdout.toString(), /bob@example\.test {2}queued {2}attempts 0 .*in flight until/);
  t.ok(e.logs.some((l) => l.level === 50 && /could not record delivery results/.test(l.msg)), 'logged at error level');
  t.ok(e.store.queue.recipients(qid)[0]!.inflight_until! > firstLease, 'the lease is extended while the result waits');
  diskFull = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the result recorded');
  t.equal(e.transport.attempts.length, 1, 'delivered once');
  t.equal(e.store.queue.recipients(qid)[0]!.state, 'delivered');
});

t.test('rewrite copies are spooled: a retry delivers the bytes of the first attempt', async (t) => {
  let calls = 0;
  const rewrite: RewriteStep = async (_m, recipients, original) => {
    calls++;
    const bytes = Buffer.concat([Buffer.from(`X-Rewrite-Call: ${calls}\r\n`), await readAll(original.open())]);
    const [first, ...rest] = recipients;
    // the first recipient gets new bytes; the others keep the original (no new file)
    return [{ recipients: [first!], size: bytes.length, open: () => Readable.from([bytes]) }, ...(rest.length ? [{ ...original, recipients: rest }] : [])];
  };
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20 }, rewrite });
  t.teardown(() => e.close());
  e.transport.answers.push((req) => reply(req, 'deferred', '451 4.3.2 try later'));
  e.transport.answers.push((req) => reply(req, 'deferred', '451 4.3.2 try later'));
  const qid = await e.enqueue(['a@example.test', 'b@example.test']);
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'delivered');
  t.equal(calls, 1, 'the rewrite step ran once');
  const forA = e.transport.attempts.filter((a) => a.rcpts.includes('a@example.test'));
  t.equal(forA.length, 2, 'a: deferred once, then delivered');
  t.ok(forA[0]!.bytes.equals(forA[1]!.bytes), 'the retry delivered the same bytes');
  t.match(forA[1]!.bytes.toString(), /^X-Rewrite-Call: 1\r\n/);
  const forB = e.transport.attempts.filter((a) => a.rcpts.includes('b@example.test'));
  t.equal(forB.at(-1)!.bytes.toString(), 'Subject: test\r\n\r\nbody\r\n', 'b gets the original');
  const rows = e.store.queue.recipients(qid);
  t.match(rows[0]!.copy_path, /copies\/\w+\.1$/);
  t.equal(rows[1]!.copy_path, null, 'no copy file for the original bytes');
  // removed after the commit that finished the message
  await waitFor(() => readdirSync(join(e.dir, 'spool', 'copies')).length === 0, 5000, 'the copy removed with the message');
});

const diskFull = (e: Engine) => {
  const state = { full: true, refused: 0 };
  const recordRounds = e.store.queue.recordRounds.bind(e.store.queue);
  e.store.queue.recordRounds = (rounds, now, ...rest) => {
    if (!state.full) return recordRounds(rounds, now, ...rest);
    state.refused++;
    throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  };
  return state;
};

/** The file system fills up too: from then on a write that would grow a file fails with ENOSPC. */
const fillingDisk = () => {
  const disk = {
    full: false,
    fs: {
      ...nodeJournalFs,
      writeSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
        if (disk.full && position + length > fstatSync(fd).size) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        return writeSync(fd, buffer, offset, length, position);
      },
    } satisfies JournalFs,
  };
  return disk;
};

t.test('a result the store refuses through the stop is kept in the results journal: after the restart the next hop has the message once', async (t) => {
  const disk = fillingDisk();
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20 }, queueOptions: { resultJournal: { fs: disk.fs } } });
  t.teardown(() => e.close());
  const store = diskFull(e);
  disk.full = true;
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => store.refused >= 1, 5000, 'a refused recording');
  const journal = join(e.dir, 'spool', 'results.journal');
  let kept = Buffer.alloc(0);
  // the store still refuses at the stop; the next process finds it working again
  await e.restart(200, () => (kept = existsSync(journal) ? readFileSync(journal) : kept));
  t.ok(e.logs.some((l) => l.level === 40 && /kept in the results journal/.test(l.msg)), 'the stop kept the result in the journal');
  t.notOk(e.logs.some((l) => /the attempt will be repeated/.test(l.msg)), 'nothing to repeat');
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the kept result recorded at start');
  t.ok(e.logs.some((l) => l.level === 30 && /recorded the delivery results kept in the results journal/.test(l.msg) && l.rounds === 1));
  t.equal(e.transport.attempts.length, 1, 'the next hop got the message exactly once');
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.equal(rcpt.state, 'delivered');
  t.equal(rcpt.attempts, 1);
  t.equal(e.store.queue.attempts(qid).length, 1, 'one attempt recorded');
  t.ok(e.store.correlation.hasKeys(qid), 'the correlation keys of its first round came with it');
  await waitFor(() => !existsSync(e.store.queue.message(qid)!.spool_path), 5000, 'the spool file removed');
  t.ok(kept.length > 0 && statSync(journal).size === kept.length, 'the journal keeps its size');
  t.ok(readFileSync(journal).equals(Buffer.alloc(kept.length)), 'and is zeroed once replayed');

  // a crash between the replay's commit and the zeroing: the next start replays it again
  await e.restart(200, () => writeFileSync(journal, kept));
  await waitFor(() => e.logs.some((l) => /recorded the delivery results kept/.test(l.msg) && l.alreadyRecorded === 1), 5000, 'the second replay');
  t.equal(e.store.queue.attempts(qid).length, 1, 'replayed twice, recorded once');
  t.equal(e.store.queue.recipients(qid)[0]!.attempts, 1);
  t.equal(e.transport.attempts.length, 1, 'still delivered once');
});

t.test('a results journal too small for the results: logged as full, those attempts are repeated', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20 }, queueOptions: { resultJournal: { bytes: 64 } } });
  t.teardown(() => e.close());
  const store = diskFull(e);
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => store.refused >= 1, 5000, 'a refused recording');
  await e.restart(200);
  const full = e.logs.find((l) => /the results journal is full/.test(l.msg));
  t.ok(full && full.level === 50, 'logged at error level');
  t.match(full, { journalled: 0, notJournalled: 1, journalBytes: 64 }, 'with the counts');
  t.ok(e.logs.some((l) => l.level === 50 && /the attempt will be repeated/.test(l.msg) && l.qid === qid));
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'delivered again after the restart');
  t.equal(e.transport.attempts.length, 2, 'the old behaviour for what did not fit');
});

t.test('the store still refusing at the next start: the journalled result waits in memory, the message is not attempted again', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20 } });
  t.teardown(() => e.close());
  const first = diskFull(e);
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => first.refused >= 1, 5000, 'a refused recording');
  const journal = join(e.dir, 'spool', 'results.journal');
  const still = { full: true, refused: 0 };
  let scans = 0;
  await e.restart(200, undefined, (store) => {
    const replayRounds = store.queue.replayRounds.bind(store.queue);
    store.queue.replayRounds = (rounds, now, ...rest) => {
      if (!still.full) return replayRounds(rounds, now, ...rest);
      still.refused++;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
    const dueMessages = store.queue.dueMessages.bind(store.queue);
    store.queue.dueMessages = (now, limit) => {
      scans++;
      return dueMessages(now, limit);
    };
  });
  await waitFor(() => still.refused >= 3 && scans >= 3, 5000, 'refused replays while the queue scans');
  t.ok(e.logs.some((l) => l.level === 50 && /could not record delivery results/.test(l.msg)), 'logged at error level');
  t.equal(e.transport.attempts.length, 1, 'not attempted again meanwhile');
  t.ok(existsSync(journal) && !readFileSync(journal).subarray(0, 4).equals(Buffer.alloc(4)), 'the journal still holds the result');
  still.full = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'recorded once the store takes it');
  t.equal(e.transport.attempts.length, 1, 'the next hop got the message once');
  t.equal(e.store.queue.recipients(qid)[0]!.state, 'delivered');
});

t.test('a transport that ignores the deadline keeps its recipients claimed: no second attempt overlaps it', async (t) => {
  const e = await startEngine({ queue: { attemptTimeout: 50, retryInitial: 10, retryMax: 20 }, queueOptions: { abortGraceMs: 20 } });
  t.teardown(() => e.close());
  const hung = gate();
  let running = 0;
  let overlapped = 0;
  e.transport.answers.push(async (req) => {
    running++;
    await hung.promise; // deaf to req.signal: it goes on delivering past the deadline
    running--;
    return reply(req, 'delivered', '250 2.0.0 ok, late');
  });
  e.transport.fallback = (req) => {
    if (running) overlapped++;
    return reply(req, 'delivered', '250 2.0.0 ok');
  };
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => e.logs.some((l) => /transport ignored the attempt deadline/.test(l.msg)), 5000, 'the abort grace passed');
  let scans = 0;
  const dueMessages = e.store.queue.dueMessages.bind(e.store.queue);
  e.store.queue.dueMessages = (now, limit) => {
    scans++;
    return dueMessages(now, limit);
  };
  // every scan could start a second attempt of a recipient no longer claimed
  await waitFor(() => scans >= 5, 5000, 'five scans of the store');
  t.equal(e.transport.attempts.length, 1, 'no second attempt while the first still runs');
  t.ok(e.store.queue.recipients(qid)[0]!.inflight_until! > Date.now(), 'the recipient stays claimed');
  hung.open();
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the late result recorded');
  t.equal(overlapped, 0, 'no attempt overlapped it');
  t.equal(e.transport.attempts.length, 1, 'delivered once');
  const rcpt = e.store.queue.recipients(qid)[0]!;
  t.equal(rcpt.state, 'delivered');
  t.equal(rcpt.last_reply, '250 2.0.0 ok, late', 'what the transport reported when it returned');
  t.ok(e.logs.some((l) => l.level === 40 && /a transport that ignored the attempt deadline returned/.test(l.msg)));
});

t.test('a round that ends after the stop and its store: tried once and logged, not retried on a closed store', async (t) => {
  const e = await startEngine();
  t.teardown(() => e.close());
  const held = gate();
  e.transport.answers.push(async (req) => {
    await held.promise;
    return reply(req, 'delivered', '250 2.0.0 ok');
  });
  await e.enqueue(['bob@example.test']);
  await e.transport.started(1);
  await e.queue.stop(10); // the grace passes with the attempt still running
  e.store.close();
  held.open();
  await waitFor(() => e.logs.some((l) => /the attempt will be repeated/.test(l.msg)), 5000, 'the late result logged as lost');
  t.notOk(e.logs.some((l) => /keeping them in memory and retrying/.test(l.msg)), 'no retries on the closed store');
});

t.test('the results journal is allocated at start with queue.resultJournalBytes', async (t) => {
  const e = await startEngine({ queue: { resultJournalBytes: 65_536 } });
  t.teardown(() => e.close());
  const st = statSync(join(e.dir, 'spool', 'results.journal'));
  t.equal(st.size, 65_536);
  t.ok(st.blocks * 512 >= 65_536, 'its blocks allocated, not a sparse file');
});

t.test('a result the store refuses is in the results journal at once: a crash before the stop does not deliver it again', async (t) => {
  const e = await startEngine({ queue: { retryInitial: 10, retryMax: 20 } });
  t.teardown(() => e.close());
  const store = diskFull(e);
  const qid = await e.enqueue(['bob@example.test']);
  await waitFor(() => store.refused >= 2, 5000, 'refused recordings');
  // what a crash (kill -9, power loss) would leave: the journal file as it is now
  const journal = join(e.dir, 'spool', 'results.journal');
  const left = ResultJournal.open(journal);
  const found = left.read().rounds;
  left.close();
  t.same(found.map((r) => r.qid), [qid], 'the delivered round is on disk while the store refuses it');
  t.equal(found[0]!.attempts[0]!.recipients[0]!.state, 'delivered');
  store.full = false;
  await waitFor(() => e.store.queue.message(qid)!.state === 'done', 5000, 'the result recorded');
  await waitFor(() => readFileSync(journal).every((b) => b === 0), 5000, 'the journal zeroed once the store took the result');
  t.equal(e.transport.attempts.length, 1, 'delivered once');
});
