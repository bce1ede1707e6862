import t from 'tap';
import {
  compressBasic,
  decodeShippingUnit,
  decompressBasic,
  encodeShippingUnit,
  ImpError,
  ShippingUnitDecoder,
} from '../../src/imp/index.js';

const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

t.test('units are chosen per Appendix B', async (t) => {
  // 5 literal octets -> one sequence unit; 10 zeros -> one filler unit; 7 x 'A' -> one replication unit
  const data = Buffer.concat([Buffer.from('hello'), Buffer.alloc(10), Buffer.alloc(7, 'A')]);
  t.same(compressBasic(data), hex('05 68656c6c6f | ca | 87 41'));
  // runs longer than 63 are split; sequences longer than 127 too
  t.same(compressBasic(Buffer.alloc(100)), hex('ff e5'));
  const lit = Buffer.from(Array.from({ length: 130 }, (_, i) => (i % 2) + 1));
  const c = compressBasic(lit);
  t.equal(c[0], 127);
  t.equal(c[128], 3);
  t.same(decompressBasic(c), lit);
});

t.test('zero-count units are no-ops', async (t) => {
  t.same(decompressBasic(hex('00 80 41 c0 02 4142 c1')), hex('4142 00'));
});

t.test('shipping units: none and basic', async (t) => {
  const bag = hex('07 000002 0000');
  t.same(encodeShippingUnit(bag), hex('00 07 000002 0000'));
  const unit = encodeShippingUnit(bag, { compress: true });
  t.equal(unit[0], 1);
  t.same(decodeShippingUnit(unit).bag, bag);
  t.same(decodeShippingUnit(hex('00 07 000002 0000')), { compression: 0, bag, offset: 0, end: 7 });
  const err = t.throws(() => decodeShippingUnit(hex('00 07 000002 0000 00'))) as ImpError;
  t.equal(err.code, 'ERR_IMP_TRAILING_DATA');
  t.equal(err.offset, 7);
});

t.test('the incremental decoder frames consecutive units from any chunking', async (t) => {
  const bags = [hex('07 000002 0000'), hex('07 000008 0001 06000002 4f4b'), Buffer.concat([hex('07 000408 0001 06000402'), Buffer.alloc(1026, 0x41)])];
  const stream = Buffer.concat(bags.map((b, i) => encodeShippingUnit(b, { compress: i % 2 === 1 })));
  for (const size of [1, 2, 3, 5, 64, stream.length]) {
    const d = new ShippingUnitDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) got.push(...d.push(stream.subarray(i, i + size)).map((u) => u.bag));
    d.end();
    t.same(got, bags, `chunk size ${size}`);
  }
});
