// Random bytes and mutations of valid bags thrown at every decoder entry point
// for a bounded number of iterations: only typed ImpErrors may come out.
import t from 'tap';
import { xorshift32 } from '../../bench/lib/prng.js';
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
  parseNotationAll,
  printNotation,
  ShippingUnitDecoder,
} from '../../src/imp/index.js';
import { hexListing } from './fixtures/hex-listing.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const ITERATIONS = Number(process.env.IMP_FUZZ_ITERATIONS ?? 10_000);

// xorshift32, seeded so that a failure can be replayed
const rand = xorshift32(Number(process.env.IMP_FUZZ_SEED ?? 0x2545f491));
const below = (n: number) => rand() % n;

const message = decodeElement(hexListing(readFileSync(join(dir, 'rfc753-example1.hex'), 'utf8')));
const ack = decodeElement(hexListing(readFileSync(join(dir, 'rfc753-example2-view3.hex'), 'utf8')));
const validBag = encodeElement({ type: 'list', items: [message, ack] });
const sharedBag = (() => {
  const [m] = decodeBag(encodeElement({ type: 'list', items: [message] }));
  return encodeBag([m!, { ...m!, tid: { tn: 38, ihn: m!.tid.ihn } }, { ...m!, tid: { tn: 39, ihn: 5 } }]);
})();
const seeds = [validBag, sharedBag, encodeShippingUnit(validBag, { compress: true }), encodeShippingUnit(sharedBag)];

function mutate(input: Buffer): Buffer {
  const b = Buffer.from(input);
  switch (below(5)) {
    case 0: // flip a few octets
      for (let k = 1 + below(4); k > 0; k--) b[below(b.length)] = rand() & 0xff;
      return b;
    case 1: // truncate
      return b.subarray(0, below(b.length));
    case 2: // set a count octet to an extreme
      b[below(b.length)] = [0, 1, 0x7f, 0x80, 0xff][below(5)]!;
      return b;
    case 3: {
      // splice a random run in
      const at = below(b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + below(8) }, () => rand() & 0xff)), b.subarray(at)]);
    }
    default: {
      // delete a run
      const at = below(b.length);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + below(8))]);
    }
  }
}

function randomBytes(): Buffer {
  const b = Buffer.alloc(below(64));
  for (let i = 0; i < b.length; i++) b[i] = rand() & 0xff;
  // bias towards plausible element codes so the decoder gets past the first octet
  if (b.length && below(2)) b[0] = below(10);
  return b;
}

function onlyImpErrors(input: Buffer): string | undefined {
  const attempts: [string, () => unknown][] = [
    ['decodeElement', () => decodeElement(input, { maxDepth: 16 })],
    ['decodeBag', () => decodeBag(input)],
    ['decodeShippingUnit', () => decodeShippingUnit(input, { maxBagBytes: 1 << 16 })],
    ['decompressBasic', () => decompressBasic(input, { maxBytes: 1 << 16 })],
    [
      'ShippingUnitDecoder',
      () => {
        const d = new ShippingUnitDecoder({ maxBagBytes: 1 << 16 });
        for (let i = 0, size = 1; i < input.length; i += size) {
          size = 1 + below(7);
          d.push(input.subarray(i, i + size));
        }
        d.end();
      },
    ],
  ];
  for (const [name, fn] of attempts) {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ImpError) || !err.code.startsWith('ERR_IMP_'))
        return `${name} threw ${(err as Error)?.stack ?? String(err)} for ${input.toString('hex')}`;
      if (err.offset !== undefined && (err.offset < 0 || err.offset > input.length))
        return `${name}: offset ${err.offset} outside input of ${input.length} for ${input.toString('hex')}`;
    }
  }
  return undefined;
}

t.test(`${ITERATIONS} random inputs and mutations of valid bags`, async (t) => {
  const failures: string[] = [];
  for (let i = 0; i < ITERATIONS && failures.length < 5; i++) {
    const input = i % 4 === 0 ? randomBytes() : mutate(seeds[below(seeds.length)]!);
    const f = onlyImpErrors(input);
    if (f) failures.push(f);
  }
  t.same(failures, []);
});

t.test('notation parser: mutated and random text gives only ImpErrors', async (t) => {
  const text = printNotation(message);
  const alphabet = 'LIST( )PROPLIST(TEXT="\\x":,INDEX=INTEGER=-9BITSTR=12:\'ab\'#\n NOP';
  const failures: string[] = [];
  for (let i = 0; i < ITERATIONS / 4 && failures.length < 5; i++) {
    let s: string;
    if (i % 2) {
      const at = below(text.length);
      s = text.slice(0, at) + alphabet.slice(below(alphabet.length), below(alphabet.length) + 3) + text.slice(at + below(4));
    } else {
      s = Array.from({ length: below(40) }, () => alphabet[below(alphabet.length)]).join('');
    }
    try {
      parseNotationAll(s);
      if (i % 2) parseNotation(s);
    } catch (err) {
      if (!(err instanceof ImpError)) failures.push(`${(err as Error).stack} for ${JSON.stringify(s)}`);
    }
  }
  t.same(failures, []);
});
