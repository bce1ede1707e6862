import t from 'tap';
import { decodeElement, elementsEqual, encodeElement, ImpError, textElement, textValue, type Element } from '../../src/imp/index.js';

const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

t.test('scalar elements encode to their RFC 753 diagrams', async (t) => {
  t.same(encodeElement({ type: 'nop' }), hex('00'));
  t.same(encodeElement({ type: 'pad', data: hex('aabb') }), hex('01 000002 aabb'));
  t.same(encodeElement({ type: 'boolean', value: true }), hex('02 01'));
  t.same(encodeElement({ type: 'boolean', value: false }), hex('02 00'));
  t.same(encodeElement({ type: 'index', value: 37 }), hex('03 0025'));
  t.same(encodeElement({ type: 'integer', value: 167772404 }), hex('04 0a0000f4'));
  t.same(encodeElement({ type: 'integer', value: -1 }), hex('04 ffffffff'));
  // unsigned input maps to two's complement; it decodes back signed
  t.same(encodeElement({ type: 'integer', value: 0xfffffffe }), hex('04 fffffffe'));
  t.same(decodeElement(hex('04 fffffffe')), { type: 'integer', value: -2 });
  t.same(encodeElement({ type: 'bitstr', bits: 12, data: hex('abc0') }), hex('05 00000c abc0'));
  t.same(encodeElement(textElement('OK')), hex('06 000002 4f4b'));
  t.same(encodeElement({ type: 'encrypt', data: hex('0102') }), hex('09 000002 0102'));
});

t.test('empty LIST has octet count 2, empty PROPLIST count 1', async (t) => {
  t.same(encodeElement({ type: 'list', items: [] }), hex('07 000002 0000'));
  t.same(encodeElement({ type: 'proplist', pairs: [] }), hex('08 000001 00'));
  const pl: Element = { type: 'proplist', pairs: [{ name: 'IA', value: { type: 'integer', value: 1 } }] };
  // count = 1 (pair count) + 1 + 2 + 2 ("IA") + 5 (INTEGER)
  t.same(encodeElement(pl), hex('08 00000b 01 | 02 0005 4941 | 04 00000001'));
});

t.test('decode gives views of the input and round-trips', async (t) => {
  // LIST count 0x0e = 2 (item count) + 6 (TEXT) + 5 (BITSTR) + 1 (NOP)
  const bytes = hex('07 00000e 0003 | 06 000002 4f4b | 05 000003 e0 | 00');
  const el = decodeElement(bytes);
  if (el.type !== 'list') throw new Error('not a list');
  t.equal(el.items.length, 3);
  const text = el.items[0]!;
  if (text.type !== 'text') throw new Error('not text');
  t.equal(textValue(text), 'OK');
  t.equal(text.data.buffer, bytes.buffer, 'TEXT payload is a view of the input');
  t.equal(text.data.byteOffset, bytes.byteOffset + 10);
  t.same(el.items[1], { type: 'bitstr', bits: 3, data: hex('e0') });
  t.same(el.items[2], { type: 'nop' });
  t.same(encodeElement(el), bytes);
  t.ok(elementsEqual(el, decodeElement(encodeElement(el))));
});

t.test('TEXT refuses 8-bit octets on both sides', async (t) => {
  t.throws(() => textElement('caf\u00e9'), { code: 'ERR_IMP_TEXT_8BIT' });
  t.throws(() => encodeElement({ type: 'text', data: hex('41c3') }), { code: 'ERR_IMP_TEXT_8BIT' });
  const err = t.throws(() => decodeElement(hex('06 000003 4142c3'))) as ImpError;
  t.equal(err.code, 'ERR_IMP_TEXT_8BIT');
  t.equal(err.offset, 6);
});
