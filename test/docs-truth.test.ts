// Numbers and replies the docs quote must be the ones the program produces.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../src/gateway/gateway.js';
import { RawSmtp, tempDir, testConfig } from './helpers/gateway.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

t.test('the accept reply the docs quote is the one a client gets', async (t) => {
  const { dir, cleanup } = tempDir('docs-reply');
  t.teardown(cleanup);
  const gw = await startGateway(testConfig(dir), { queueThread: false });
  t.teardown(() => gw.stop());
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<ann@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  const reply = await c.cmd('Subject: hi\r\n\r\nhello\r\n.');
  c.close();
  const real = /^(250 \d\.\d\.\d Ok: queued as) [0-9A-Z]+$/.exec(reply);
  t.ok(real, `the reply is "250 x.y.z Ok: queued as QID": ${reply}`);
  const quotes = DOCS.flatMap((file) => [...read(file).matchAll(/\b250 \d\.\d\.\d [^`\n]*queued as/g)].map((m) => ({ file, quote: m[0] })));
  t.ok(quotes.length >= 3, `the docs quote it (${quotes.length} times)`);
  for (const q of quotes) t.equal(q.quote, real![1], `${q.file} quotes the real reply`);
});

t.test('the admin request timeout the docs quote is the one the admin listener sets', async (t) => {
  const source = read('src/gateway/admin-server.ts');
  const ms = (name: string) => {
    const m = new RegExp(`server\\.${name} = ([\\d_]+);`).exec(source);
    return m ? Number(m[1]!.replace(/_/g, '')) : undefined;
  };
  const headers = ms('headersTimeout');
  const request = ms('requestTimeout');
  t.ok(headers !== undefined && headers === request, 'one limit for headers and the whole request');
  // Node enforces both only when it checks, every connectionsCheckingInterval (30 s unless set).
  const interval = ms('connectionsCheckingInterval') ?? /connectionsCheckingInterval:\s*([\d_]+)/.exec(source)?.[1];
  const checkMs = interval === undefined ? 30_000 : Number(String(interval).replace(/_/g, ''));
  const ops = read('docs/operations.md');
  t.match(ops, `not all arrived ${headers! / 1000} s after it`, 'the limit');
  t.match(ops, `every ${checkMs / 1000} s`, 'how often Node checks');
  t.match(ops, `cut off ${headers! / 1000} to ${(headers! + checkMs) / 1000} s after it began`, 'so the real bound');
});
