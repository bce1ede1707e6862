// The delivery queue commits messages another thread accepted on its own connection, and
// claims them in the same transaction: one writer on the hot path, no claim transaction
// per new message. Events are ordered, never timed.
import t from 'tap';
import { toNewMessage } from '../src/delivery/accept.js';
import { ERR_QUEUE_NOT_RUNNING } from '../src/delivery/group-commit.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { openDatabase } from '../src/store/db.js';
import type { NewMessage } from '../src/store/queue-store.js';
import { gate, reply, startEngine, type Engine } from './helpers/queue-engine.js';

const qids = new QidGenerator(undefined, { lane: 1, lanes: 2 });

/** A message spooled as the accept path does, not yet in the store. */
async function spooled(engine: Engine, rcpt = 'bob@example.test'): Promise<NewMessage> {
  const envelope = { qid: qids.next(), receivedAt: Date.now(), sender: 'ann@sender.test', recipients: [{ address: rcpt }] };
  const writer = await engine.spool.create(envelope);
  await new Promise<void>((resolve) => writer.end(Buffer.from('Subject: test\r\n\r\nbody\r\n'), () => resolve()));
  const spoolPath = await writer.commit();
  return toNewMessage(envelope, { spoolPath, spoolOffset: writer.offset, size: writer.bytes, sha256: writer.sha256! });
}

/** Counts the store calls that would be a transaction of their own. */
function countCalls(engine: Engine) {
  const q = engine.store.queue;
  const calls = { claimMany: 0, insertAndClaim: 0, recordRoundsWithAccepted: [] as number[] };
  const claimMany = q.claimMany.bind(q);
  q.claimMany = (...a) => (calls.claimMany++, claimMany(...a));
  const insertAndClaim = q.insertAndClaim.bind(q);
  q.insertAndClaim = (...a) => (calls.insertAndClaim++, insertAndClaim(...a));
  const recordRounds = q.recordRounds.bind(q);
  q.recordRounds = (rounds, now, keysFailed, next, opts) => {
    const accepted = next?.accepted;
    if (next && accepted) {
      next.accepted = () => {
        const a = accepted();
        if (a) calls.recordRoundsWithAccepted.push(a.rows.length);
        return a;
      };
    }
    return recordRounds(rounds, now, keysFailed, next, opts);
  };
  return calls;
}

const leased = (engine: Engine, qid: string) => engine.store.queue.recipients(qid).map((r) => r.inflight_until !== null);

/** An engine whose first message (one@) is committed and in an attempt held open; the second (two@) only spooled. */
async function firstHeld(t: { teardown(fn: () => unknown): void }, concurrency: number) {
  const engine = await startEngine({ queue: { concurrency } });
  t.teardown(() => engine.close());
  const held = gate();
  engine.transport.answers.push(async (req) => (await held.promise, reply(req, 'delivered', '250 ok')));
  const first = await spooled(engine, 'one@example.test');
  const second = await spooled(engine, 'two@example.test');
  await engine.queue.commitAccepted([first]);
  await engine.transport.started(1);
  return { engine, held, second };
}

/** Commits `row` from inside the recording of the next round: it arrives in that turn. */
function commitWhenNextRecorded(engine: Engine, row: NewMessage): () => Promise<void> | undefined {
  const recorder = engine.queue['recorder'];
  const record = recorder.record.bind(recorder);
  let committed: Promise<void> | undefined;
  recorder.record = (...a) => {
    const recorded = record(...a);
    committed ??= engine.queue.commitAccepted([row]);
    return recorded;
  };
  return () => committed;
}

t.test('committed and claimed in one transaction: leased when the commit resolves, no claim of its own', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const held = gate();
  engine.transport.answers.push(async (req) => (await held.promise, reply(req, 'delivered', '250 ok')));
  const calls = countCalls(engine);
  const row = await spooled(engine);
  const atResolve = await engine.queue.commitAccepted([row]).then(() => leased(engine, row.qid));
  t.same(atResolve, [true], 'the recipient was leased by the commit itself');
  t.equal(calls.insertAndClaim, 1);
  t.equal(calls.claimMany, 0, 'no claim transaction');
  await engine.transport.started(1);
  held.open();
  await engine.queue.stop(1000);
  t.equal(engine.store.queue.recipients(row.qid)[0]!.state, 'delivered');
});

t.test('no free slot: committed now, claimed once a slot frees', async (t) => {
  const { engine, held, second } = await firstHeld(t, 1);
  const atResolve = await engine.queue.commitAccepted([second]).then(() => leased(engine, second.qid));
  t.same(atResolve, [false], 'committed, not claimed: the one slot is taken');
  held.open();
  await engine.transport.started(2);
  t.same(engine.transport.attempts.map((a) => a.rcpts), [['one@example.test'], ['two@example.test']]);
});

t.test('a round recorded in the same turn carries the commit and its claim', async (t) => {
  const { engine, held, second } = await firstHeld(t, 2);
  const calls = countCalls(engine);
  const committed = commitWhenNextRecorded(engine, second);
  held.open();
  await engine.transport.started(2);
  await committed();
  t.same(calls.recordRoundsWithAccepted, [1], "the recording transaction committed the message");
  t.equal(calls.insertAndClaim, 0, 'no transaction of its own');
  t.equal(calls.claimMany, 0, 'and no claim transaction');
});

t.test('the write lock held elsewhere: the commit waits from the event loop, then commits; past the SMTP bound it fails', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const other = openDatabase(engine.store.db.name, { role: 'queue' });
  t.teardown(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
  });
  const events: string[] = [];
  const row = await spooled(engine);
  other.exec('BEGIN IMMEDIATE');
  const calls = countCalls(engine);
  const committed = engine.queue.commitAccepted([row]).then(() => events.push('committed'));
  while (calls.insertAndClaim < 2) await new Promise((r) => setImmediate(r));
  events.push('tried twice while the lock was held');
  other.exec('COMMIT');
  await committed;
  t.same(events, ['tried twice while the lock was held', 'committed']);
  t.ok(engine.store.queue.message(row.qid));

  const late = await spooled(engine);
  other.exec('BEGIN IMMEDIATE');
  await t.rejects(engine.queue.commitAccepted([late]), { code: 'SQLITE_BUSY' });
  other.exec('ROLLBACK');
  t.equal(engine.store.queue.message(late.qid), undefined, 'nothing committed: the client gets 451');
});

t.test('a stop answers the commits waiting, and later ones, with "not running": the accept path commits them itself', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const other = openDatabase(engine.store.db.name, { role: 'queue' });
  t.teardown(() => other.close());
  const waiting = await spooled(engine);
  other.exec('BEGIN IMMEDIATE');
  const answer = engine.queue.commitAccepted([waiting]).catch((err: Error & { code?: string }) => err.code);
  await new Promise((r) => setImmediate(r));
  await engine.queue.stop(1000);
  other.exec('ROLLBACK');
  t.equal(await answer, ERR_QUEUE_NOT_RUNNING);
  await t.rejects(engine.queue.commitAccepted([await spooled(engine)]), { code: ERR_QUEUE_NOT_RUNNING });
  t.equal(engine.store.queue.message(waiting.qid), undefined);
});

t.test('a message the accept path committed already (an unknown outcome): committed once, delivered once', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const row = await spooled(engine);
  engine.store.queue.insertMessages([row]);
  await engine.queue.commitAccepted([row]);
  await engine.transport.started(1);
  await engine.queue.stop(1000);
  t.equal(engine.store.queue.recipients(row.qid).length, 1);
  t.equal(engine.transport.attempts.length, 1);
});

t.test('a recording transaction that fails takes the commit riding with it back: the tick commits it', async (t) => {
  const { engine, held, second } = await firstHeld(t, 2);
  const q = engine.store.queue;
  const recordRounds = q.recordRounds.bind(q);
  let failed = 0;
  q.recordRounds = (rounds, now, keysFailed, next, opts) => {
    const accepted = next?.accepted?.();
    if (accepted && !failed++) {
      // as the store does when the whole transaction fails (a round it refuses, say)
      const err = new Error('a round the store refuses');
      accepted.notCommitted(err, true);
      throw err;
    }
    if (accepted) t.fail('taken back, not offered again in the same flush');
    return recordRounds(rounds, now, keysFailed, next, opts);
  };
  const committed = commitWhenNextRecorded(engine, second);
  held.open();
  while (!committed()) await new Promise((r) => setImmediate(r));
  await committed();
  t.equal(failed, 1, 'the recording transaction failed once');
  t.ok(q.message(second.qid), 'the message is committed all the same');
  await engine.transport.started(2);
});

t.test('a message inserted leased comes back as a claim reads it: every column, recipients in the store\'s order', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  await engine.queue.stop(1000);
  const row = await spooled(engine);
  // recipients out of order, one outside ASCII (SQLite orders by the UTF-8 bytes)
  row.recipients = ['zed@example.test', 'ärger@example.test', 'ann@example.test'];
  row.recipientParams = { 'ann@example.test': { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;ann@example.test' } };
  const now = Date.now();
  const [claim] = engine.store.queue.insertAndClaim([row], { qids: [row.qid], until: now + 60_000 }, now, (err) => t.fail(String(err)));
  t.ok(claim);
  // read by name, as SQLite gives them: the claim's rows are built from what was inserted
  const db = engine.store.db;
  t.strictSame(claim!.message, db.prepare('SELECT * FROM messages WHERE qid = ?').get(row.qid), 'the message row');
  t.strictSame(claim!.recipients, db.prepare('SELECT * FROM recipients WHERE qid = ? ORDER BY rcpt').all(row.qid), 'the recipient rows, leased, in ORDER BY rcpt');
  t.same(claim!.recipients.map((r) => r.rcpt), ['ann@example.test', 'zed@example.test', 'ärger@example.test']);
  t.ok(claim!.recipients.every((r) => r.inflight_until === now + 60_000));
  t.equal(claim!.recipients[0]!.dsn_notify, 'SUCCESS,FAILURE');
});
