// A finished message comes back from the transaction that finished it with every spool file
// it had (the original and its rewrite copies), so the queue removes them without another
// read of the store; the copies are looked up only for a message that has some.
import t from 'tap';
import { join } from 'node:path';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

const message = (qid: string, recipients: string[]) => ({
  qid, receivedAt: 1_000, envelopeFrom: 'a@b.test', size: 10, spoolPath: `/spool/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients,
});

const delivered = (qid: string, rcpts: string[]) => ({
  qid, nexthop: 'smtp://127.0.0.1:25', startedAt: 2_000, durationMs: 1, reply: '250 ok', outcome: 'delivered' as const,
  recipients: rcpts.map((rcpt) => ({ rcpt, state: 'delivered' as const, reply: '250 ok' })),
});

t.test('the finished row carries its spool files, copies included', async (t) => {
  const { dir, cleanup } = tempDir('store-finished-files');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'db.sqlite'));
  t.teardown(() => store.close());
  let copyLookups = 0;
  const spoolFiles = store.queue.spoolFiles.bind(store.queue);
  store.queue.spoolFiles = (m) => {
    copyLookups++;
    return spoolFiles(m);
  };

  store.queue.insertMessage(message('PLAIN', ['x@d.test']));
  store.queue.claim('PLAIN', 2_000, 60_000);
  const plain = store.queue.recordRounds([{ qid: 'PLAIN', attempts: [delivered('PLAIN', ['x@d.test'])], leased: ['x@d.test'] }], 2_000)[0];
  t.same(plain?.spoolFiles, ['/spool/PLAIN'], 'no copies: the original only');
  t.equal(copyLookups, 0, 'no look-up of copies for a message without any');

  store.queue.insertMessage(message('COPIED', ['a@d.test', 'b@d.test', 'c@d.test']));
  store.queue.recordCopies('COPIED', [
    { rcpt: 'a@d.test', copy: { path: '/spool/copies/COPIED.1', size: 5, offset: 0, sha256: '1'.repeat(64) } },
    { rcpt: 'b@d.test', copy: { path: '/spool/copies/COPIED.1', size: 5, offset: 0, sha256: '1'.repeat(64) } },
    { rcpt: 'c@d.test' },
  ]);
  store.queue.claim('COPIED', 2_000, 60_000);
  // the first round leaves c open: not finished
  t.equal(store.queue.recordRounds([{ qid: 'COPIED', attempts: [delivered('COPIED', ['a@d.test', 'b@d.test'])], leased: ['a@d.test', 'b@d.test', 'c@d.test'] }], 2_000)[0], undefined);
  store.queue.claim('COPIED', 2_001, 60_000);
  const copied = store.queue.recordRounds([{ qid: 'COPIED', attempts: [delivered('COPIED', ['c@d.test'])], leased: ['c@d.test'] }], 2_001)[0];
  t.same(copied?.spoolFiles, ['/spool/COPIED', '/spool/copies/COPIED.1'], 'the original and its copy, once');
  t.equal(copied?.qid, 'COPIED');
  t.equal(store.queue.message('COPIED')?.state, 'done');

  // the queue CLI's delete finishes a message the same way
  store.queue.insertMessage(message('DELETED', ['z@d.test']));
  store.queue.markDeleted('DELETED', 3_000);
  t.same(store.queue.finishIfDone('DELETED', 3_000)?.spoolFiles, ['/spool/DELETED']);
});
