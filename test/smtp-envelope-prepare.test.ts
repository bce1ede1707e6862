import t from 'tap';
import { Readable } from 'node:stream';
import { prepareSend, RelayConnection } from '../src/delivery/transports/smtp-envelope.js';
import type { DeliveryRequest } from '../src/delivery/transports/transport.js';

function conn(extensions: string[]): RelayConnection {
  const c = new RelayConnection({ logger: false });
  (c as unknown as { _supportedExtensions: string[] })._supportedExtensions = extensions;
  return c;
}

function request(bytes: string): DeliveryRequest {
  return {
    qid: 'Q', envelopeFrom: 'a@b.test', recipients: ['c@d.test'], receivedAt: 0, size: Buffer.byteLength(bytes),
    params: { message: { bodyType: '8bitmime' }, recipients: { 'c@d.test': { notify: ['SUCCESS'] } } },
    openMessage: () => Readable.from([Buffer.from(bytes)]),
    intendedName: () => undefined,
    recordIntent: () => undefined,
  };
}

t.test('who reports success: the hop with DSN, else mailbag as relayed (SMTP) or delivered (LMTP)', async (t) => {
  const req = request('Subject: x\r\n\r\nhi\r\n');
  const kinds = [];
  for (const [ext, lmtp] of [[['DSN', '8BITMIME'], false], [['8BITMIME'], false], [['8BITMIME'], true]] as const) {
    const p = await prepareSend(conn([...ext]), req, lmtp, 'hop');
    kinds.push(p.kind === 'send' ? p.successDsn : p.reply);
  }
  t.same(kinds, ['passed-on', 'relayed', 'delivered']);
});

t.test('per-recipient NOTIFY/ORCPT only to a hop with DSN', async (t) => {
  const c = conn(['DSN']);
  c.relay = { smtpUtf8: false, recipients: { 'c@d.test': { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;C+D@x' } } };
  (c as unknown as { _recipientQueue: string[] })._recipientQueue = ['c@d.test'];
  t.equal(c._getDsnRcptToArgs(), ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;C+2BD@x');
  (c as unknown as { _supportedExtensions: string[] })._supportedExtensions = [];
  t.equal(c._getDsnRcptToArgs(), '');
});
