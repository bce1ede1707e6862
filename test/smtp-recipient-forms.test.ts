// Recipients that name one mailbox in different spellings (case, punycode vs UTF-8 domain,
// the postmaster rule) are one recipient: the next hop gets the mailbox once.
import t from 'tap';
import { startGateway } from '../src/gateway/gateway.js';
import { RawSmtp, startSink, tempDir, testConfig, waitFor } from './helpers/gateway.js';

async function transaction(port: number, mailFrom: string, rcpts: string[], body = 'Subject: x\r\n\r\nhi\r\n'): Promise<{ rcptReplies: string[]; final: string }> {
  const c = await RawSmtp.open(port);
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd(mailFrom);
  const rcptReplies: string[] = [];
  for (const r of rcpts) rcptReplies.push(await c.cmd(r));
  await c.cmd('DATA');
  c.write(`${body}.\r\n`);
  const final = await c.reply();
  await c.cmd('QUIT');
  c.close();
  return { rcptReplies, final };
}

t.test('one mailbox written several ways is delivered once', async (t) => {
  const { dir, cleanup } = tempDir('rcpt-forms');
  const sink = await startSink();
  const hop = `smtp://127.0.0.1:${sink.port}`;
  const gw = await startGateway(
    testConfig(dir, { smtp: { localDomains: ['example.test', 'bücher.example'] }, routes: [{ domain: '*', nexthop: hop }] }),
    { pollMs: 50 },
  );
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  const port = gw.smtpAddress().port;
  const cases: { name: string; mail: string; rcpts: string[]; want: number }[] = [
    { name: 'punycode, upper-case punycode', mail: 'MAIL FROM:<a@sender.test>', rcpts: ['RCPT TO:<bob@xn--bcher-kva.example>', 'RCPT TO:<bob@XN--BCHER-KVA.example>'], want: 1 },
    { name: 'UTF-8, upper-case punycode', mail: 'MAIL FROM:<a@sender.test> SMTPUTF8', rcpts: ['RCPT TO:<bob@bücher.example>', 'RCPT TO:<bob@XN--BCHER-KVA.EXAMPLE>'], want: 1 },
    { name: 'postmaster twice', mail: 'MAIL FROM:<a@sender.test>', rcpts: ['RCPT TO:<postmaster>', 'RCPT TO:<postmaster>'], want: 1 },
    { name: 'postmaster, Postmaster@domain', mail: 'MAIL FROM:<a@sender.test>', rcpts: ['RCPT TO:<postmaster>', 'RCPT TO:<Postmaster@Example.Test>'], want: 1 },
  ];
  for (const c of cases) {
    const before = sink.messages.length;
    const r = await transaction(port, c.mail, c.rcpts);
    t.match(r.final, /^250 /, `${c.name}: accepted (${r.rcptReplies.join(' | ')})`);
    await waitFor(() => sink.messages.length > before, 5000, c.name);
    await waitFor(() => gw.store.queue.list().every((m) => m.pending === 0), 5000, `${c.name} finished`);
    const got = sink.messages.slice(before).flatMap((m) => m.to);
    t.equal(got.length, c.want, `${c.name}: the next hop got ${JSON.stringify(got)}`);
    // the sink (smtp-server) folds case itself: the store says what mailbag really sent
    const qid = /queued as (\S+)/.exec(r.final)![1]!;
    const rows = gw.store.db.prepare('SELECT rcpt FROM recipients WHERE qid = ?').all(qid) as { rcpt: string }[];
    t.equal(rows.length, c.want, `${c.name}: recipients stored ${JSON.stringify(rows.map((x) => x.rcpt))}`);
  }
});
