// A reply passed back towards its originating MPM is stamped by each relay; one whose
// stamp is over the hop limit (or full: no room for our ihn) is not passed back, and it
// does not fail the bag it came in (which would make its sender ship it again forever).
import t from 'tap';
import { acknowledgeMessage, MAX_LIST_ITEMS, MAX_STAMP_HOPS, type ImpMessage } from '../src/imp/index.js';
import { awaitingFinal, endToEndReplies } from './helpers/end-to-end-replies.js';

const ORIGINATING = 167772404;
const DESTINATION = 167772359;
const RELAY = 167772300;

t.test('replies over the hop limit are not passed back, and handling them does not throw', async (t) => {
  const { store, replies } = endToEndReplies(t, { name: 'imp-e2e-hops', ihn: RELAY, reachable: (ihn) => ihn === ORIGINATING });
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

t.test('an end-to-end ACKNOWLEDGE that cannot be for a message of ours is not kept for one', async (t) => {
  const { store, replies } = endToEndReplies(t, { name: 'imp-e2e-early', ihn: ORIGINATING, reachable: () => true });
  const awaiting = (tid: { tn: number; ihn: number }, shippedAt?: number) =>
    store.impReplies.awaitFinal(awaitingFinal({ tid, hopReply: '250 FORWARD', ...(shippedAt !== undefined ? { shippedAt } : {}) }));
  // addressed to us (IA), answering a tid of another MPM: nothing of ours awaits it
  const forged = acknowledgeMessage(
    { tid: { tn: 7, ihn: DESTINATION }, stamp: [ORIGINATING] },
    { ihn: DESTINATION, replyTid: { tn: 1, ihn: DESTINATION } },
    { answer: false, reasons: ['no such user'], howDelivered: [] },
  );
  forged.command.mailbox = { type: 'proplist', pairs: [{ name: 'IA', value: { type: 'integer', value: ORIGINATING } }] };
  await replies.handle(forged, '127.0.0.1');
  t.equal(awaiting({ tn: 7, ihn: DESTINATION }), undefined, 'no answer was kept for a tid that is not ours');

  // an answer for a tid of ours kept before the message was shipped is an earlier one's (or forged)
  const early = (tn: number) =>
    acknowledgeMessage(
      { tid: { tn, ihn: ORIGINATING }, stamp: [ORIGINATING, RELAY] },
      { ihn: DESTINATION, replyTid: { tn: 2, ihn: DESTINATION } },
      { answer: false, reasons: ['no such user'], howDelivered: [] },
    );
  await replies.handle(early(8), '127.0.0.1');
  await replies.handle(early(9), '127.0.0.1');
  t.equal(awaiting({ tn: 8, ihn: ORIGINATING }, Date.now() + 60_000), undefined, 'kept before the shipment: not taken');
  t.equal(awaiting({ tn: 9, ihn: ORIGINATING }, Date.now() - 60_000)?.outcome, 'failed', 'kept after the shipment: taken');
});
