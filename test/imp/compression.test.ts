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

t.test('an uncompressed bag that arrives whole in one chunk is a view of it; split ones are assembled', async (t) => {
  const bag = hex('07 000008 0001 06000002 4f4b');
  const stream = Buffer.concat([encodeShippingUnit(bag), encodeShippingUnit(bag)]);
  const d = new ShippingUnitDecoder();
  const [a, b] = d.push(stream);
  t.equal(a!.bag.buffer, stream.buffer, 'a view of the chunk');
  t.equal(a!.bag.byteOffset, stream.byteOffset + 1);
  t.same([a!.offset, a!.end, b!.offset, b!.end], [0, 13, 13, 26]);
  const e = new ShippingUnitDecoder();
  t.same(e.push(stream.subarray(0, 5)), []);
  t.notOk(e.idle);
  const [c] = e.push(stream.subarray(5, 13));
  t.same(c!.bag, bag);
  t.ok(e.idle);
});

t.test('plain Uint8Array input works like a Buffer', async (t) => {
  const unit = new Uint8Array(encodeShippingUnit(hex('07 000002 0000'), { compress: true }));
  t.same(decodeShippingUnit(unit).bag, hex('07 000002 0000'));
  t.same(decompressBasic(new Uint8Array([0xc3])), Buffer.alloc(3));
});

t.test('a bag that is only its 4-octet LIST header, split after the type octet, is one unit, not two', async (t) => {
  for (const splits of [
    [hex('00 07'), hex('00 00 00 | 00 07 00 00 02 00 00')],
    [hex('00'), hex('07 00 00 00 | 00 07 00 00 02 00 00')],
    [hex('00 07 00 00'), hex('00 | 00 07 00 00 02 00 00')],
    [hex('01 01 07'), hex('c3 | 00 07 00 00 02 00 00')],
    [hex('01 04 07 00 00 00 | 00 07 00 00 02 00 00')],
  ]) {
    const d = new ShippingUnitDecoder();
    const units = splits.flatMap((chunk) => d.push(chunk));
    t.same(
      units.map((u) => u.bag.toString('hex')),
      ['07000000', '0700000200 00'.replace(' ', '')],
      splits.map((s) => s.toString('hex')).join(' | '),
    );
    t.ok(d.idle);
  }
});

t.test('units completed before a fault in the same chunk are returned; the fault comes with the next push and at the end', async (t) => {
  const d = new ShippingUnitDecoder();
  const units = d.push(hex('00 07 00 00 02 00 00 | 01 04 07 00 00 02 c2 | 42 07'));
  t.same(
    units.map((u) => u.bag.toString('hex')),
    ['070000020000', '070000020000'],
  );
  t.equal(d.failed?.code, 'ERR_IMP_UNKNOWN_CODE');
  t.equal(d.failed?.offset, 14);
  t.notOk(d.idle, 'a failed decoder is never idle');
  t.throws(() => d.push(hex('00 07 00 00 02 00 00')), { code: 'ERR_IMP_UNKNOWN_CODE' });
  t.throws(() => d.end(), { code: 'ERR_IMP_UNKNOWN_CODE' });
  // a fault with no unit before it in the chunk is thrown at once, as before
  const e = new ShippingUnitDecoder();
  t.throws(() => e.push(hex('42')), { code: 'ERR_IMP_UNKNOWN_CODE' });
  t.equal(e.failed, undefined);
});

t.test('a bag completed by a compression unit that overruns it is not returned with the units before it', async (t) => {
  const d = new ShippingUnitDecoder();
  // a whole plain bag, then a compressed one whose sequence unit runs 2 octets past its end
  const units = d.push(hex('00 07 00 00 02 00 00 | 01 08 07 00 00 02 00 00 00 00'));
  t.same(units.map((u) => u.bag.toString('hex')), ['070000020000']);
  t.equal(d.failed?.code, 'ERR_IMP_COUNT_OVERRUN');
  const e = new ShippingUnitDecoder();
  // the same with a filler unit expanding past the end of a header-only bag
  t.same(e.push(hex('00 07 00 00 02 00 00 | 01 01 07 c5')).length, 1);
  t.equal(e.failed?.code, 'ERR_IMP_COUNT_OVERRUN');
});
