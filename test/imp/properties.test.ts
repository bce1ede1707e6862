import t from 'tap';
import fc from 'fast-check';
import {
  bagMessages,
  compressBasic,
  ImpError,
  decodeBag,
  decodeElement,
  decompressBasic,
  elementsEqual,
  encodeBag,
  encodeElement,
  encodeShippingUnit,
  parseNotation,
  printNotation,
  ShippingUnitDecoder,
  type ImpMessage,
} from '../../src/imp/index.js';
import { bag, element } from './arbitraries.js';

const runs = { numRuns: 300 };
const strip = (msgs: ImpMessage[]) => msgs.map(({ shared: _shared, ...m }) => m);

t.test('decode(encode(element)) == element, and encode(decode(bytes)) == bytes', async (t) => {
  fc.assert(
    fc.property(element, (el) => {
      const bytes = encodeElement(el);
      const back = decodeElement(bytes);
      return elementsEqual(back, el) && encodeElement(back).equals(bytes);
    }),
    runs,
  );
  t.pass();
});

t.test('notation: parse(print(element)) == element', async (t) => {
  fc.assert(
    fc.property(element, fc.integer({ min: 20, max: 120 }), (el, width) => elementsEqual(parseNotation(printNotation(el, { width })), el)),
    runs,
  );
  t.pass();
});

t.test('decodeBag(encodeBag(messages)) == messages, with and without sharing', async (t) => {
  fc.assert(
    fc.property(bag, (msgs) => {
      const plain = encodeBag(msgs, { sharing: 'none' });
      const shared = encodeBag(msgs);
      const a = decodeBag(plain);
      const b = decodeBag(shared);
      // equal as messages: both re-encode (unshared) to the same bytes as the input
      if (!encodeBag(strip(a), { sharing: 'none' }).equals(plain)) return false;
      if (!encodeBag(strip(b), { sharing: 'none' }).equals(plain)) return false;
      // sharing never grows a bag, and a decoded bag re-encodes identically
      return shared.length <= plain.length && encodeBag(b, { sharing: 'preserve' }).equals(shared) && encodeBag(b).equals(shared);
    }),
    runs,
  );
  t.pass();
});

const repetitive = fc
  .array(fc.tuple(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })), fc.integer({ min: 1, max: 300 })), { maxLength: 40 })
  .map((runs) => Buffer.concat(runs.map(([b, n]) => Buffer.alloc(n, b))));

t.test('decompress(compress(b)) == b for random and highly repetitive input', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)), repetitive), (data) => {
      const c = compressBasic(data);
      return decompressBasic(c).equals(data) && c.length <= data.length + Math.ceil(data.length / 127);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('the shipping-unit decoder gives the same bags for any chunking', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(bag, fc.boolean()), { minLength: 1, maxLength: 4 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
      (units, cuts) => {
        const bags = units.map(([msgs]) => encodeBag(msgs));
        const stream = Buffer.concat(units.map(([, compress], i) => encodeShippingUnit(bags[i]!, { compress })));
        const d = new ShippingUnitDecoder();
        const got: Buffer[] = [];
        let pos = 0;
        for (let k = 0; pos < stream.length; k++) {
          const size = cuts[k % cuts.length]!;
          got.push(...d.push(stream.subarray(pos, pos + size)).map((u) => Buffer.from(u.bag)));
          pos += size;
        }
        d.end();
        return got.length === bags.length && got.every((b, i) => b.equals(bags[i]!));
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

t.test('the byte-level bag reader agrees with the element-tree reader, on valid and damaged bags', async (t) => {
  const outcome = (fn: () => ImpMessage[]): string => {
    try {
      return 'ok ' + encodeBag(fn(), { sharing: 'preserve' }).toString('hex');
    } catch (err) {
      if (!(err instanceof ImpError)) throw err;
      return 'error';
    }
  };
  fc.assert(
    fc.property(bag, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), (msgs, edits) => {
      const bytes = Buffer.from(encodeBag(msgs));
      for (const [at, v] of edits) if (bytes.length) bytes[at % bytes.length] = v;
      const viaBytes = outcome(() => decodeBag(bytes));
      const viaTree = outcome(() => bagMessages(decodeElement(bytes)));
      return viaBytes === viaTree;
    }),
    { numRuns: 500 },
  );
  t.pass();
});
