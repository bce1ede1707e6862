// Text that mail and the upstream filter chose (a Message-ID, a reply, a rule name, a
// disposition) printed by `trace` and `report` for a terminal: a control character in it must
// not reach the operator's terminal as a control sequence (an OSC that retitles or writes to
// the clipboard, a screen clear, a line break that forges a timeline entry).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import type { CliIO } from '../src/cli/command.js';
import { runCli } from '../src/cli/main.js';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { batch, maillogPair, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-hostile-text-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-30T09:12:00Z');
const QID = '0MBQ7ZK2T4H1A';
const OSC = '\x1b]52;c;cm0gLXJmIH4=\x07';
const CLEAR = '\x1b[2J';
// C0 and C1 controls other than the line feed that ends each line
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const db = join(dir, 's.db');
const cfg = join(dir, 'c.yaml');
writeFileSync(cfg, `store: { path: ${JSON.stringify(db)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);
{
  const store = Store.open(db);
  const header = `Received: from mx.upstream.test by mx.upstream.test (8.18.1/8.18.1) with ESMTPS id 4AUGx1Zq012345; Mon, 30 Nov 2026 09:11:59 +0000\r\nMessage-ID: <evil${OSC}@sender.test>\r\nSubject: x\r\n\r\n`;
  store.queue.insertMessage({ qid: QID, receivedAt: T0, envelopeFrom: 'alice@sender.test', size: 900, spoolPath: `/nonexistent/${QID}`, spoolOffset: 0, sha256: '0'.repeat(64), clientAddress: '198.51.100.2', recipients: ['bob@example.test'] });
  store.correlation.recordMessageKeys({ qid: QID, receivedAt: T0, keys: extractCorrelationKeys(header), envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: '198.51.100.2', size: 900 });
  store.pod.storeBatch(
    batch([
      messageEvent({ guid: 'vRq4ZIFWHXbuABCDEFghij0U4VvIc71x', qid: '4AUGx1Zq012345', at: T0 - 2000, disposition: `quarantine${CLEAR}`, finalAction: 'quarantine', finalRule: `rule\n  09:12:00.000  mailbag  forged${OSC}`, quarantine: { folder: `Spam${CLEAR}`, rule: 'spam' } }),
      ...maillogPair({ idPrefix: 'm', qid: '4AUGx1Zq012345', at: T0 - 1000, stat: `Sent (2.0.0 Ok${OSC}: queued as ${QID})` }),
    ]),
    { source: 'test' },
  );
  store.close();
}

t.test('trace: no control character from mail or events reaches the terminal, in plain text or colour', async (t) => {
  const plain = await cli(['trace', QID, '--config', cfg]);
  t.equal(plain.code, 0, plain.stderr);
  const text = plain.stdout.toString();
  t.notMatch(text, CONTROL, 'plain text holds no control character');
  t.match(text, 'evil\\x1b]52;c;cm0gLXJmIH4=\\x07@sender.test', 'the Message-ID is shown, its controls escaped');
  t.match(text.replace(/\n {16,18}/g, ' '), 'rule\\n 09:12:00.000 mailbag forged', 'a line break in a rule name stays on its line');
  t.notMatch(text, /^ {2}09:12:00\.000 {2}mailbag {2}forged/m, 'no forged timeline entry');

  const stdout = Object.assign(new PassThrough(), { isTTY: true });
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const io: CliIO = { stdin: Readable.from([]), stdout, stderr: new PassThrough(), env: {} };
  t.equal(await runCli(['trace', QID, '--config', cfg], io), 0);
  const coloured = Buffer.concat(chunks).toString();
  t.match(coloured, /\x1b\[3\dm/, 'colour is on');
  t.notMatch(coloured.replace(/\x1b\[\d+m/g, ''), CONTROL, 'nothing but its own colour sequences');

  const json = await cli(['trace', QID, '--json', '--config', cfg]);
  t.match(JSON.parse(json.stdout.toString()).matches[0].timeline.map((e: { title: string }) => e.title).join('\n'), `quarantine${CLEAR}`, '--json keeps the values as they are');
});

t.test('report table: no control character from events reaches the terminal', async (t) => {
  const r = await cli(['report', '--since', '2026-11-30', '--until', '2026-12-01', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  const text = r.stdout.toString();
  t.notMatch(text, CONTROL);
  t.match(text, 'quarantine\\x1b[2J', 'the disposition is shown, escaped');
  t.match(text, 'rule\\n  09:12:00.000  mailbag  forged\\x1b]52', 'the rule is shown, escaped');
});
