// fast-check generators for element trees, messages and bags.
import fc from 'fast-check';
import type { Element, ImpCommand, ImpMessage, ListElement, ProplistElement } from '../../src/imp/index.js';

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const ascii = (max: number) => fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: max });
const asciiBytes = (max: number) => ascii(max).map((s) => Buffer.from(s, 'latin1'));

const bitstr = fc.integer({ min: 0, max: 80 }).chain((bits) =>
  fc.uint8Array({ minLength: Math.ceil(bits / 8), maxLength: Math.ceil(bits / 8) }).map((a): Element => {
    const data = Buffer.from(a);
    const spare = data.length * 8 - bits;
    if (spare) data[data.length - 1]! &= ~((1 << spare) - 1) & 0xff;
    return { type: 'bitstr', bits, data };
  }),
);

export const leaf: fc.Arbitrary<Element> = fc.oneof(
  fc.constant<Element>({ type: 'nop' }),
  bytes(20).map((data): Element => ({ type: 'pad', data })),
  fc.boolean().map((value): Element => ({ type: 'boolean', value })),
  fc.integer({ min: 0, max: 0xffff }).map((value): Element => ({ type: 'index', value })),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((value): Element => ({ type: 'integer', value })),
  bitstr,
  asciiBytes(40).map((data): Element => ({ type: 'text', data })),
  bytes(20).map((data): Element => ({ type: 'encrypt', data })),
);

export const element: fc.Arbitrary<Element> = fc.letrec<{ el: Element }>((tie) => ({
  el: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('el'), { maxLength: 6 }).map((items): Element => ({ type: 'list', items })),
    fc
      .array(fc.record({ name: ascii(12), value: tie('el') }), { maxLength: 5 })
      .map((pairs): Element => ({ type: 'proplist', pairs })),
  ),
})).el;

const text = (s: string): Element => ({ type: 'text', data: Buffer.from(s, 'latin1') });
const proplistArb: fc.Arbitrary<ProplistElement> = fc
  .array(fc.record({ name: ascii(8), value: fc.oneof(ascii(20).map(text), fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((value): Element => ({ type: 'integer', value }))) }), { maxLength: 5 })
  .map((pairs) => ({ type: 'proplist', pairs }));
const listArb: fc.Arbitrary<ListElement> = fc.array(element, { maxLength: 4 }).map((items) => ({ type: 'list', items }));

const commandArb: fc.Arbitrary<ImpCommand> = fc.record({
  mailbox: proplistArb,
  stamp: fc.array(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { maxLength: 4 }),
  type: fc.integer({ min: 1, max: 4 }),
  operation: ascii(12),
  arguments: listArb,
  errorList: fc.oneof(
    fc.constant<ListElement>({ type: 'list', items: [] }),
    fc.tuple(fc.integer({ min: 0, max: 6 }), ascii(20)).map(([c, s]): ListElement => ({ type: 'list', items: [{ type: 'index', value: c }, text(s)] })),
  ),
});

/**
 * Bags whose messages draw commands, headers and bodies from small pools, so
 * that identical portions (and hence sharing) are common.
 */
export const bag: fc.Arbitrary<ImpMessage[]> = fc
  .record({
    commands: fc.array(commandArb, { minLength: 1, maxLength: 3 }),
    headers: fc.array(proplistArb, { minLength: 1, maxLength: 3 }),
    bodies: fc.array(listArb, { minLength: 1, maxLength: 3 }),
    picks: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.boolean()), { maxLength: 8 }),
    ihn: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  })
  .map(({ commands, headers, bodies, picks, ihn }) =>
    picks.map(([c, h, b, hasDoc], i): ImpMessage => {
      const msg: ImpMessage = { tid: { tn: i + 1, ihn }, command: commands[c % commands.length]! };
      if (hasDoc) msg.document = { header: headers[h % headers.length]!, body: bodies[b % bodies.length]! };
      return msg;
    }),
  );
