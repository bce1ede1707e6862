// The smtp-server greeting delay (early-talker detection) is configurable through the
// patched `earlyTalkerDelay` option. Timings are behaviour checks with wide margins,
// not speed goals: they only prove which delay the server applied.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { checkGreetingDelay, GreetingDelayError, smtpServerHonoursGreetingDelay } from '../src/smtp/greeting-delay.js';

const require = createRequire(import.meta.url);

async function listen(options: SMTPServerOptions) {
  const server = new SMTPServer({ disableReverseLookup: true, logger: false, authOptional: true, ...options });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.server.address() as { port: number };
  return { server, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Milliseconds from TCP connect until the first reply line; optionally talks before it. */
function firstReply(port: number, talkFirst?: string): Promise<{ ms: number; line: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect(port, '127.0.0.1', () => {
      if (talkFirst) socket.write(talkFirst);
    });
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\r\n');
      if (nl === -1) return;
      const ms = performance.now() - t0;
      socket.destroy();
      resolve({ ms, line: buf.slice(0, nl) });
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => reject(new Error('no reply within 5 s')));
  });
}

async function bannerTimes(port: number, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await firstReply(port);
    if (!r.line.startsWith('220 ')) throw new Error(`not a banner: ${r.line}`);
    times.push(r.ms);
  }
  return times.sort((a, b) => a - b);
}

t.test('the installed smtp-server carries the earlyTalkerDelay patch for its version', async (t) => {
  t.ok(smtpServerHonoursGreetingDelay(), 'SMTPConnection#init reads earlyTalkerDelay');
  const version = (require('smtp-server/package.json') as { version: string }).version;
  const patch = new URL(`../patches/smtp-server+${version}.patch`, import.meta.url);
  t.ok(existsSync(patch), `patches/smtp-server+${version}.patch exists (refresh the patch when upgrading smtp-server)`);
  const text = readFileSync(patch, 'utf8');
  for (const f of ['dist/esm/smtp-connection.js', 'dist/cjs/smtp-connection.js', 'dist/esm/types.d.ts', 'dist/cjs/types.d.ts']) {
    t.match(text, `a/node_modules/smtp-server/${f}`, `patch covers ${f}`);
  }
  t.doesNotThrow(() => checkGreetingDelay(0));
  t.doesNotThrow(() => checkGreetingDelay(100));
  t.ok(new GreetingDelayError('x').code === 'ERR_GREETING_DELAY_UNSUPPORTED');
});

t.test('without the patch a non-default delay is refused at start-up, the default is not', async (t) => {
  const { SMTPConnection } = await import('smtp-server/lib/smtp-connection.js');
  const patched = SMTPConnection.prototype.init;
  // What an unpatched smtp-server 3.21.6 init looks like: a fixed 100 ms.
  SMTPConnection.prototype.init = function init(this: unknown) {
    setTimeout(() => undefined, 100);
  } as typeof patched;
  t.teardown(() => {
    SMTPConnection.prototype.init = patched;
  });
  t.notOk(smtpServerHonoursGreetingDelay());
  t.throws(() => checkGreetingDelay(0), { code: 'ERR_GREETING_DELAY_UNSUPPORTED' });
  t.throws(() => checkGreetingDelay(250), { code: 'ERR_GREETING_DELAY_UNSUPPORTED' });
  t.doesNotThrow(() => checkGreetingDelay(100), 'the default needs no patch');
});

t.test('earlyTalkerDelay 0 greets at once, 300 holds the banner, unset keeps 100', async (t) => {
  const zero = await listen({ earlyTalkerDelay: 0 });
  const slow = await listen({ earlyTalkerDelay: 300 });
  const unset = await listen({});
  t.teardown(async () => {
    await zero.close();
    await slow.close();
    await unset.close();
  });
  const z = await bannerTimes(zero.port, 5);
  const s = await bannerTimes(slow.port, 3);
  const u = await bannerTimes(unset.port, 3);
  t.comment(`time to banner (ms): 0 -> ${z.map((x) => x.toFixed(1))}; 300 -> ${s.map((x) => x.toFixed(1))}; unset -> ${u.map((x) => x.toFixed(1))}`);
  t.ok(z[2]! < 150, `median with delay 0 is ${z[2]!.toFixed(1)} ms (< 150)`);
  t.ok(s[0]! >= 250, `fastest with delay 300 is ${s[0]!.toFixed(1)} ms (>= 250)`);
  t.ok(u[0]! >= 90, `fastest with the default is ${u[0]!.toFixed(1)} ms (>= 90, smtp-server's 100 ms)`);
  t.ok(u[0]! < s[0]!, 'default is shorter than 300');
});

t.test('a bad value falls back to the 100 ms default instead of disabling the check', async (t) => {
  const bad = await listen({ earlyTalkerDelay: -5 });
  t.teardown(() => bad.close());
  const times = await bannerTimes(bad.port, 2);
  t.ok(times[0]! >= 90, `${times[0]!.toFixed(1)} ms`);
});

t.test('early talkers are still refused while the delay runs', async (t) => {
  const slow = await listen({ earlyTalkerDelay: 300 });
  t.teardown(() => slow.close());
  const r = await firstReply(slow.port, 'EHLO spambot.example\r\n');
  t.match(r.line, /^421 .*You talk too soon/);
  t.ok(r.ms < 250, 'refused as soon as it talked, before the banner was due');

  const polite = await firstReply(slow.port);
  t.match(polite.line, /^220 /, 'a client that waits gets the banner');
});
