// A reply passed back towards its originating MPM is stamped by each relay; one whose
// stamp is over the hop limit (or full: no room for our ihn) is not passed back, and it
// does not fail the bag it came in (which would make its sender ship it again forever).
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { acknowledgeMessage, MAX_LIST_ITEMS, MAX_STAMP_HOPS, type ImpMessage } from '../src/imp/index.js';
import type { QidGenerator } from '../src/delivery/qid.js';
import type { Spool } from '../src/delivery/spool.js';
import { EndToEndReplies } from '../src/mpm/end-to-end.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

const ORIGINATING = 167772404;
const DESTINATION = 167772359;
const RELAY = 167772300;

t.test('replies over the hop limit are not passed back, and handling them does not throw', async (t) => {
  const { dir, cleanup } = tempDir('imp-e2e-hops');
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  const replies = new EndToEndReplies({
    ihn: RELAY,
    hostname: 'mx.test.invalid',
    store,
    spool: {} as Spool,
    qids: {} as QidGenerator,
    logger: pino({ level: 'silent' }),
    reachable: (ihn) => ihn === ORIGINATING,
    kick: () => {},
  });
  const reply = (tn: number, hops: number): ImpMessage => {
    const m = acknowledgeMessage(
      { tid: { tn, ihn: ORIGINATING }, stamp: [ORIGINATING, DESTINATION] },
      { ihn: DESTINATION, replyTid: { tn: 1000 + tn, ihn: DESTINATION } },
      { answer: true, reasons: ['OK'], howDelivered: ['ACCEPT'] },
    );
    return { ...m, command: { ...m.command, stamp: Array.from({ length: hops }, (_, i) => 1_000_000 + i) } };
  };
  await replies.handle(reply(1, MAX_STAMP_HOPS - 1), '127.0.0.1');
  t.equal(store.impReplies.dueReplies(Date.now() + 1, 10).length, 1, 'a reply within the limit is passed back');
  await t.resolves(replies.handle(reply(2, MAX_STAMP_HOPS), '127.0.0.1'));
  await t.resolves(replies.handle(reply(3, MAX_LIST_ITEMS), '127.0.0.1'), 'a full stamp does not throw');
  t.equal(store.impReplies.dueReplies(Date.now() + 1, 10).length, 1, 'neither is passed back');
});
