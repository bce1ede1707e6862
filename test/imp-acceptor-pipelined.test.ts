// Pipelined bags followed by a stream fault: every bag that arrived whole before the
// fault is answered, then the final error reply, then the close. Whether the fault
// shares a TCP segment with the bags before it must not matter.
import t, { type Test } from 'tap';
import { decodeBag, encodeBag, encodeShippingUnit, probeCommand, proplist, readReply, type ImpMessage } from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { startImpGateway } from './helpers/imp-gateway.js';

const ORIGIN = 167772404;
const OURS = 167772359;

async function gateway(t: Test): Promise<number> {
  return (await startImpGateway(t, { name: 'imp-pipelined', ihn: OURS })).port;
}

const probe = (tn: number): ImpMessage => ({
  tid: { tn, ihn: ORIGIN },
  command: probeCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] }),
});

/** Every reply the acceptor writes before it closes, in order: [tn, operation, answer, error class]. */
async function allReplies(c: Awaited<ReturnType<typeof impClient>>): Promise<[number, string, boolean | undefined, number][]> {
  const out: [number, string, boolean | undefined, number][] = [];
  for (;;) {
    let unit;
    try {
      unit = await c.unit();
    } catch {
      return out;
    }
    for (const m of decodeBag(unit.bag)) {
      const r = readReply(m);
      out.push([r.tid.tn, m.command.operation, r.answer, r.error.errorClass]);
    }
  }
}

for (const compress of [false, true]) {
  t.test(`${compress ? 'compressed' : 'plain'}: two bags and a bad unit in one write: both bags answered, then the final error`, async (t) => {
    const port = await gateway(t);
    const c = await impClient(port);
    const bags = [encodeShippingUnit(encodeBag([probe(7)]), { compress }), encodeShippingUnit(encodeBag([probe(8)]), { compress })];
    await c.send(Buffer.concat([...bags, Buffer.from([0x42, 0x07, 0x00, 0x00])]));
    const replies = await allReplies(c);
    t.same(replies, [
      [7, 'RESPONSE', true, 0],
      [8, 'RESPONSE', true, 0],
      [0, 'ACKNOWLEDGE', false, 3],
    ]);
  });
}

t.test('a bag, then half a bag and the FIN in one write: the whole bag answered, then the final error', async (t) => {
  const port = await gateway(t);
  const c = await impClient(port);
  const half = encodeShippingUnit(encodeBag([probe(9)]));
  await c.send(Buffer.concat([encodeShippingUnit(encodeBag([probe(8)])), half.subarray(0, half.length >> 1)]));
  c.socket.end();
  const replies = await allReplies(c);
  t.same(replies, [
    [8, 'RESPONSE', true, 0],
    [0, 'ACKNOWLEDGE', false, 3],
  ]);
});
