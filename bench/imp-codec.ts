// `npm run bench -- imp-codec`: IMP codec throughput beside JSON measured in
// the same run on an equivalent structure.
//   (a) a bag of 1,000 small messages     vs JSON.parse / JSON.stringify of the same messages
//   (b) a 12 MiB binary body in BITSTRs    vs JSON.parse / JSON.stringify with the body in base64
//   (c) basic compression of mail-like text vs JSON.stringify / JSON.parse of the text as a string
// Each figure is the best of several rounds (the machine may be shared).
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import {
  compressBasic,
  decodeBag,
  decodeElement,
  decompressBasic,
  deliverCommand,
  encodeBag,
  MAX_COUNT24,
  proplist,
  textElement,
  type Element,
  type ImpMessage,
} from '../src/imp/index.js';

const MB = 1e6;

/** Best seconds per call of `fn` over `rounds` rounds of at least `minMs` each. */
function time(fn: () => unknown, rounds = 9, minMs = 150): number {
  for (let i = 0; i < 3; i++) fn(); // warm up
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    do {
      fn();
      n++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    } while (elapsed < minMs);
    best = Math.min(best, elapsed / 1000 / n);
  }
  return best;
}

function row(label: string, bytes: number, seconds: number, baseLabel: string, baseBytes: number, baseSeconds: number): void {
  const mbps = (b: number, s: number) => (b / MB / s).toFixed(0).padStart(6);
  process.stdout.write(
    `  ${label.padEnd(26)} ${mbps(bytes, seconds)} MB/s  (${(seconds * 1e3).toFixed(2).padStart(8)} ms)   ` +
      `${baseLabel.padEnd(16)} ${mbps(baseBytes, baseSeconds)} MB/s  (${(baseSeconds * 1e3).toFixed(2).padStart(8)} ms)   ` +
      `time ratio ${(baseSeconds / seconds).toFixed(2)}x\n`,
  );
}

// ---- (a) 1,000 small messages -------------------------------------------------------

const WORDS = 'the meeting agenda for thursday please review attached notes and reply before noon regards team'.split(' ');
function sentence(seed: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) s += (i ? ' ' : '') + WORDS[(seed * 7 + i * 13 + (i * i) % 5) % WORDS.length];
  return s;
}

const small: ImpMessage[] = [];
const smallJson: unknown[] = [];
for (let i = 0; i < 1000; i++) {
  const user = `user${i}`;
  const header = { DATE: `2026-11-25-09:${String(i % 60).padStart(2, '0')}:00,000+00:00`, FROM: `Sender ${i % 7} <s${i % 7}@example.test>`, TO: `${user}@example.test`, SUBJECT: sentence(i, 5) };
  const body = `Hello ${user},\r\n\r\n${sentence(i, 20)}.\r\n${sentence(i + 1, 16)}.\r\n\r\n-- \r\nteam\r\n`;
  small.push({
    tid: { tn: i + 1, ihn: 167772404 },
    command: deliverCommand({ mailbox: proplist({ IA: 167772359 + (i % 50), HOST: 'mx.example.test', USER: user }), stamp: [167772404, 167772246] }),
    document: { header: proplist(header), body: { type: 'list', items: [textElement(body)] } },
  });
  smallJson.push({
    tid: { tn: i + 1, ihn: 167772404 },
    command: {
      mailbox: { IA: 167772359 + (i % 50), HOST: 'mx.example.test', USER: user },
      stamp: [167772404, 167772246],
      type: 1,
      operation: 'DELIVER',
      arguments: [['REGULAR']],
      errorList: [],
    },
    document: { header, body: [body] },
  });
}

process.stdout.write('imp-codec: throughput in MB/s of each side\'s own input; "time ratio" = JSON time / IMP time (>1: IMP faster)\n\n');

{
  const bag = encodeBag(small);
  const json = JSON.stringify(smallJson);
  process.stdout.write(`(a) bag of 1,000 small messages: ${bag.length} octets IMP, ${json.length} octets JSON\n`);
  const parse = time(() => JSON.parse(json));
  row('decodeBag (messages)', bag.length, time(() => decodeBag(bag)), 'JSON.parse', json.length, parse);
  row('decodeElement (tree)', bag.length, time(() => decodeElement(bag)), 'JSON.parse', json.length, parse);
  row('encodeBag', bag.length, time(() => encodeBag(small)), 'JSON.stringify', json.length, time(() => JSON.stringify(smallJson)));
}

// ---- (b) 12 MiB of binary in the largest BITSTRs ----------------------------------

{
  const total = 12 * 1024 * 1024;
  const largest = Math.floor(MAX_COUNT24 / 8); // whole octets in a 2^24-1-bit BITSTR
  const payload = Buffer.allocUnsafe(total);
  for (let i = 0; i < total; i += 4) payload.writeUInt32LE(((Math.imul(i, 2654435761) >>> 0) ^ (i >>> 7)) >>> 0, i);
  const items: Element[] = [];
  for (let at = 0; at < total; at += largest) {
    const data = payload.subarray(at, Math.min(total, at + largest));
    items.push({ type: 'bitstr', bits: data.length * 8, data });
  }
  const msg: ImpMessage = { ...small[0]!, document: { header: small[0]!.document!.header, body: { type: 'list', items } } };
  const bag = encodeBag([msg]);
  const jsonObj = { ...(smallJson[0] as object), document: { header: {}, body: items.map((b) => (b.type === 'bitstr' ? Buffer.from(b.data.buffer, b.data.byteOffset, b.data.length).toString('base64') : '')) } };
  const json = JSON.stringify(jsonObj);
  process.stdout.write(
    `\n(b) 12 MiB binary body in ${items.length} BITSTRs (${largest} octets each at most): ${bag.length} octets IMP, ${json.length} octets JSON (base64)\n`,
  );
  row('decodeBag (zero-copy)', bag.length, time(() => decodeBag(bag)), 'JSON.parse', json.length, time(() => JSON.parse(json)));
  row('encodeBag', bag.length, time(() => encodeBag([msg]), 5, 500), 'JSON.stringify', json.length, time(() => JSON.stringify(jsonObj), 5, 500));
}

// ---- (c) basic compression of mail-like text ------------------------------------------

{
  const parts: string[] = [];
  for (let i = 0; parts.join('').length < 4 * MB; i++) {
    parts.push(
      `Received: from mx${i % 9}.example.test (mx${i % 9}.example.test [192.0.2.${i % 250}])\r\n        by gw.example.test with ESMTPS id ${(i * 2654435761 >>> 0).toString(16)}\r\n`,
      `Subject: ${sentence(i, 6)}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`,
      `> ${sentence(i, 14)}\r\n> ${sentence(i + 3, 12)}\r\n>\r\n`,
      `${sentence(i + 5, 18)}.\r\n${' '.repeat(8)}${sentence(i + 2, 9)}\r\n\r\n`,
      `------=_Part_${i}_${i * 31}\r\n${'='.repeat(72)}\r\n${'-'.repeat(40)}\r\n\r\n`,
      Buffer.from(sentence(i + 9, 40)).toString('base64').replace(/(.{76})/g, '$1\r\n') + '\r\n\r\n',
    );
  }
  const text = Buffer.from(parts.join(''), 'latin1');
  const compressed = compressBasic(text);
  const asString = text.toString('latin1');
  const json = JSON.stringify(asString);
  const deflated = deflateRawSync(text, { level: 1 });
  process.stdout.write(
    `\n(c) basic compression of ${text.length} octets of mail-like text: ${compressed.length} octets (${((100 * compressed.length) / text.length).toFixed(1)}%); ` +
      `deflate level 1 for reference: ${deflated.length} octets (${((100 * deflated.length) / text.length).toFixed(1)}%)\n`,
  );
  if (!decompressBasic(compressed).equals(text)) throw new Error('round trip failed');
  row('compressBasic', text.length, time(() => compressBasic(text)), 'JSON.stringify', asString.length, time(() => JSON.stringify(asString)));
  row('decompressBasic', text.length, time(() => decompressBasic(compressed)), 'JSON.parse', json.length, time(() => JSON.parse(json)));
  row('  (deflate level 1)', text.length, time(() => deflateRawSync(text, { level: 1 }), 3), 'JSON.stringify', asString.length, time(() => JSON.stringify(asString)));
  row('  (inflate)', text.length, time(() => inflateRawSync(deflated), 3), 'JSON.parse', json.length, time(() => JSON.parse(json)));
}
