// A client that pipelines past DATA: message content followed by the next commands in
// one write (RFC 2920 allows the content to open a group; a careless client sends the
// whole session blindly). Every command gets its reply, in order, and every message
// reaches the next hop once.
import t from 'tap';
import { startGateway } from '../src/gateway/gateway.js';
import { RawSmtp, startSink, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function replies(c: RawSmtp, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await c.reply(3000).catch(() => 'no reply')).slice(0, 3));
  return out;
}

t.test('pipelined past DATA: every command answered, every message once', async (t) => {
  const { dir, cleanup } = tempDir('pipelining');
  const sink = await startSink();
  const gw = await startGateway(testConfig(dir, { routes: [{ domain: '*', nexthop: `smtp://127.0.0.1:${sink.port}` }] }), { pollMs: 50 });
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const port = gw.smtpAddress().port;
  const tx = (to: string) => `MAIL FROM:<a@sender.test>\r\nRCPT TO:<${to}>\r\nDATA\r\nSubject: ${to}\r\n\r\nhi\r\n.\r\n`;

  // the whole session in one write, never waiting for a 354
  const blind = await RawSmtp.open(port);
  await blind.reply();
  await blind.cmd('EHLO client.test');
  blind.write(`${tx('one@example.test')}${tx('two@example.test')}${tx('three@example.test')}NOOP\r\nQUIT\r\n`);
  t.same(await replies(blind, 11), ['250', '250', '354', '250', '250', '250', '354', '250', '250', '250', '354'], 'three transactions');
  t.same(await replies(blind, 3), ['250', '250', '221'], 'the last message, NOOP and QUIT answered');
  blind.close();

  // RFC 2920: content, the final dot and the next transaction's commands in one group
  const grouped = await RawSmtp.open(port);
  await grouped.reply();
  await grouped.cmd('EHLO client.test');
  await grouped.cmd('MAIL FROM:<a@sender.test>');
  await grouped.cmd('RCPT TO:<four@example.test>');
  await grouped.cmd('DATA');
  grouped.write('Subject: four\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<five@example.test>\r\nDATA\r\n');
  t.same(await replies(grouped, 4), ['250', '250', '250', '354']);
  grouped.write('Subject: five\r\n\r\nhi\r\n.\r\nQUIT\r\n');
  t.same(await replies(grouped, 2), ['250', '221']);
  grouped.close();

  await waitFor(() => sink.messages.length >= 5, 5000, 'five deliveries');
  await gw.stop();
  t.same(sink.messages.map((m) => m.to[0]).sort(), ['five@example.test', 'four@example.test', 'one@example.test', 'three@example.test', 'two@example.test']);
});
