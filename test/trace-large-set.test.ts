// A connected set larger than trace prints (a Message-ID every message of a mailer reuses,
// linked by the fallback to one upstream message): trace says it cut the set, in the text and
// in --json, instead of leaving messages out silently.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { batch, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-trace-large-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-30T09:12:00Z');
const COUNT = 600;

t.test('a set past the limit is marked cut', async (t) => {
  const db = join(dir, 's.db');
  const cfg = join(dir, 'c.yaml');
  writeFileSync(cfg, `store: { path: ${JSON.stringify(db)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);
  const store = Store.open(db);
  const header = 'Message-ID: <same@mailer.test>\r\n\r\n';
  {
    for (let i = 0; i < COUNT; i++) {
      const qid = `0MBQ${String(i).padStart(9, '0')}`;
      store.queue.insertMessage({ qid, receivedAt: T0 + i, envelopeFrom: 'a@mailer.test', size: 10, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['b@example.test'] });
      store.correlation.recordMessageKeys({ qid, receivedAt: T0 + i, keys: extractCorrelationKeys(header), envelopeFrom: 'a@mailer.test', rcpts: ['b@example.test'], clientAddress: null, size: 10 }, T0);
    }
  }
  store.pod.storeBatch(batch([messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: '4AUGx1Zq012345', at: T0, messageId: '<same@mailer.test>' })]), { source: 'test' });
  t.equal(store.correlation.linksOfUpstream('4AUGx1Zq012345').length, COUNT, 'the fallback linked every message');
  store.close();

  const json = await cli(['trace', '4AUGx1Zq012345', '--json', '--config', cfg]);
  t.equal(json.code, 0, json.stderr);
  const m = (JSON.parse(json.stdout.toString()) as { matches: { mailbagQids: string[]; truncated?: boolean }[] }).matches;
  t.equal(m.length, 1);
  t.ok(m[0]!.mailbagQids.length < COUNT, 'the set is cut');
  t.equal(m[0]!.truncated, true, '--json says so');

  const text = await cli(['trace', '4AUGx1Zq012345', '--config', cfg]);
  t.match(text.stdout.toString().replace(/\n {10}/g, ' '), /^cut +only the first \d+ messages and upstream queue ids of this set are shown/m, 'the text says so');

  const small = await cli(['trace', '0MBQ000000000', '--by', 'qid', '--json', '--config', cfg]);
  t.equal((JSON.parse(small.stdout.toString()) as { matches: { truncated?: boolean }[] }).matches[0]!.truncated, true, 'from any message of the set');
});
