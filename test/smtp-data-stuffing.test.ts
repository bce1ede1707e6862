// nodemailer's DATA stream (patched: patches/nodemailer+*.patch finds line breaks with
// indexOf instead of a loop over every byte) against the rules it must keep, on fixed
// cases and random inputs cut into random chunks: bare CR and bare LF become CRLF, a dot
// at the start of a line (also after a bare CR: SMTP smuggling) is doubled, and the data
// ends with CRLF "." CRLF.
import t from 'tap';
import { Readable } from 'node:stream';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { prng } from '../bench/lib/prng.js';

/** The rules, over the whole input at once. */
function expected(input: Buffer): Buffer {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!;
    if (b === 0x0d || b === 0x0a) {
      // CRLF, bare CR and bare LF: one line break each
      if (b === 0x0d && input[i + 1] === 0x0a) i++;
      out.push(0x0d, 0x0a);
      lineStart = true;
      continue;
    }
    if (lineStart && b === 0x2e) out.push(0x2e);
    out.push(b);
    lineStart = false;
  }
  if (!lineStart || input.length === 0) out.push(0x0d, 0x0a);
  out.push(0x2e, 0x0d, 0x0a);
  return Buffer.from(out);
}

async function stuffed(chunks: Buffer[]): Promise<{ out: Buffer; inBytes: number; outBytes: number }> {
  const ds = new DataStream() as DataStream & { inByteCount: number; outByteCount: number };
  const parts: Buffer[] = [];
  ds.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((r) => ds.on('end', r));
  Readable.from(chunks, { objectMode: false }).pipe(ds);
  await ended;
  return { out: Buffer.concat(parts), inBytes: ds.inByteCount, outBytes: ds.outByteCount };
}

const cases = ['', 'a', '.', '..', 'a\r\n.b\r\n', 'a\n.b\n', 'a\r.b\r', '\r.\r', '\n.\n', '\r\n.\r\n', 'a\r', 'a\n', '\r\r\n\n', '.\r\n.\r\n.', 'x\r\r.\n\n.'];

t.test('fixed cases, whole and cut at every byte', async (t) => {
  for (const c of cases) {
    const input = Buffer.from(c, 'latin1');
    t.same((await stuffed([input])).out, expected(input), JSON.stringify(c));
    for (let cut = 1; cut < input.length; cut++) {
      t.same((await stuffed([input.subarray(0, cut), input.subarray(cut)])).out, expected(input), `${JSON.stringify(c)} cut at ${cut}`);
    }
  }
});

t.test('random inputs in random chunks', async (t) => {
  const random = prng(7);
  const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x20];
  let failures = 0;
  for (let n = 0; n < 2000 && failures < 5; n++) {
    const input = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => alphabet[Math.floor(random() * alphabet.length)]!));
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length; ) {
      const len = 1 + Math.floor(random() * 16);
      chunks.push(input.subarray(at, at + len));
      at += len;
    }
    const got = await stuffed(chunks);
    const want = expected(input);
    if (!got.out.equals(want)) {
      failures++;
      t.fail(`${JSON.stringify(input.toString('latin1'))} in ${chunks.length} chunks: ${JSON.stringify(got.out.toString('latin1'))}`);
    }
    if (got.inBytes !== input.length || got.outBytes !== want.length) {
      failures++;
      t.fail(`byte counts ${got.inBytes}/${got.outBytes} for ${input.length}/${want.length}`);
    }
  }
  t.equal(failures, 0);
});
