// Every kind of bad input gets a typed ImpError with a code and byte offset.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodeBag,
  decodeElement,
  decodeShippingUnit,
  decompressBasic,
  encodeBag,
  encodeElement,
  encodeShippingUnit,
  ImpError,
  parseNotation,
  ShippingUnitDecoder,
  textElement,
  type Element,
  type ImpMessage,
} from '../../src/imp/index.js';
import { hexListing } from './fixtures/hex-listing.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const example1 = hexListing(readFileSync(join(dir, 'rfc753-example1.hex'), 'utf8'));
const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

function fails(t: Test, fn: () => unknown, code: string, offset?: number): ImpError {
  try {
    fn();
  } catch (err) {
    t.type(err, ImpError, `${code}: is an ImpError`);
    const e = err as ImpError;
    t.equal(e.code, code, e.message);
    if (offset !== undefined) t.equal(e.offset, offset, `${code}: offset`);
    return e;
  }
  t.fail(`expected ${code}, nothing thrown`);
  throw new Error('unreachable');
}

t.test('truncated: every proper prefix of a valid message fails with ERR_IMP_TRUNCATED', async (t) => {
  let ok = 0;
  for (let n = 0; n < example1.length; n++) {
    try {
      decodeElement(example1.subarray(0, n));
    } catch (err) {
      if (err instanceof ImpError && err.code === 'ERR_IMP_TRUNCATED' && err.offset !== undefined && err.offset <= n) ok++;
    }
  }
  t.equal(ok, example1.length);
  // the body TEXT header at 0x15a is cut after its code octet: offsets point at the element
  fails(t, () => decodeElement(example1.subarray(0, 0x15b)), 'ERR_IMP_TRUNCATED', 0);
  fails(t, () => decodeElement(hex('06 000005 4142')), 'ERR_IMP_TRUNCATED', 0);
  fails(t, () => decodeElement(hex('07 000007 0001 | 04 0000')), 'ERR_IMP_TRUNCATED', 0);
});

t.test('a count that overruns its parent', async (t) => {
  // TEXT claims 4 octets inside a LIST whose count leaves room for 3
  fails(t, () => decodeElement(hex('07 000009 0001 | 06 000004 414243 | 00')), 'ERR_IMP_COUNT_OVERRUN', 6);
  // Example 1 with the TEXT "DELIVER" (at 0x75) claiming 0x40 octets: past the end of the command LIST (0x9c)
  const bad = Buffer.from(example1);
  bad[0x78] = 0x40;
  fails(t, () => decodeElement(bad), 'ERR_IMP_COUNT_OVERRUN', 0x75);
  // Example 1 with the tid's LIST count raised from 10 to 11: its two items end one octet short
  const bad2 = Buffer.from(example1);
  bad2[0x09] = 11;
  fails(t, () => decodeElement(bad2), 'ERR_IMP_ITEM_COUNT', 6);
  // a PROPLIST pair whose value count runs past the PROPLIST
  fails(t, () => decodeElement(hex('08 000008 01 | 01 0009 41 | 03 0001')), 'ERR_IMP_COUNT_OVERRUN', 5);
});

t.test('item counts that disagree with the octet count', async (t) => {
  // says 2 items, holds 1
  fails(t, () => decodeElement(hex('07 000005 0002 | 03 0001')), 'ERR_IMP_ITEM_COUNT', 0);
  // says 1 item, holds 2
  fails(t, () => decodeElement(hex('07 000008 0001 | 03 0001 | 03 0002')), 'ERR_IMP_ITEM_COUNT', 0);
  // impossible count: 65535 items in 2 octets (refused before anything is allocated for them)
  fails(t, () => decodeElement(hex('07 000004 ffff | 00 00')), 'ERR_IMP_ITEM_COUNT', 0);
  // octet count too small for the item count field
  fails(t, () => decodeElement(hex('07 000001 00')), 'ERR_IMP_ITEM_COUNT', 0);
  // PROPLIST: pair count 2, one pair
  fails(t, () => decodeElement(hex('08 00000b 02 | 01 0005 41 | 06 000001 42 | 00')), 'ERR_IMP_ITEM_COUNT', 0);
  // PROPLIST value count longer than its element
  fails(t, () => decodeElement(hex('08 000009 01 | 01 0004 41 | 03 0001 00')), 'ERR_IMP_ITEM_COUNT', 5);
  // Example 1 with the message's item count raised from 3 to 4
  const bad = Buffer.from(example1);
  bad[5] = 4;
  fails(t, () => decodeElement(bad), 'ERR_IMP_ITEM_COUNT', 0);
});

t.test('unknown element codes', async (t) => {
  fails(t, () => decodeElement(hex('0a')), 'ERR_IMP_UNKNOWN_CODE', 0);
  fails(t, () => decodeElement(hex('07 000003 0001 | ff')), 'ERR_IMP_UNKNOWN_CODE', 6);
  fails(t, () => decodeShippingUnit(hex('02 07 000002 0000')), 'ERR_IMP_UNKNOWN_CODE', 0);
});

t.test('nesting deeper than the limit', async (t) => {
  const nest = (depth: number): Element => {
    let el: Element = { type: 'list', items: [] };
    for (let i = 1; i < depth; i++) el = { type: 'list', items: [el] };
    return el;
  };
  t.doesNotThrow(() => decodeElement(encodeElement(nest(64))), '64 levels decode by default');
  fails(t, () => decodeElement(encodeElement(nest(65))), 'ERR_IMP_TOO_DEEP', 64 * 6);
  fails(t, () => decodeElement(encodeElement(nest(11)), { maxDepth: 10 }), 'ERR_IMP_TOO_DEEP', 60);
  // PROPLIST values count as a level too
  const pl: Element = { type: 'proplist', pairs: [{ name: 'A', value: nest(2) }] };
  fails(t, () => decodeElement(encodeElement(pl), { maxDepth: 2 }), 'ERR_IMP_TOO_DEEP', 15);
  fails(t, () => parseNotation('LIST( '.repeat(65) + ' )'.repeat(65)), 'ERR_IMP_TOO_DEEP');
  // a hostile depth far beyond the limit is refused without deep recursion
  const N = 100_000;
  const deep = Buffer.concat(
    Array.from({ length: N }, (_, i) => hex(`07 ${(6 * (N - i - 1) + 2).toString(16).padStart(6, '0')} ${i < N - 1 ? '0001' : '0000'}`)),
  );
  fails(t, () => decodeElement(deep), 'ERR_IMP_TOO_DEEP', 64 * 6);
});

t.test('decompressed size over the limit', async (t) => {
  // 64 filler units of 63 zeros = 4032 octets from 64 octets of input
  const bomb = Buffer.alloc(64, 0xff);
  fails(t, () => decompressBasic(bomb, { maxBytes: 4000 }), 'ERR_IMP_TOO_LARGE', 63);
  t.equal(decompressBasic(bomb, { maxBytes: 4032 }).length, 4032);
  // a shipping unit whose bag header claims 2^24-1 octets, over a 1 MiB limit: refused at the header
  // (compressed: 01 | 01 07 | 83 ff | c2; the offset is the compression unit that completed the header)
  const unit = encodeShippingUnit(hex('07 ffffff 0000'), { compress: true });
  t.same(unit, hex('01 | 01 07 | 83 ff | c2'));
  fails(t, () => decodeShippingUnit(unit, { maxBagBytes: 1 << 20 }), 'ERR_IMP_TOO_LARGE', 3);
  fails(t, () => decodeBag(Buffer.alloc(100, 0), { maxBagBytes: 99 }), 'ERR_IMP_TOO_LARGE', 0);
  // a compression unit expanding past the bag's end
  fails(t, () => decodeShippingUnit(hex('01 | 04 07000002 | c5')), 'ERR_IMP_COUNT_OVERRUN', 6);
  fails(t, () => decodeShippingUnit(hex('01 | 06 07000002 0000 | c5')), 'ERR_IMP_TRAILING_DATA', 8);
  fails(t, () => decodeShippingUnit(hex('01 | 08 07000002 0000 0000')), 'ERR_IMP_COUNT_OVERRUN', 1);
  fails(t, () => decodeShippingUnit(hex('01 | 04 07000002')), 'ERR_IMP_TRUNCATED', 6);
  const d = new ShippingUnitDecoder();
  t.same(d.push(hex('00 07')), []);
  fails(t, () => d.end(), 'ERR_IMP_TRUNCATED', 2);
});

t.test('forward and unknown share references', async (t) => {
  const msg = (tn: number, content: number, ref?: number): Element => ({
    type: 'list',
    items: [
      { type: 'list', items: [{ type: 'index', value: tn }, { type: 'integer', value: 7 }] },
      {
        type: 'list',
        items:
          content === 1
            ? [{ type: 'index', value: 1 }, { type: 'list', items: [{ type: 'index', value: ref! }, { type: 'integer', value: 7 }] }]
            : [
                { type: 'index', value: 0 },
                parseNotation('LIST( PROPLIST( USER: x ), LIST( ), INDEX=1, TEXT="PROBE", LIST( ), LIST( ) )'),
              ],
      },
      { type: 'list', items: [] },
    ],
  });
  const bag = (...m: Element[]) => encodeElement({ type: 'list', items: m });
  t.equal(decodeBag(bag(msg(1, 0), msg(2, 1, 1)))[1]!.command.operation, 'PROBE');
  // forward reference: message 0 refers to tid 2, which comes later
  const fwd = bag(msg(1, 1, 2), msg(2, 0));
  const e1 = fails(t, () => decodeBag(fwd), 'ERR_IMP_SHARE_REF', 6 + 6 + 14 + 6 + 3);
  t.equal(e1.path, 'message[0].commandList.tid');
  // the offset is that of the reference's tid LIST, found by its own octets
  const refAt = (b: Buffer, tn: number) => b.indexOf(encodeElement({ type: 'list', items: [{ type: 'index', value: tn }, { type: 'integer', value: 7 }] }), 6 + encodeElement(msg(1, 0)).length + 14);
  // unknown tid
  const unknown = bag(msg(1, 0), msg(2, 1, 99));
  t.equal(fails(t, () => decodeBag(unknown), 'ERR_IMP_SHARE_REF', refAt(unknown, 99)).path, 'message[1].commandList.tid');
  // a reference to itself is not "earlier"
  const self = bag(msg(1, 0), msg(2, 1, 2));
  t.equal(fails(t, () => decodeBag(self), 'ERR_IMP_SHARE_REF', refAt(self, 2)).path, 'message[1].commandList.tid');
  // content other than 0/1 and duplicate tids are structure errors
  const dup = bag(msg(1, 0), msg(1, 0));
  t.equal(fails(t, () => decodeBag(dup), 'ERR_IMP_MESSAGE', 6 + encodeElement(msg(1, 0)).length + 6).path, 'message[1].tid');
});

t.test('message structure errors name the path and offset', async (t) => {
  const e = fails(t, () => decodeBag(hex('07 000008 0001 | 07 000002 0000')), 'ERR_IMP_MESSAGE', 6);
  t.equal(e.path, 'message[0]');
  fails(t, () => decodeBag(hex('06 000000')), 'ERR_IMP_MESSAGE', 0);
  // Example 1 with the command type changed to 9
  const bad = encodeElement({ type: 'list', items: [decodeElement(example1)] });
  bad[6 + 0x72 + 2] = 9;
  const e2 = fails(t, () => decodeBag(bad), 'ERR_IMP_MESSAGE', 6 + 0x72);
  t.equal(e2.path, 'message[0].command.type');
});

t.test('TEXT with 8-bit octets', async (t) => {
  const bad = Buffer.from(example1);
  bad[0x15e + 2] = 0xe9; // inside the body text
  fails(t, () => decodeElement(bad), 'ERR_IMP_TEXT_8BIT', 0x15e + 2);
  fails(t, () => decodeElement(hex('08 000008 01 | 01 0003 c1 | 03 0000')), 'ERR_IMP_TEXT_8BIT', 8);
  fails(t, () => textElement('na\u00efve'), 'ERR_IMP_TEXT_8BIT');
  fails(t, () => parseNotation('TEXT="na\u00efve"'), 'ERR_IMP_TEXT_8BIT', 8);
});

t.test('encoder limits say which limit', async (t) => {
  const e1 = fails(t, () => encodeElement({ type: 'list', items: [{ type: 'index', value: 70000 }] }), 'ERR_IMP_LIMIT');
  t.equal(e1.path, 'element[0]');
  t.match(e1.message, /65535/);
  const big = Buffer.alloc(0x1000000, 0x41);
  t.match(fails(t, () => encodeElement({ type: 'text', data: big }), 'ERR_IMP_LIMIT').message, /2\^24-1 octets/);
  t.match(fails(t, () => encodeElement({ type: 'bitstr', bits: 0x1000000, data: Buffer.alloc(0x200000) }), 'ERR_IMP_LIMIT').message, /2\^24-1 bits/);
  const items = Array.from({ length: 65536 }, (): Element => ({ type: 'nop' }));
  t.match(fails(t, () => encodeElement({ type: 'list', items }), 'ERR_IMP_LIMIT').message, /65535 items/);
  const pairs = Array.from({ length: 256 }, () => ({ name: 'A', value: { type: 'nop' } as Element }));
  t.match(fails(t, () => encodeElement({ type: 'proplist', pairs }), 'ERR_IMP_LIMIT').message, /255 pairs/);
  const longValue: Element = { type: 'proplist', pairs: [{ name: 'BODY', value: { type: 'text', data: Buffer.alloc(70000, 0x41) } }] };
  const e2 = fails(t, () => encodeElement(longValue), 'ERR_IMP_LIMIT');
  t.match(e2.message, /65535 octets/);
  t.equal(e2.path, 'element.pairs[0].BODY');
  // a bag over 2^24-1 octets is refused, not split
  const body = (n: number): Element => ({ type: 'bitstr', bits: 8 * n, data: Buffer.alloc(n) });
  const msgs: ImpMessage[] = Array.from({ length: 9 }, (_, i) => ({
    tid: { tn: i, ihn: 1 },
    command: { mailbox: { type: 'proplist' as const, pairs: [] }, stamp: [], type: 1, operation: 'X', arguments: { type: 'list' as const, items: [] }, errorList: { type: 'list' as const, items: [] } },
    document: { header: { type: 'proplist' as const, pairs: [] }, body: { type: 'list' as const, items: [body(2_000_000 + i)] } },
  }));
  const e3 = fails(t, () => encodeBag(msgs), 'ERR_IMP_LIMIT');
  t.equal(e3.path, 'bag');
  t.match(e3.message, /2\^24-1 octets/);
});
