// The attempt deadline reaches the SMTP transport: a next hop that stops answering in
// mid-transaction is dropped when the round's signal aborts, not when its socket idles out.
import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { SmtpTransport } from '../src/delivery/transports/smtp.js';
import type { NextHop } from '../src/config/schema.js';
import { isHopBusy } from '../src/delivery/transports/transport.js';

t.test('an aborted signal ends an SMTP attempt held open by the next hop', async (t) => {
  const sockets = new Set<Socket>();
  let sawMail!: () => void;
  const mailSeen = new Promise<void>((r) => (sawMail = r));
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.write('220 hung.test ESMTP\r\n');
    s.on('data', (d: Buffer) => {
      const line = d.toString();
      if (/^EHLO/i.test(line)) s.write('250 hung.test\r\n');
      else if (/^MAIL FROM/i.test(line)) sawMail(); // and never answers
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const transport = new SmtpTransport('smtp', { hostname: 'mx.test.invalid', timeoutMs: 600_000 });
  t.teardown(async () => {
    await transport.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  const deadline = new AbortController();
  const hop: NextHop = { kind: 'smtp', url: `smtp://127.0.0.1:${port}`, host: '127.0.0.1', port, tls: 'none', tlsVerify: false };
  const result = transport.deliver(hop, {
    qid: '0MX2ZL67C0000',
    envelopeFrom: 'ann@sender.test',
    recipients: ['bob@example.test'],
    receivedAt: Date.now(),
    size: 9,
    openMessage: () => Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]),
    intendedName: () => undefined,
    recordIntent: () => undefined,
    signal: deadline.signal,
  });
  await mailSeen;
  deadline.abort();
  const r = await result;
  if (isHopBusy(r)) throw new Error('the next hop was not tried');
  t.same(r.recipients.map((x) => x.outcome), ['deferred'], 'the recipient is deferred once the deadline aborts');
});
