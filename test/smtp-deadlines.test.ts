// Hostile peers at the SMTP door: a client trickling a byte at a time is cut off by the
// command-line and DATA deadlines (the idle timeout never fires for it), and one address
// opening connections too fast gets 421 4.7.0.
import t, { type Test } from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import type { ConfigInput } from '../src/config/schema.js';
import { ConnectionRateLimit } from '../src/smtp/connection-rate.js';
import { RawSmtp, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function gateway(t: Test, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Promise<{ gw: Gateway; dir: string }> {
  const { dir, cleanup } = tempDir('deadlines');
  const gw = await startGateway(testConfig(dir, overrides));
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  return { gw, dir };
}

async function session(gw: Gateway): Promise<RawSmtp> {
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO client.test');
  return c;
}

/**
 * Writes `text` one byte every `everyMs` until it is all out or the server closed the
 * connection; `finished` says whether the whole text went out.
 */
function trickle(c: RawSmtp, text: string, everyMs: number): { finished: () => boolean; done: Promise<void> } {
  let i = 0;
  let finished = false;
  const done = new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (c.closed || c.socket.destroyed) {
        clearInterval(timer);
        return resolve();
      }
      c.write(text[i++]!);
      if (i === text.length) {
        finished = true;
        clearInterval(timer);
        resolve();
      }
    }, everyMs);
  });
  return { finished: () => finished, done };
}

t.test('a command line trickled a byte at a time is cut off with 421 4.4.2 while it trickles', async (t) => {
  const { gw } = await gateway(t, { smtp: { commandTimeout: 300 } });
  const c = await session(gw);
  // 300 bytes at 20 ms: six seconds of trickle, far beyond the 300 ms deadline, and
  // every byte resets the idle timeout (five minutes), which alone would never fire.
  const slow = trickle(c, 'MAIL FROM:<' + 'a'.repeat(280) + '@sender.test>', 20);
  const reply = await c.reply(30_000);
  const stillTrickling = !slow.finished();
  t.match(reply, /^421 4\.4\.2 .*command line timeout/, 'the right reply');
  t.ok(stillTrickling, 'it came while the client was still sending the line');
  await waitFor(() => c.closed, 10_000, 'the server to close the connection');
  t.ok(!slow.finished(), 'and the connection closed before the trickle ended');
  await slow.done;
  c.close();
});

t.test('idle time between whole command lines is not a command-line timeout', async (t) => {
  const { gw } = await gateway(t, { smtp: { commandTimeout: 300 } });
  const c = await session(gw);
  await new Promise((r) => setTimeout(r, 900)); // three deadlines of silence
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /, 'the session goes on');
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  t.match(await c.cmd('Subject: on time\r\n\r\nbody\r\n.'), /^250 /, 'a message sent whole is queued');
  c.close();
});

t.test('message data trickled a byte at a time is cut off with 421 4.4.2 and nothing is kept', async (t) => {
  const { gw, dir } = await gateway(t, { smtp: { dataTimeout: 300 } });
  const c = await session(gw);
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  // Whole lines, so the line deadline is not what fires: only the DATA deadline can.
  const slow = trickle(c, 'Subject: slow\r\n\r\n' + 'line of a slow body\r\n'.repeat(15), 20);
  const reply = await c.reply(30_000);
  const stillTrickling = !slow.finished();
  t.match(reply, /^421 4\.4\.2 .*DATA timeout/, 'the right reply');
  t.ok(stillTrickling, 'it came while the client was still sending the message');
  await waitFor(() => c.closed, 10_000, 'the server to close the connection');
  await slow.done;
  c.close();
  await waitFor(() => readdirSync(join(dir, 'spool', 'tmp')).length === 0, 5000, 'the tmp file to go');
  t.equal(gw.store.queue.list().length, 0, 'no message in the store');
  t.same(readdirSync(join(dir, 'spool')).filter((f) => f !== 'tmp' && !f.startsWith('gateway.lock') && f !== 'results.journal'), [], 'no spool file');
});

t.test('the DATA deadline of a second transaction on the same connection: re-armed for it, silent in between', async (t) => {
  const { gw } = await gateway(t, { smtp: { dataTimeout: 300 } });
  const c = await session(gw);
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  const first = await c.cmd('Subject: first\r\n\r\nbody\r\n.');
  t.match(first, /^250 .*queued as /, 'the first message is queued');
  // three deadlines of idle time after the first DATA: its deadline has nothing to end
  await new Promise((r) => setTimeout(r, 900));
  t.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /, 'the session goes on');
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  const slow = trickle(c, 'Subject: slow\r\n\r\n' + 'line of a slow body\r\n'.repeat(15), 20);
  const reply = await c.reply(30_000);
  const stillTrickling = !slow.finished();
  t.match(reply, /^421 4\.4\.2 .*DATA timeout/, 'the second DATA has its deadline');
  t.ok(stillTrickling, 'it came while the client was still sending the message');
  await waitFor(() => c.closed, 10_000, 'the server to close the connection');
  await slow.done;
  c.close();
  t.ok(gw.store.queue.message(/queued as (\S+)/.exec(first)![1]!), 'the first message is stored');
});

t.test('connections per IP per minute: 421 4.7.0 beyond the limit, trusted networks exempt', async (t) => {
  const { gw } = await gateway(t, { smtp: { maxConnectionRatePerIp: 2 } });
  for (let i = 1; i <= 2; i++) {
    const c = await RawSmtp.open(gw.smtpAddress().port);
    t.match(await c.reply(), /^220 /, `connection ${i} is greeted`);
    c.close();
  }
  const third = await RawSmtp.open(gw.smtpAddress().port);
  t.match(await third.reply(), /^421 4\.7\.0 Too many connections from 127\.0\.0\.1 per minute/, 'the third in a minute is refused');
  await waitFor(() => third.closed, 5000, 'the refused connection to close');
  third.close();

  const { gw: trusting } = await gateway(t, { smtp: { maxConnectionRatePerIp: 1, trustedNetworks: ['127.0.0.0/8'] } });
  for (let i = 1; i <= 3; i++) {
    const c = await RawSmtp.open(trusting.smtpAddress().port);
    t.match(await c.reply(), /^220 /, `trusted connection ${i} is greeted`);
    c.close();
  }
});

t.test('ConnectionRateLimit: a window per address, refused attempts count, old windows are swept', async (t) => {
  let now = 1_000_000;
  const limit = new ConnectionRateLimit(2, 60_000, () => now);
  t.same([limit.admit('a'), limit.admit('a'), limit.admit('a'), limit.admit('b')], [true, true, false, true]);
  now += 59_999;
  t.notOk(limit.admit('a'), 'still the same window');
  now += 1;
  t.ok(limit.admit('a'), 'a new window');
  t.equal(limit.tracked, 1, "b's expired window is dropped");
  now += 30_000;
  limit.admit('c');
  t.equal(limit.tracked, 2);
  now += 120_000;
  limit.admit('d');
  t.equal(limit.tracked, 1, 'expired windows are dropped');
  const off = new ConnectionRateLimit(0);
  t.ok(Array.from({ length: 1000 }, () => off.admit('a')).every(Boolean), '0 is no limit');
});
