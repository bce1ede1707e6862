// SMTP smuggling: DATA whose content holds a bare-LF / bare-CR end-of-data variant
// followed by an injected second transaction. Only what the policy allows may reach
// the next hop: `reject` refuses the message (550 5.5.2), `normalise` delivers it as
// one message with CRLF line endings, never as two.
import t from 'tap';
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway } from '../src/gateway/gateway.js';
import { BareNewlineScanner } from '../src/smtp/bare-newline.js';
import { RawSmtp, startSink, tempDir, testConfig, waitFor } from './helpers/gateway.js';

const VARIANTS: Record<string, string> = {
  'LF.LF': '\n.\n',
  'LF.CRLF': '\n.\r\n',
  'CRLF.LF': '\r\n.\n',
  'CR.CR': '\r.\r',
};

const INJECTED = 'MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nFrom: ceo@example.test\r\nSubject: smuggled\r\n\r\nwire the money';

function hasBareNewline(b: Buffer): boolean {
  return /\r(?!\n)|(?<!\r)\n/.test(b.toString('latin1'));
}

for (const policy of ['reject', 'normalise'] as const) {
  t.test(`bareNewline: ${policy}`, async (t) => {
    const { dir, cleanup } = tempDir('smuggle');
    const sink = await startSink();
    const gw = await startGateway(
      testConfig(dir, { smtp: { bareNewline: policy }, routes: [{ domain: 'example.test', nexthop: `smtp://127.0.0.1:${sink.port}` }] }),
      { pollMs: 50 },
    );
    t.teardown(async () => {
      await gw.stop();
      await sink.close();
      cleanup();
    });
    for (const [name, eod] of Object.entries(VARIANTS)) {
      const c = await RawSmtp.open(gw.smtpAddress().port);
      await c.reply();
      await c.cmd('EHLO client.test');
      await c.cmd('MAIL FROM:<alice@sender.test>');
      await c.cmd('RCPT TO:<bob@example.test>');
      t.match(await c.cmd('DATA'), /^354 /);
      // One write, so the whole attack arrives in one segment, as it would be pipelined.
      c.write(`Subject: ${name}\r\n\r\nhello${eod}${INJECTED}\r\n.\r\n`);
      const reply = await c.reply();
      if (policy === 'reject') t.match(reply, /^550 5\.5\.2 .*bare CR or LF/, `${name}: rejected`);
      else t.match(reply, /^250 2\.6\.0 Ok: queued as /, `${name}: accepted as one message`);
      t.match(await c.cmd('NOOP'), /^250 /, `${name}: the injected commands were never executed as commands`);
      await c.cmd('QUIT');
      c.close();
    }
    if (policy === 'reject') {
      // Nothing stored means nothing the queue could deliver; stop() then waits out any attempt.
      t.equal(gw.store.queue.list().length, 0, 'nothing stored');
      await gw.stop();
      t.equal(sink.messages.length, 0, 'nothing reached the next hop');
      t.same(readdirSync(join(dir, 'spool', 'tmp')), [], 'no tmp file left');
      return;
    }
    await waitFor(() => sink.messages.length >= 4, 5000, 'four deliveries');
    t.equal((gw.store.db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n, 4, 'four messages stored, one per transaction');
    // stop() waits for every attempt in flight: after it, no further delivery can arrive.
    await gw.stop();
    t.equal(sink.messages.length, 4, 'exactly one message per transaction reached the next hop');
    for (const m of sink.messages) {
      t.equal(m.from, 'alice@sender.test', 'the envelope sender is the real one');
      t.same(m.to, ['bob@example.test'], 'no injected recipient');
      t.notOk(hasBareNewline(m.bytes), 'only CRLF line endings reach the next hop');
      t.match(m.bytes.toString('latin1'), /\r\n\r\nhello\r\n\.\r\nMAIL FROM:<evil@attacker\.test>\r\n/, 'the injected text is message content');
    }
  });
}

async function runGuard(policy: 'reject' | 'normalise', chunks: Buffer[]): Promise<Buffer> {
  const scanner = new BareNewlineScanner(policy);
  const out = chunks.map((c) => scanner.pass(c));
  const tail = scanner.end();
  if (tail) out.push(tail);
  return Buffer.concat(out);
}

t.test('guard: the outcome does not depend on how the data is chunked', async (t) => {
  const byte = fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x20);
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 64 }).chain((u) => fc.tuple(fc.constant(u), fc.array(byte, { maxLength: 64 }), fc.array(fc.nat(70), { maxLength: 6 }))), async ([_u, bytes, cuts]) => {
      const data = Buffer.from(bytes);
      const points = [...new Set(cuts.map((c) => Math.min(c, data.length)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const p of points) {
        chunks.push(data.subarray(prev, p));
        prev = p;
      }
      chunks.push(data.subarray(prev));
      const bare = hasBareNewline(data);
      const rejected = await runGuard('reject', chunks).then(
        (out) => {
          if (!out.equals(data)) throw new Error('reject mode changed clean data');
          return false;
        },
        () => true,
      );
      if (rejected !== bare) throw new Error(`reject mode: bare=${bare} rejected=${rejected}`);
      const normalised = await runGuard('normalise', chunks);
      if (hasBareNewline(normalised)) throw new Error('normalise left a bare CR/LF');
      const expected = Buffer.from(data.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
      if (!normalised.equals(expected)) throw new Error('normalise output differs from the reference');
    }),
    { numRuns: 500 },
  );
  t.pass('500 random inputs and chunkings');
});
