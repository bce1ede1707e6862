// A Message-ID in UTF-8 (RFC 6532, mail received with SMTPUTF8): recorded as the text it is,
// so it links to the upstream's events carrying it (PoD's JSON holds it as text) and `trace`
// finds the message by it as the operator sees it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { cli } from './helpers/cli.js';
import { storeWithMessage } from './helpers/cli-store.js';
import { batch, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-correlation-utf8-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-30T09:12:00Z');
const QID = '0MBQ7ZK2T4H1A';

t.test('the keys of a UTF-8 header are its text; bytes that are not UTF-8 still give keys', async (t) => {
  const keys = extractCorrelationKeys(Buffer.from('Message-ID: <naïve.Ünïcode@EXÄMPLE.test>\r\nX-Proofpoint-GUID: vRq4ZIFWHXbuABCDEFghij0U4VvIc71x\r\n\r\nbody', 'utf8'));
  t.equal(keys.messageId, 'naïve.Ünïcode@exämple.test');
  t.equal(keys.proofpointGuid, 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x');
  const latin1 = extractCorrelationKeys(Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\r\nMessage-ID: <a@Example.test>\r\n\r\n')]));
  t.equal(latin1.messageId, 'a@example.test', 'a header that is not UTF-8 is still read');
});

t.test('linked by the UTF-8 Message-ID and traced by it', async (t) => {
  const { store, configFile: cfg } = storeWithMessage(dir, 's', { qid: QID, receivedAt: T0 });
  const header = Buffer.from('Message-ID: <naïve@exämple.test>\r\nSubject: x\r\n\r\n', 'utf8');
  store.correlation.recordMessageKeys({ qid: QID, receivedAt: T0, keys: extractCorrelationKeys(header), envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: '198.51.100.2', size: 900 });
  store.pod.storeBatch(batch([messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: '4AUGx1Zq012345', at: T0 - 2000, messageId: '<naïve@EXÄMPLE.test>' })]), { source: 'test' });
  t.same(store.correlation.linksOfQid(QID).map((l) => `${l.upstream_qid}:${l.via}`), ['4AUGx1Zq012345:message-id']);
  store.close();
  const r = await cli(['trace', '<naïve@exämple.test>', '--json', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const m = (JSON.parse(r.stdout.toString()) as { matches: { mailbagQids: string[]; upstreamQids: string[] }[] }).matches;
  t.same(m.map((x) => [x.mailbagQids, x.upstreamQids]), [[[QID], ['4AUGx1Zq012345']]]);
});
