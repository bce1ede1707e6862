// The store side of the IMP acceptor: the tid a message came with (migration 13),
// CANCEL's withdraw (refused while an attempt is in flight), and pruning.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

const TID = { tn: 37, ihn: 167772404 };

function open(t: Test): Store {
  const { dir, cleanup } = tempDir('store-imp');
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  return store;
}

function add(store: Store, qid: string, now: number): void {
  store.queue.insertMessage({
    qid, receivedAt: now, envelopeFrom: '', size: 1, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64),
    recipients: ['a@example.test'], imp: { tid: TID, stamp: [167772404, 167772246], peer: '127.0.0.1' },
  });
}

t.test('the tid and stamp are recorded with the message and found by tid', async (t) => {
  const store = open(t);
  add(store, '0IMP000000001', 1000);
  t.same(store.queue.impOrigin('0IMP000000001'), { tid: TID, stamp: [167772404, 167772246], peer: '127.0.0.1' });
  t.same(store.queue.impMessagesByTid(TID).map((r) => [r.qid, r.state]), [['0IMP000000001', 'queued']]);
  t.same(store.queue.impMessagesByTid({ tn: 38, ihn: TID.ihn }), []);
});

t.test('withdraw: refused while an attempt holds a lease; afterwards the recipients are deleted and the message finished', async (t) => {
  const store = open(t);
  const now = Date.now();
  add(store, '0IMP000000002', now);
  t.equal(store.queue.claim('0IMP000000002', now, now + 60_000).length, 1, 'an attempt claims it');
  t.same(store.queue.withdraw('0IMP000000002', now), { deleted: 0, inFlight: true, finished: undefined });
  t.equal(store.queue.recipients('0IMP000000002')[0]!.state, 'queued', 'untouched');
  store.queue.release('0IMP000000002', ['a@example.test']);
  const r = store.queue.withdraw('0IMP000000002', now);
  t.equal(r.deleted, 1);
  t.equal(r.finished?.qid, '0IMP000000002');
  t.equal(store.queue.message('0IMP000000002')?.state, 'done');
  t.equal(store.queue.withdraw('0IMP000000002', now).deleted, 0, 'nothing left the second time');
  store.queue.removeFinished('0IMP000000002');
  t.equal(store.queue.impOrigin('0IMP000000002'), undefined, 'pruned with its message');
});
