// An LMTP next hop answers the end of DATA once per recipient (RFC 2033 4.2). When it
// drops the connection after some of those replies, a recipient that got its 250 has
// been delivered: recording it as deferred would deliver it a second time.
import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { SmtpTransport } from '../src/delivery/transports/smtp.js';
import type { NextHop } from '../src/config/schema.js';
import { isHopBusy } from '../src/delivery/transports/transport.js';
import { memoryRequest } from './helpers/next-hop.js';

/** LMTP server: after the data, `replies` (one per recipient, in order), then it hangs up. */
async function droppingLmtp(replies: string[]): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.write('220 lmtp.test LMTP\r\n');
    let buf = '';
    let inData = false;
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end === -1) return;
          buf = buf.slice(end + 5);
          inData = false;
          s.end(replies.map((r) => `${r}\r\n`).join(''));
          return;
        }
        const nl = buf.indexOf('\r\n');
        if (nl === -1) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (/^LHLO/i.test(line)) s.write('250-lmtp.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n');
        else if (/^(MAIL|RCPT)/i.test(line)) s.write('250 2.1.0 ok\r\n');
        else if (/^DATA/i.test(line)) {
          s.write('354 go ahead\r\n');
          inData = true;
          buf = `\r\n${buf}`; // so a message of no lines still ends at CRLF.CRLF
        } else s.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

t.test('recipients an LMTP hop accepted before it hung up stay delivered', async (t) => {
  const lmtp = await droppingLmtp(['250 2.0.0 <a@remote.test> delivered', '550 5.1.1 <b@remote.test> no such user']);
  const transport = new SmtpTransport('lmtp', { hostname: 'mx.test.invalid', timeoutMs: 60_000 });
  t.teardown(async () => {
    await transport.close();
    await lmtp.close();
  });
  const hop: NextHop = { kind: 'lmtp', url: `lmtp://127.0.0.1:${lmtp.port}`, host: '127.0.0.1', port: lmtp.port, tls: 'none', tlsVerify: false };
  const r = await transport.deliver(hop, memoryRequest(['a@remote.test', 'b@remote.test', 'c@remote.test'], Buffer.from('Subject: x\r\n\r\nbody\r\n')));
  if (isHopBusy(r)) throw new Error('the next hop was not tried');
  const by = new Map(r.recipients.map((x) => [x.rcpt, x]));
  t.equal(by.get('a@remote.test')?.outcome, 'delivered', 'the 250 the hop gave a@ stands');
  t.match(by.get('a@remote.test')?.reply, /^250 2\.0\.0 <a@remote\.test> delivered/, 'with its own reply');
  t.equal(by.get('b@remote.test')?.outcome, 'failed', 'the 550 the hop gave b@ stands');
  t.equal(by.get('c@remote.test')?.outcome, 'deferred', 'c@, whose reply never came, is deferred');
  t.notMatch(r.reply, /^2/, 'the attempt does not read as delivered');
  t.equal(r.successDsn, 'delivered', 'a success DSN asked for a@ says delivered (the hop offers no DSN)');
});
