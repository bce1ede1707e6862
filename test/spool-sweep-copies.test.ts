// The start-up sweep removes the rewrite copies of finished messages (a crash between
// the final commit and the unlink) and keeps every other copy.
import t from 'tap';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enqueueGenerated } from '../src/delivery/enqueue.js';
import { QidGenerator } from '../src/delivery/qid.js';
import { Spool } from '../src/delivery/spool.js';
import { sweepSpool } from '../src/delivery/spool-sweep.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

t.test('copies of finished messages go, the others stay', async (t) => {
  const { dir, cleanup } = tempDir('sweep-copies');
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'store.db'));
  t.teardown(() => store.close());
  const spool = new Spool(join(dir, 'spool'));
  const qids = new QidGenerator(undefined);
  const bytes = Buffer.from('Subject: x\r\n\r\ny\r\n');
  const finished = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'a@x.test', recipients: ['b@example.test'], bytes });
  const queued = await enqueueGenerated({ spool, store, qids }, { envelopeFrom: 'a@x.test', recipients: ['b@example.test'], bytes });
  store.queue.markDeleted(finished);
  t.ok(store.queue.finishIfDone(finished), 'one message finished');
  const copies = join(spool.dir, 'copies');
  mkdirSync(copies, { recursive: true });
  const unknown = qids.next();
  for (const qid of [finished, queued, unknown]) writeFileSync(join(copies, `${qid}.1`), 'copy');
  const report = await sweepSpool(spool, store);
  t.notOk(existsSync(join(copies, `${finished}.1`)), "the finished message's copy is removed");
  t.ok(existsSync(join(copies, `${queued}.1`)), "a queued message's copy stays");
  t.ok(existsSync(join(copies, `${unknown}.1`)), 'a copy of a message the store does not know stays');
  t.equal(report.removedDone, 2, 'its original and its copy');
});
