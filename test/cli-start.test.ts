// `mailbag start` as operators run it: a child process that logs a JSON `listening`
// line, delivers, and on SIGTERM finishes the transaction in flight, then exits 0.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Store } from '../src/store/store.js';
import { maildirFiles, RawSmtp, tempDir, waitFor, writeTestConfig } from './helpers/gateway.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

t.test('start, deliver, graceful SIGTERM with a transaction in flight', async (t) => {
  const { dir, cleanup } = tempDir('start');
  t.teardown(cleanup);
  const file = writeTestConfig(dir, { log: { level: 'info' }, queue: { shutdownGrace: 5000 } });
  const child = spawn(process.execPath, ['--import=tsx', MAIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ raw: line });
    }
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const listening = await waitFor(() => logs.find((l) => l.msg === 'listening'), 15000, `the listening line (stderr: ${stderr})`);
  const m = /^127\.0\.0\.1:(\d+)$/.exec(String(listening.smtp));
  t.ok(m, `listening line names the SMTP address: ${String(listening.smtp)}`);
  const port = Number(m![1]);

  const c = await RawSmtp.open(port);
  t.match(await c.reply(), /^220 /);
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<ann@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  t.match(await c.cmd('DATA'), /^354 /);
  await c.send('Subject: in flight during shutdown\r\n\r\nfirst half\r\n');
  child.kill('SIGTERM');
  await waitFor(() => logs.find((l) => l.msg === 'stopping'), 5000, 'the stopping line');
  await t.rejects(RawSmtp.open(port), 'no new connections once stopping');
  c.write('second half\r\n.\r\n');
  t.match(await c.reply(), /^250 2\.6\.0 Ok: queued as \w+/, 'the transaction in flight is finished');
  c.close();
  t.equal(await exited, 0, 'exit code 0');
  t.ok(logs.some((l) => l.msg === 'stopped'), 'logs that it stopped');
  const tx = logs.find((l) => l.msg === 'smtp transaction');
  t.match(tx, { result: 'queued', from: 'ann@sender.test', rcpts: ['alice@example.test'], client: '127.0.0.1' }, 'one JSON line per transaction');
  t.ok(typeof tx?.qid === 'string' && typeof tx.size === 'number');

  // Accepted during shutdown and not yet delivered, or delivered: either way not lost.
  const store = Store.open(join(dir, 'mailbag.db'));
  const qid = String(tx!.qid);
  const state = store.queue.recipients(qid)[0]?.state;
  store.close();
  const files = maildirFiles(join(dir, 'mailboxes'), 'example.test', 'alice');
  t.ok(state === 'delivered' ? files.length === 1 : state === 'queued' && files.length === 0, `recipient ${state}, ${files.length} file(s)`);
});

t.test('start with a bad config exits 1 with one line', async (t) => {
  const { dir, cleanup } = tempDir('start-bad');
  t.teardown(cleanup);
  const file = writeTestConfig(dir, { routes: [{ domain: 'x.test', nexthop: 'ftp://peer:21' }] });
  const child = spawn(process.execPath, ['--import=tsx', MAIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 1);
  t.match(stderr, /^mailbag start: invalid config .*routes\.0\.nexthop: must be smtp:\/\/host:port, lmtp:\/\/host:port/);
  t.equal(stderr.trim().split('\n').length, 1);
});

t.test('start on a busy SMTP port: exit 1 and one line in all, naming the listener', async (t) => {
  const { dir, cleanup } = tempDir('start-busy');
  t.teardown(cleanup);
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as { port: number }).port;
  // info level: any warning or error line the start-up logs on the way out shows here
  const file = writeTestConfig(dir, { smtp: { listen: { host: '127.0.0.1', port } }, log: { level: 'info' } });
  const child = spawn(process.execPath, ['--import=tsx', MAIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 1);
  t.match(stderr, new RegExp(`^mailbag start: cannot listen: smtp listener 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  t.same([...stdout.split('\n'), ...stderr.split('\n')].filter(Boolean).length, 1, `one line (stdout: ${stdout})`);
});
