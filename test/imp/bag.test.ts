import t from 'tap';
import {
  acknowledgeCommand,
  decodeBag,
  decodeElement,
  deliverCommand,
  encodeBag,
  encodeElement,
  ImpError,
  proplist,
  readArguments,
  textElement,
  type Element,
  type ImpMessage,
  type ListElement,
} from '../../src/imp/index.js';

const mailbox = proplist({ IA: 167772359, NET: 'arpa', HOST: 'rand-unix', USER: 'DCrocker' });
const header = proplist({ DATE: '1979-03-29-11:46-08:00', FROM: 'Jon Postel <Postel@ISIB>' });
const body: ListElement = { type: 'list', items: [textElement('Dave:\r\n\r\n--jon.')] };

function msg(tn: number, user: string): ImpMessage {
  return {
    tid: { tn, ihn: 167772404 },
    command: deliverCommand({ mailbox: proplist({ IA: 167772359, USER: user }), stamp: [167772404] }),
    document: { header, body },
  };
}

t.test('identical portions are shared with the first carrier', async (t) => {
  const bag = [msg(1, 'a'), msg(2, 'b'), msg(3, 'a')];
  const bytes = encodeBag(bag);
  const unshared = encodeBag(bag, { sharing: 'none' });
  t.ok(bytes.length < unshared.length, 'sharing makes the bag smaller');
  const raw = decodeElement(bytes);
  if (raw.type !== 'list') throw new Error('bag is not a list');
  // message 3: command shared from tid 1 (first carrier), header and body shared from tid 1
  const m3 = raw.items[2]!;
  t.same(encodeElement((m3 as { items: Element[] }).items[1]!), encodeElement({
    type: 'list',
    items: [{ type: 'index', value: 1 }, { type: 'list', items: [{ type: 'index', value: 1 }, { type: 'integer', value: 167772404 }] }],
  }));
  const decoded = decodeBag(bytes);
  t.equal(decoded.length, 3);
  t.same(decoded[2]!.shared, { command: { tn: 1, ihn: 167772404 }, header: { tn: 1, ihn: 167772404 }, body: { tn: 1, ihn: 167772404 } });
  t.same(decoded[1]!.shared, { header: { tn: 1, ihn: 167772404 }, body: { tn: 1, ihn: 167772404 } });
  t.same(encodeBag(decoded), bytes, 'auto sharing re-encodes the same bytes');
  t.same(encodeBag(decoded, { sharing: 'preserve' }), bytes, 'preserve re-encodes the same bytes');
  t.same(decodeBag(unshared).map((m) => m.shared), [undefined, undefined, undefined]);
  t.same(readArguments(decoded[2]!.command), { operation: 'DELIVER', options: ['REGULAR'] });
});

t.test('encrypted portions are never shared', async (t) => {
  const enc: ImpMessage['document'] = { header, body: { type: 'list', items: [{ type: 'encrypt', data: Buffer.from('xyz') }] } };
  const a: ImpMessage = { ...msg(1, 'a'), document: enc };
  const b: ImpMessage = { ...msg(2, 'a'), document: enc };
  const decoded = decodeBag(encodeBag([a, b]));
  t.same(decoded[1]!.shared, { command: { tn: 1, ihn: 167772404 }, header: { tn: 1, ihn: 167772404 } });
});

t.test('reference to a tid not earlier in the bag is rejected', async (t) => {
  const bag = [msg(1, 'a'), msg(2, 'a')];
  const bytes = encodeBag(bag);
  // swap order of the two messages: message 0 now refers to tid 1 which comes later
  const raw = decodeElement(bytes) as { type: 'list'; items: Element[] };
  const swapped = encodeElement({ type: 'list', items: [raw.items[1]!, raw.items[0]!] });
  const err = t.throws(() => decodeBag(swapped)) as ImpError;
  t.equal(err.code, 'ERR_IMP_SHARE_REF');
  t.equal(err.path, 'message[0].commandList.tid');
  t.type(err.offset, 'number');
  // the offending tid element sits at that offset
  t.same(swapped.subarray(err.offset!, err.offset! + 1), Buffer.from([7]));
});

t.test('ACKNOWLEDGE arguments round-trip through the reader', async (t) => {
  const cmd = acknowledgeCommand({
    mailbox: proplist({ IA: 167772404, USER: '*MPM*' }),
    stamp: [167772359],
    tid: { tn: 37, ihn: 167772404 },
    trail: [167772404, 167772246, 167772359],
    answer: true,
    reasons: ['OK'],
    howDelivered: ['ACCEPT'],
  });
  const [m] = decodeBag(encodeBag([{ tid: { tn: 1993, ihn: 167772359 }, command: cmd }]));
  t.same(readArguments(m!.command), {
    operation: 'ACKNOWLEDGE',
    tid: { tn: 37, ihn: 167772404 },
    trail: [167772404, 167772246, 167772359],
    answer: true,
    reasons: ['OK'],
    howDelivered: ['ACCEPT'],
  });
  t.equal(m!.document, undefined);
});
