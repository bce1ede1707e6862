// Mutated bags on the wire (seeded, so a failure replays): whatever arrives, the peer
// gets an answer before the acceptor closes (replies to the messages it could read, or
// the final error reply), and the listener keeps serving.
import t from 'tap';
import { xorshift32 } from '../bench/lib/prng.js';
import { decodeBag, deliverCommand, encodeBag, encodeShippingUnit, probeCommand, proplist, readReply, textElement, type ImpMessage } from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { startImpGateway } from './helpers/imp-gateway.js';

const ORIGIN = 167772404;
const OURS = 167772359;
const CASES = Number(process.env.IMP_ACCEPTOR_MUTATIONS ?? 150);

const rand = xorshift32(Number(process.env.IMP_FUZZ_SEED ?? 0x1f2e3d4c));
const below = (n: number) => rand() % n;

function mutate(input: Buffer): Buffer {
  const b = Buffer.from(input);
  switch (below(4)) {
    case 0:
      for (let k = 1 + below(4); k > 0; k--) b[1 + below(b.length - 1)] = rand() & 0xff;
      return b;
    case 1:
      b[1 + below(b.length - 1)] = [0, 1, 0x7f, 0x80, 0xff][below(5)]!;
      return b;
    case 2: {
      const at = 1 + below(b.length - 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + below(8) }, () => rand() & 0xff)), b.subarray(at)]);
    }
    default: {
      const at = 1 + below(b.length - 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + below(8))]);
    }
  }
}

t.test(`${CASES} mutated shipping units: each answered before the close, the listener still serving`, async (t) => {
  const { port } = await startImpGateway(t, { name: 'imp-mutations', ihn: OURS });
  const command = deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] });
  const document = { header: proplist({ SUBJECT: 'm', FROM: 'ann@sender.test' }), body: { type: 'list' as const, items: [textElement('hello')] } };
  const messages: ImpMessage[] = [
    { tid: { tn: 1, ihn: ORIGIN }, command, document },
    { tid: { tn: 2, ihn: ORIGIN }, command, document },
    { tid: { tn: 3, ihn: ORIGIN }, command: probeCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'bob' }), stamp: [ORIGIN] }) },
  ];
  const seeds = [encodeShippingUnit(encodeBag(messages)), encodeShippingUnit(encodeBag(messages), { compress: true })];
  const silent: string[] = [];
  for (let i = 0; i < CASES && silent.length < 3; i++) {
    const input = mutate(seeds[below(2)]!);
    const c = await impClient(port);
    await c.send(input);
    c.socket.end();
    let answered = 0;
    for (;;) {
      try {
        answered += decodeBag((await c.unit()).bag).length;
      } catch {
        break;
      }
    }
    if (answered === 0) silent.push(input.toString('hex'));
  }
  t.same(silent, [], 'no connection closed without a reply');
  const c = await impClient(port);
  await c.send(encodeShippingUnit(encodeBag([messages[2]!])));
  const [r] = await c.replies(1);
  t.equal(readReply(r!).answer, true, 'still serving');
  c.close();
});
