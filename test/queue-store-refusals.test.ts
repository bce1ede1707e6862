import t, { type Test } from 'tap';
import type { AcceptedToCommit, ClaimedMessage, ClaimNext, NewMessage, RoundToRecord } from '../src/store/queue-store.js';
import type { Store } from '../src/store/store.js';
import { openTempStore } from './helpers/temp-store.js';

// The parts of the queue's recording transaction that must not cost the rounds their results
// (keys, accepted messages, claims) run without savepoints: a refused part rolls the
// transaction back whole and it runs again without that part.

const NOW = 1_800_000_000_000;

const open = (t: Test) => openTempStore(t, 'queue-store-refusals');

const message = (qid: string): NewMessage => ({
  qid, receivedAt: NOW, envelopeFrom: 'a@sender.test', size: 10, spoolPath: `/spool/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['b@example.test'],
});

/** A message in flight (claimed), its delivered round, and its keys. */
function inFlight(store: Store, qid: string): RoundToRecord {
  store.queue.insertMessage(message(qid));
  store.queue.claimMany([qid], NOW, NOW + 60_000);
  return {
    qid,
    leased: ['b@example.test'],
    attempts: [{ qid, nexthop: 'smtp://127.0.0.1:25', startedAt: NOW, durationMs: 1, reply: '250 ok', outcome: 'delivered', recipients: [{ rcpt: 'b@example.test', state: 'delivered', reply: '250 ok' }] }],
    keys: { qid, receivedAt: NOW, keys: { messageId: `<${qid}@sender.test>`, upstreamQid: undefined, upstreamHost: undefined, proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 'a@sender.test', rcpts: ['b@example.test'], clientAddress: null, size: 10 },
  };
}

interface Outcome {
  claimed: ClaimedMessage[] | undefined;
  notClaimed: { err: unknown; roundsRecorded: boolean }[];
  committed: number;
  notCommitted: { err: unknown; whole: boolean }[];
  keysFailed: { qids: string[]; err: unknown }[];
}

/** Records `round` with the accepted `rows` and claims of `pick` riding along, as the queue does. */
function record(store: Store, round: RoundToRecord, rows: NewMessage[], pick: string[]): Outcome {
  const out: Outcome = { claimed: undefined, notClaimed: [], committed: 0, notCommitted: [], keysFailed: [] };
  const accepted: AcceptedToCommit = { rows, committed: () => out.committed++, notCommitted: (err, whole) => out.notCommitted.push({ err, whole }) };
  const next: ClaimNext = {
    pick: () => ({ qids: pick, until: NOW + 60_000 }),
    claimed: (c) => (out.claimed = c),
    notClaimed: (err, roundsRecorded) => out.notClaimed.push({ err, roundsRecorded }),
    accepted: () => accepted,
  };
  store.queue.recordRounds([round], NOW + 5, (qids, err) => out.keysFailed.push({ qids, err }), next);
  return out;
}

const delivered = (store: Store, qid: string) => store.queue.recipients(qid).map((r) => r.state);

t.test('keys, accepted messages and claims ride in the recording transaction without a savepoint', async (t) => {
  const store = open(t);
  const round = inFlight(store, 'R1');
  store.queue.insertMessage(message('W1'));
  let savepoints = 0;
  const transaction = store.db.transaction.bind(store.db);
  // better-sqlite3's nested transactions are savepoints; writeTransaction nests through db.transaction
  store.db.transaction = ((fn: (...args: unknown[]) => unknown) => (savepoints++, transaction(fn))) as typeof store.db.transaction;
  const out = record(store, round, [message('A1')], ['A1', 'W1']);
  t.equal(savepoints, 0, 'no savepoint');
  t.strictSame(delivered(store, 'R1'), ['delivered']);
  t.ok(store.correlation.hasKeys('R1'), 'keys recorded');
  t.equal(out.committed, 1, 'accepted committed');
  t.strictSame(out.claimed?.map((c) => c.message.qid).sort(), ['A1', 'W1'], 'both claimed');
  t.strictSame([out.notClaimed, out.notCommitted, out.keysFailed], [[], [], []]);
});

t.test('keys the store refuses: rolled back, run again without them; reported after the commit', async (t) => {
  const store = open(t);
  const round = inFlight(store, 'R1');
  store.db.exec(`CREATE TRIGGER refuse_keys BEFORE INSERT ON message_keys BEGIN SELECT RAISE(ABORT, 'keys refused'); END`);
  const out = record(store, round, [message('A1')], ['A1']);
  t.strictSame(delivered(store, 'R1'), ['delivered'], 'the round is recorded');
  t.notOk(store.correlation.hasKeys('R1'));
  t.equal(out.committed, 1, 'the accepted message is committed');
  t.strictSame(out.claimed?.map((c) => c.message.qid), ['A1'], 'and claimed');
  t.equal(out.keysFailed.length, 1);
  t.strictSame(out.keysFailed[0]?.qids, ['R1']);
  t.match(String(out.keysFailed[0]?.err), /keys refused/);
});

t.test('accepted messages the store refuses: none of the batch committed, the rest of the transaction is', async (t) => {
  const store = open(t);
  const round = inFlight(store, 'R1');
  store.queue.insertMessage(message('W1'));
  store.db.exec(`CREATE TRIGGER refuse_bad BEFORE INSERT ON messages WHEN new.qid = 'BAD' BEGIN SELECT RAISE(ABORT, 'message refused'); END`);
  const out = record(store, round, [message('A1'), message('BAD')], ['W1', 'A1']);
  t.strictSame(delivered(store, 'R1'), ['delivered'], 'the round is recorded');
  t.ok(store.correlation.hasKeys('R1'), 'with its keys');
  t.equal(store.queue.message('A1'), undefined, 'the batch is one commit: A1 is not in the store either');
  t.equal(out.committed, 0);
  t.equal(out.notCommitted.length, 1);
  t.equal(out.notCommitted[0]?.whole, false, 'the batch alone was refused');
  t.match(String(out.notCommitted[0]?.err), /message refused/);
  t.strictSame(out.claimed?.map((c) => c.message.qid), ['W1'], 'the message waiting is claimed');
});

t.test('claims the store refuses: the rounds and the accepted messages commit; those inserted leased stay claimed', async (t) => {
  const store = open(t);
  const round = inFlight(store, 'R1');
  store.queue.insertMessage(message('W1'));
  store.db.exec(`CREATE TRIGGER refuse_lease BEFORE UPDATE OF inflight_until ON recipients WHEN new.qid = 'W1' AND new.inflight_until IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'claim refused'); END`);
  const out = record(store, round, [message('A1')], ['W1', 'A1']);
  t.strictSame(delivered(store, 'R1'), ['delivered']);
  t.ok(store.correlation.hasKeys('R1'));
  t.equal(out.committed, 1);
  t.strictSame(out.claimed?.map((c) => c.message.qid), ['A1'], 'the message inserted leased is claimed');
  t.equal(store.queue.recipients('A1')[0]?.inflight_until, NOW + 60_000);
  t.equal(store.queue.recipients('W1')[0]?.inflight_until, null, 'the refused claim left nothing leased');
  t.equal(out.notClaimed.length, 1);
  t.equal(out.notClaimed[0]?.roundsRecorded, true);
  t.match(String(out.notClaimed[0]?.err), /claim refused/);
});

t.test('insertAndClaim: a refused claim costs the messages nothing', async (t) => {
  const store = open(t);
  store.queue.insertMessage(message('W1'));
  store.db.exec(`CREATE TRIGGER refuse_lease BEFORE UPDATE OF inflight_until ON recipients WHEN new.qid = 'W1' AND new.inflight_until IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'claim refused'); END`);
  const refusals: unknown[] = [];
  const claimed = store.queue.insertAndClaim([message('A1'), message('A2')], { qids: ['W1', 'A1'], until: NOW + 60_000 }, NOW, (err) => refusals.push(err));
  t.ok(store.queue.message('A1') && store.queue.message('A2'), 'both committed');
  t.strictSame(claimed.map((c) => c.message.qid), ['A1']);
  t.equal(refusals.length, 1);
  t.match(String(refusals[0]), /claim refused/);
});
