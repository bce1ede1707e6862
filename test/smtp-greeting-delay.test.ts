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

/** Connects to every port at once; the ports in the order their first reply line arrived. */
async function arrivalOrder(conns: { name: string; port: number; talkFirst?: string }[]): Promise<{ order: string[]; lines: Map<string, string> }> {
  const order: string[] = [];
  const lines = new Map<string, string>();
  await Promise.all(
    conns.map(async ({ name, port, talkFirst }) => {
      const r = await firstReply(port, talkFirst);
      order.push(name);
      lines.set(name, r.line);
    }),
  );
  return { order, lines };
}

// Upper bounds on elapsed time flake on a loaded machine: "at once" is shown by the order in
// which banners arrive from listeners connected to at the same moment. Lower bounds stay:
// a timer never fires early, so load cannot make them fail.
t.test('earlyTalkerDelay 0 greets at once, 300 holds the banner, unset keeps 100', async (t) => {
  const zero = await listen({ earlyTalkerDelay: 0 });
  const slow = await listen({ earlyTalkerDelay: 300 });
  const unset = await listen({});
  t.teardown(async () => {
    await zero.close();
    await slow.close();
    await unset.close();
  });
  const s = await bannerTimes(slow.port, 3);
  const u = await bannerTimes(unset.port, 3);
  t.comment(`time to banner (ms): 300 -> ${s.map((x) => x.toFixed(1))}; unset -> ${u.map((x) => x.toFixed(1))}`);
  t.ok(s[0]! >= 250, `fastest with delay 300 is ${s[0]!.toFixed(1)} ms (>= 250)`);
  t.ok(u[0]! >= 90, `fastest with the default is ${u[0]!.toFixed(1)} ms (>= 90, smtp-server's 100 ms)`);
  const { order, lines } = await arrivalOrder([
    { name: 'slow', port: slow.port },
    { name: 'unset', port: unset.port },
    { name: 'zero', port: zero.port },
  ]);
  for (const [name, line] of lines) t.match(line, /^220 /, `${name}: a banner`);
  t.same(order, ['zero', 'unset', 'slow'], 'connected at once: delay 0 greets first, the default next, 300 last');
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
  const { order, lines } = await arrivalOrder([
    { name: 'polite', port: slow.port },
    { name: 'talker', port: slow.port, talkFirst: 'EHLO spambot.example\r\n' },
  ]);
  t.match(lines.get('talker'), /^421 .*You talk too soon/);
  t.match(lines.get('polite'), /^220 /, 'a client that waits gets the banner');
  t.same(order, ['talker', 'polite'], 'refused as soon as it talked, before the banner was due');
});
