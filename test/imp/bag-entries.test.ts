// decodeBagEntries: the acceptor's message-by-message reading of a bag. A bad message
// is an entry with its error (and whatever of its tid, operation and stamp could be
// read); the messages around it are decoded as decodeBag would; a bag that cannot be
// framed still throws.
import t from 'tap';
import {
  decodeBag,
  decodeBagEntries,
  deliverCommand,
  encodeBag,
  ImpError,
  proplist,
  textElement,
  type ImpMessage,
} from '../../src/imp/index.js';

const msg = (tn: number, body = 'shared body text, long enough to be shared'): ImpMessage => ({
  tid: { tn, ihn: 7 },
  command: deliverCommand({ mailbox: proplist({ USER: `u${tn}`, HOST: 'example.test' }), stamp: [7] }),
  document: { header: proplist({ SUBJECT: 's' }), body: { type: 'list', items: [textElement(body)] } },
});

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}
function bagOf(items: Buffer[]): Buffer {
  const body = Buffer.concat(items);
  return Buffer.concat([Buffer.from([7]), u24(body.length + 2), Buffer.from([0, items.length]), body]);
}
const itemOf = (m: ImpMessage) => encodeBag([m], { sharing: 'none' }).subarray(6);

t.test('a good bag reads the same as decodeBag, sharing included', async (t) => {
  const bag = encodeBag([msg(1), msg(2), msg(3)]);
  t.ok(decodeBag(bag)[1]!.shared, 'the body is shared');
  const entries = decodeBagEntries(bag);
  t.same(entries.map((e) => e.message), decodeBag(bag));
  t.ok(entries.every((e) => e.error === undefined));
});

t.test('a bad message in the middle: its own error, the others decoded', async (t) => {
  const bad = Buffer.from(itemOf(msg(2)));
  const typeAt = bad.indexOf(Buffer.from([3, 0, 1, 6, 0, 0, 7]));
  bad[typeAt + 2] = 0; // command type 0
  const entries = decodeBagEntries(bagOf([itemOf(msg(1)), bad, itemOf(msg(3))]));
  t.same(entries.map((e) => e.message?.tid.tn), [1, undefined, 3]);
  const e = entries[1]!;
  t.ok(e.error instanceof ImpError);
  t.equal(e.error!.path, 'message[1].command.type');
  t.same(e.tid, { tn: 2, ihn: 7 }, 'the tid was read before the fault');
  t.throws(() => decodeBag(bagOf([itemOf(msg(1)), bad, itemOf(msg(3))])), { code: 'ERR_IMP_MESSAGE' }, 'decodeBag refuses the whole bag');
});

t.test('a message that is not a LIST, and one that shares from a bad message', async (t) => {
  const text = Buffer.from([6, 0, 0, 2, 0x68, 0x69]);
  const bad = Buffer.from(itemOf(msg(2)));
  bad[bad.indexOf(Buffer.from([3, 0, 1, 6, 0, 0, 7])) + 2] = 9;
  // Message 3 shares message 2's command (and body).
  const withShare = encodeBag([msg(2), { ...msg(3), command: msg(2).command }], { sharing: 'auto' });
  const [, shareItem] = splitItems(withShare);
  const entries = decodeBagEntries(bagOf([text, bad, shareItem!]));
  t.match(entries[0]!.error, { code: 'ERR_IMP_MESSAGE', path: 'message[0]' });
  t.match(entries[1]!.error, { code: 'ERR_IMP_MESSAGE' });
  t.match(entries[2]!.error, { code: 'ERR_IMP_SHARE_REF' }, 'a share of a bad message is itself bad');
});

t.test('a bag that cannot be framed throws', async (t) => {
  const good = itemOf(msg(1));
  const overrun = Buffer.from(good);
  overrun[1] = 0x10; // the message LIST count runs past the bag
  t.throws(() => decodeBagEntries(bagOf([overrun])), { code: 'ERR_IMP_COUNT_OVERRUN' });
  t.throws(() => decodeBagEntries(Buffer.from([6, 0, 0, 0])), { code: 'ERR_IMP_MESSAGE' }, 'not a LIST');
});

/** The message items of a bag, as octets. */
function splitItems(bag: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 6;
  while (at < bag.length) {
    const n = (bag[at + 1]! << 16) | (bag[at + 2]! << 8) | bag[at + 3]!;
    out.push(bag.subarray(at, at + 4 + n));
    at += 4 + n;
  }
  return out;
}
