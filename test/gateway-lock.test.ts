// One gateway per spool and store. Two gateways on the same ./var used to sweep each
// other's spool files and double-deliver, and a second start resumed the first one's
// attempts in flight before failing on the busy port. The second now refuses before it
// touches anything, with one line naming the holder; the queue CLI still works.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { startGateway } from '../src/gateway/gateway.js';
import { loadConfig } from '../src/config/load.js';
import { cli } from './helpers/cli.js';
import { spawnGateway } from './helpers/gateway-process.js';
import { tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** A next hop that accepts connections and never says a word: attempts stay in flight. */
async function silentHop(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

t.test('a second gateway on the same spool and store refuses to start and touches nothing', async (t) => {
  const { dir, cleanup } = tempDir('lock');
  t.teardown(cleanup);
  const hop = await silentHop();
  t.teardown(() => hop.close());
  const file = writeTestConfig(dir, {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${hop.port}` }],
    queue: { attemptTimeout: 60_000, shutdownGrace: 100 },
  });
  const config = loadConfig(file);
  const gw1 = await startGateway(config, { pollMs: 50 });
  t.teardown(() => gw1.stop());
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw1.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['bob@remote.test'] }, raw: 'Subject: in flight\r\n\r\nhi\r\n' });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response)![1]!;
  const lease = await waitFor(() => gw1.store.queue.recipients(qid)[0]?.inflight_until, 5000, 'the attempt to be in flight');

  const err = await startGateway(config, { pollMs: 50 }).then(
    (gw2) => {
      void gw2.stop();
      return undefined;
    },
    (e: Error & { code?: string }) => e,
  );
  t.ok(err, 'the second gateway does not start');
  t.equal(err?.code, 'ERR_MAILBAG_LOCKED');
  t.match(err?.message, new RegExp(`^spool ${join(dir, 'spool')} is in use by another mailbag gateway \\(pid ${process.pid} on ${hostname()}, started \\S+\\); stop it first`));
  t.notMatch(err?.message, /\n/, 'one line');
  t.equal(gw1.store.queue.recipients(qid)[0]?.inflight_until, lease, "the first gateway's attempt in flight was not resumed");
  t.ok(existsSync(gw1.store.queue.message(qid)!.spool_path), 'its spool file is still there');

  // Sharing only one of the two is refused as well.
  const otherStore = testConfig(dir, { store: { path: join(dir, 'other.db') } });
  await t.rejects(startGateway(otherStore), { code: 'ERR_MAILBAG_LOCKED', message: /^spool .* is in use/ }, 'same spool, another store');
  const otherSpool = testConfig(dir, { spool: { dir: join(dir, 'other-spool') } });
  await t.rejects(startGateway(otherSpool), { code: 'ERR_MAILBAG_LOCKED', message: new RegExp(`^store ${config.store.path} is in use by another mailbag gateway \\(pid ${process.pid}`) }, 'same store, another spool');
  t.notOk(existsSync(join(dir, 'other-spool', 'tmp')), 'the refused gateway did not even set up its own spool');

  // The queue CLI works next to the running gateway.
  const list = await cli(['queue', 'list', '--config', file]);
  t.equal(list.code, 0, 'queue list works while the gateway runs');
  t.match(list.stdout.toString(), new RegExp(`^${qid} `, 'm'));

  // `mailbag start` as a second process: exit 1, one line naming the holder.
  const child = spawn(process.execPath, ['--import=tsx', MAIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 1, 'mailbag start exits 1');
  t.match(stderr, new RegExp(`^mailbag start: spool \\S+ is in use by another mailbag gateway \\(pid ${process.pid} on `), 'and says who holds it');
  t.equal(stderr.trim().split('\n').length, 1, 'in one line');

  await gw1.stop();
  const gw3 = await startGateway(config, { pollMs: 50 });
  t.ok(gw3, 'once the first has stopped, the next one starts');
  await gw3.stop();
});

t.test('a gateway killed with SIGKILL leaves no lock behind', async (t) => {
  const { dir, cleanup } = tempDir('lock-kill');
  t.teardown(cleanup);
  const file = writeTestConfig(dir, { log: { level: 'info' } });
  const child = await spawnGateway(file);
  t.teardown(() => child.kill());
  await t.rejects(startGateway(testConfig(dir)), { code: 'ERR_MAILBAG_LOCKED', message: new RegExp(`\\(pid ${child.pid} on `) }, 'locked while it runs');
  await child.kill();
  const gw = await startGateway(testConfig(dir));
  t.pass('the kernel dropped the lock with the process: no stale lock to clean up');
  await gw.stop();
});
