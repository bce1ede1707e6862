// Stamps at the format's limit. A reply's trail is the request's stamp plus this MPM's
// ihn (section 3.4), so a stamp that already holds 65,535 ihns (the most a LIST can
// hold) leaves no room for the trail: such a message must be refused before anything
// is spooled, not accepted and then answered "try again" (which would make its sender
// ship it again, and deliver it again).
import t, { type Test } from 'tap';
import {
  cancelCommand,
  decodeBag,
  deliverCommand,
  encodeBag,
  encodeShippingUnit,
  MAX_LIST_ITEMS,
  MAX_STAMP_HOPS,
  probeCommand,
  proplist,
  readReply,
  textElement,
  type ImpMessage,
} from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { startImpGateway } from './helpers/imp-gateway.js';
import { maildirFiles, waitFor } from './helpers/gateway.js';
import type { Store } from '../src/store/store.js';

const ORIGIN = 167772404;
const OURS = 167772359;

async function gateway(t: Test): Promise<{ port: number; mailboxes: string; store: Store }> {
  const { gw, port, mailboxes } = await startImpGateway(t, { name: 'imp-long-stamp', ihn: OURS });
  return { port, mailboxes, store: gw.store };
}

const longStamp = (n: number) => Array.from({ length: n }, (_, i) => 1000 + i);

const deliver = (tn: number, stamp: number[]): ImpMessage => ({
  tid: { tn, ihn: ORIGIN },
  command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp }),
  document: { header: proplist({ SUBJECT: 'hops' }), body: { type: 'list', items: [textElement('hello')] } },
});

t.test('a DELIVER whose stamp is full: one reply per message, nothing delivered, the bag after it still served', async (t) => {
  const { port, mailboxes, store } = await gateway(t);
  const c = await impClient(port);
  await c.send(encodeShippingUnit(encodeBag([deliver(1, longStamp(MAX_LIST_ITEMS)), deliver(2, [ORIGIN])])));
  const replies = (await c.replies(2)).map((m) => readReply(m));
  t.same(
    replies.map((r) => [r.tid.tn, r.answer, r.error.errorClass]),
    [
      [1, false, 0],
      [2, true, 0],
    ],
  );
  t.match(replies[0]!.reasons, [/^too many hops: the stamp holds 65535 ihns/]);
  t.same(replies[0]!.trail, [...longStamp(MAX_STAMP_HOPS), OURS], 'the trail: the stamp cut to the hop limit, then this MPM');
  t.same(replies[1]!.trail, [ORIGIN, OURS]);
  // the connection is still usable
  await c.send(encodeShippingUnit(encodeBag([{ tid: { tn: 3, ihn: ORIGIN }, command: probeCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: longStamp(MAX_LIST_ITEMS) }) }])));
  const [probe] = (await c.replies(1)).map((m) => readReply(m));
  t.same([probe!.tid.tn, probe!.answer, probe!.error.errorClass], [3, false, 0]);
  t.match(probe!.reasons, [/^too many hops/]);
  await c.send(encodeShippingUnit(encodeBag([{ tid: { tn: 4, ihn: ORIGIN }, command: cancelCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: longStamp(MAX_LIST_ITEMS), tid: { tn: 1, ihn: ORIGIN } }) }])));
  const [canceled] = (await c.replies(1)).map((m) => readReply(m));
  t.same([canceled!.tid.tn, canceled!.answer, canceled!.error.errorClass], [1, false, 0]);
  c.close();
  t.same(store.queue.impMessagesByTid({ tn: 1, ihn: ORIGIN }), [], 'nothing of the message with a full stamp was taken');
  t.equal(store.queue.impMessagesByTid({ tn: 2, ihn: ORIGIN }).length, 1, 'the message beside it was');
  await waitFor(() => maildirFiles(mailboxes, 'example.test', 'alice').length === 1, 10000, 'delivery');
});
