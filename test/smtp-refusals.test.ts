// Every refusal the listener sends is logged once, with the reply exactly as the client
// got it, and counted in mailbag_smtp_rejections_total under the code the client got.
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import type { ConfigInput } from '../src/config/schema.js';
import { RawSmtp, tempDir, testConfig, waitFor } from './helpers/gateway.js';

type LogLine = Record<string, unknown> & { msg: string };

async function gateway(t: Test, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Promise<{ gw: Gateway; logs: LogLine[] }> {
  const { dir, cleanup } = tempDir('refusals');
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const gw = await startGateway(testConfig(dir, overrides), { logger: pino({ level: 'info' }, sink) });
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  return { gw, logs };
}

async function session(gw: Gateway): Promise<RawSmtp> {
  const c = await RawSmtp.open(gw.smtpAddress().port);
  await c.reply();
  await c.cmd('EHLO client.test');
  return c;
}

const refusals = (logs: LogLine[]) => logs.filter((l) => l.result === 'rejected');

/** The refusal lines once there are at least `n` of them. */
function refused(logs: LogLine[], n = 1): Promise<LogLine[]> {
  return waitFor(() => {
    const lines = refusals(logs);
    return lines.length >= n ? lines : undefined;
  }, 5000, `${n} refusal line(s)`);
}

/** Value of one sample line `name{labels} value` in Prometheus text. */
async function sample(gw: Gateway, series: string): Promise<number | undefined> {
  const text = await gw.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('452 too many recipients: logged with helo, sender, recipient and the reply as sent', async (t) => {
  const { gw, logs } = await gateway(t, { smtp: { maxRecipients: 1 } });
  const c = await session(gw);
  await c.cmd('MAIL FROM:<ann@sender.test> SIZE=1234');
  t.match(await c.cmd('RCPT TO:<r1@example.test>'), /^250 /);
  const reply = await c.cmd('RCPT TO:<r2@example.test>');
  t.match(reply, /^452 4\.5\.3 /);
  c.close();
  const lines = await refused(logs);
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], {
    msg: 'smtp recipient refused',
    client: '127.0.0.1',
    helo: 'client.test',
    from: 'ann@sender.test',
    rcpt: 'r2@example.test',
    rcpts: ['r1@example.test'],
    size: 1234,
    command: 'RCPT',
    reply,
  });
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="452"}'), 1);
});

t.test('the per-IP 421 is logged with the reply as sent', async (t) => {
  const { gw, logs } = await gateway(t, { smtp: { maxConnectionsPerIp: 1 } });
  const a = await session(gw);
  const b = await RawSmtp.open(gw.smtpAddress().port);
  const reply = await b.reply();
  t.match(reply, /^421 4\.7\.0 Too many connections from 127\.0\.0\.1/);
  a.close();
  b.close();
  const [line] = await refused(logs);
  t.match(line, { msg: 'smtp refused', client: '127.0.0.1', command: 'CONNECT', reply });
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="421"}'), 1);
});

t.test('the 421 of a full server is logged and counted', async (t) => {
  const { gw, logs } = await gateway(t, { smtp: { maxConnections: 1 } });
  const a = await session(gw);
  const b = await RawSmtp.open(gw.smtpAddress().port);
  const reply = await b.reply();
  t.match(reply, /^421 /);
  a.close();
  b.close();
  const [line] = await refused(logs);
  t.match(line, { msg: 'smtp refused', client: '127.0.0.1', command: 'CONNECT', reply });
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="421"}'), 1);
});

t.test('relay denied and an oversize message: one line each, the reply the client got, helo and size', async (t) => {
  const { gw, logs } = await gateway(t, { smtp: { maxMessageBytes: 2000 } });
  const c = await session(gw);
  await c.cmd('MAIL FROM:<ann@sender.test>');
  const denied = await c.cmd('RCPT TO:<someone@elsewhere.test>');
  t.match(denied, /^550 5\.7\.1 /);
  t.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  t.match(await c.cmd('DATA'), /^354 /);
  const body = 'Subject: big\r\n\r\n' + ('y'.repeat(98) + '\r\n').repeat(30);
  const oversize = await c.cmd(body + '.');
  t.match(oversize, /^552 5\.3\.4 /);
  c.close();
  const lines = await refused(logs, 2);
  t.equal(lines.length, 2, 'one line per refusal');
  t.match(lines[0], { msg: 'smtp recipient refused', rcpt: 'someone@elsewhere.test', helo: 'client.test', reply: denied });
  t.match(lines[1], {
    msg: 'smtp transaction',
    result: 'rejected',
    from: 'ann@sender.test',
    rcpts: ['alice@example.test'],
    helo: 'client.test',
    size: Buffer.byteLength(body),
    reply: oversize,
  });
});

t.test('a 451 from a local failure logs the reply as sent and the error behind it', async (t) => {
  const { gw, logs } = await gateway(t);
  gw.store.db.exec("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  const c = await session(gw);
  await c.cmd('MAIL FROM:<ann@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  const reply = await c.cmd('Subject: doomed\r\n\r\nbody\r\n.');
  t.match(reply, /^451 4\.3\.0 /);
  c.close();
  const [line] = await refused(logs);
  t.match(line, { msg: 'smtp transaction', result: 'rejected', helo: 'client.test', reply, err: /disk on fire/ });
});

t.test('a too-long command line is counted as the 500 the client got, not as a 421', async (t) => {
  const { gw, logs } = await gateway(t, { smtp: { maxLineLength: 512 } });
  const c = await session(gw);
  const reply = await c.cmd('MAIL FROM:<' + 'a'.repeat(600) + '@sender.test>');
  t.match(reply, /^500 5\.5\.2 /);
  t.equal(await c.reply(), '', 'and the connection is closed');
  c.close();
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="500"}'), 1);
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="421"}'), undefined, 'no 421 was sent');
  const [line] = await refused(logs);
  t.match(line, { msg: 'smtp refused', reply });
});

t.test('a reply the client can no longer get is neither counted nor logged as sent', async (t) => {
  const { gw, logs } = await gateway(t);
  const c = await session(gw);
  await c.cmd('MAIL FROM:<ann@sender.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  t.match(await c.cmd('DATA'), /^354 /);
  await c.send('Subject: half\r\n\r\n' + 'z'.repeat(50_000));
  c.close();
  const gone = await waitFor(() => logs.find((l) => l.result === 'disconnected'), 5000, 'the disconnected line');
  t.match(gone, { msg: 'smtp transaction', from: 'ann@sender.test', helo: 'client.test' });
  t.same(refusals(logs), [], 'no refusal logged');
  t.equal(await sample(gw, 'mailbag_smtp_rejections_total{code="451"}'), undefined, 'no 451 counted');
});

t.test('the banner says ESMTP once', async (t) => {
  const { gw } = await gateway(t);
  const c = await RawSmtp.open(gw.smtpAddress().port);
  const banner = await c.reply();
  c.close();
  t.match(banner, /^220 mx\.test\.invalid ESMTP /);
  t.equal(banner.split('ESMTP').length - 1, 1, banner);
});
