// MIME <-> RFC 753 conversion throughput over the fixture set (test/fixtures/mime),
// both directions, beside mailparser's simpleParser on the same messages in the same run.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { bagToMime, mimeToBag } from '../src/imp/mime/bag.js';
import { TidAllocator } from '../src/imp/mime/tid-allocator.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'mime');
const messages = readdirSync(dir)
  .filter((n) => !/^(CORPUS-README\.txt|MANIFEST\.tsv)$/.test(n))
  .sort()
  .map((n) => readFileSync(join(dir, n)));
const totalBytes = messages.reduce((n, m) => n + m.length, 0);
const tids = new TidAllocator({ ihn: 167772404 });
const bags = messages.map((m) => mimeToBag(m, { recipients: ['rcpt@example.test'], ihn: 167772404, tids }));

interface Result {
  name: string;
  msgsPerSec: number;
  mbPerSec: number;
}

/** Rate of one timed window of about `seconds`. */
async function window(pass: () => void | Promise<void>, seconds: number): Promise<number> {
  let rounds = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds) {
    await pass();
    rounds++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return rounds / elapsed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const passes: [string, () => void | Promise<void>][] = [
  ['MIME -> bag (mimeToBag)', () => {
    for (const m of messages) mimeToBag(m, { recipients: ['rcpt@example.test'], ihn: 167772404, tids });
  }],
  ['bag -> MIME (bagToMime)', () => {
    for (const b of bags) bagToMime(b);
  }],
  ['mailparser simpleParser (baseline)', async () => {
    for (const m of messages) await simpleParser(m);
  }],
];
for (const [, pass] of passes) for (let i = 0; i < 3; i++) await pass(); // warm-up
// Interleaved windows, median per contender: a burst of load elsewhere on the machine
// then hits all three alike instead of skewing one.
const WINDOWS = 7;
const rates: number[][] = passes.map(() => []);
for (let w = 0; w < WINDOWS; w++) {
  for (const [i, [, pass]] of passes.entries()) {
    (globalThis as { gc?: () => void }).gc?.();
    rates[i]!.push(await window(pass, 0.4));
  }
}
const results: Result[] = passes.map(([name], i) => {
  const roundsPerSec = median(rates[i]!);
  return { name, msgsPerSec: roundsPerSec * messages.length, mbPerSec: (roundsPerSec * totalBytes) / 1e6 };
});
const [toImp, fromImp, baseline] = results as [Result, Result, Result];

const fmt = (r: Result) =>
  `${r.name.padEnd(36)} ${r.msgsPerSec.toFixed(0).padStart(9)} msg/s ${r.mbPerSec.toFixed(1).padStart(8)} MB/s` +
  (r === baseline ? '' : `   ${(r.msgsPerSec / baseline.msgsPerSec).toFixed(1)}x mailparser`);
process.stdout.write(`${messages.length} messages, ${totalBytes} octets (MB/s counts MIME octets)\n`);
for (const r of [toImp, fromImp, baseline]) process.stdout.write(fmt(r) + '\n');
