// The Message-Bag Processor on its own: a local storage failure while spooling a DELIVER
// is answered no with class 4 "Server error, try again later" (transient, so the peer
// ships it again), the other messages of the bag are answered as usual, and nothing is
// recorded for the failed one.
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import type { AcceptPath } from '../src/delivery/accept.js';
import { decodeBagEntries, deliverCommand, encodeBag, probeCommand, proplist, readReply, textElement, type ImpMessage } from '../src/imp/index.js';
import { BagProcessor } from '../src/mpm/bag-processor.js';
import { ImpRecipientPolicy } from '../src/mpm/recipient-policy.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

t.test('a spool failure: class 4, answer no, transient; the rest of the bag answered', async (t) => {
  const { dir, cleanup } = tempDir('imp-processor');
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  const failing = {
    open: () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })),
  } as unknown as AcceptPath;
  let tn = 0;
  const processor = new BagProcessor({
    ihn: 5,
    hostname: 'mx.test.invalid',
    accept: failing,
    store,
    policy: new ImpRecipientPolicy([{ domain: 'example.test', nexthop: { kind: 'maildir', path: dir, url: `maildir:${dir}` } }], ['example.test'], []),
    maxMessagesPerBag: 100,
    maxBagSpoolBytes: 1 << 30,
    acceptConcurrency: 4,
    logger: pino({ level: 'silent' }),
    nextReplyTid: () => ({ tn: tn++, ihn: 5 }),
  });
  const deliver: ImpMessage = {
    tid: { tn: 1, ihn: 9 },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [9] }),
    document: { header: proplist({ SUBJECT: 'x' }), body: { type: 'list', items: [textElement('hi\r\n')] } },
  };
  const probe: ImpMessage = { tid: { tn: 2, ihn: 9 }, command: probeCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [9] }) };
  const replies = (await processor.process(decodeBagEntries(encodeBag([deliver, probe])), { address: '127.0.0.1' })).map(readReply);
  t.same(replies.map((r) => [r.operation, r.tid.tn, r.answer]), [['ACKNOWLEDGE', 1, false], ['RESPONSE', 2, true]]);
  t.equal(replies[0]!.error.errorClass, 4);
  t.match(replies[0]!.error.errorString, /^Server error, try again later: ENOSPC/);
  t.equal(replies[0]!.transient, true);
  t.same(store.queue.impMessagesByTid({ tn: 1, ihn: 9 }), [], 'nothing recorded');
});
