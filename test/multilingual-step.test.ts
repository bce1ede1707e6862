import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { multilingualSchema } from '../src/config/multilingual-schema.js';
import type { MessageCopy } from '../src/delivery/queue.js';
import { createMultilingualStep } from '../src/delivery/rewrite/multilingual-step.js';
import type { MessageRow } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-ml-step-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const store = Store.open(join(dir, 'store.db'));
t.teardown(() => store.close());
const logger = pino({ level: 'silent' });
const example = readFileSync(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url));

function original(bytes: Buffer, recipients: string[]): MessageCopy {
  return { recipients, size: bytes.length, open: () => Readable.from([bytes]) };
}
function row(qid: string, size: number): MessageRow {
  return { qid, received_at: Date.now(), envelope_from: 'nik@example.com', size, spool_path: '/nonexistent', client_address: null, client_hostname: null, helo: null, auth_user: null, state: 'queued', finished_at: null } as MessageRow;
}
async function read(copy: MessageCopy): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of copy.open() as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('latin1');
}
const noDns = async (name: string) => {
  throw Object.assign(new Error(`no DNS in tests (${name})`), { code: 'ENOTFOUND' });
};

t.test('stored preferences, domain and global defaults decide the copies; decisions are recorded', async (t) => {
  store.users.set('ana@example.test', 'es-mx, en;q=0.5');
  const config = multilingualSchema.parse({ mode: 'select', defaultLanguages: 'en', domains: { 'de.example.test': { defaultLanguages: 'de' }, 'off.example.test': { mode: 'off' } } });
  const step = createMultilingualStep(config, { store, logger, hostname: 'gw.example.test', resolver: noDns });
  const rcpts = ['Ana@Example.test', 'bob@example.test', 'carl@de.example.test', 'dora@off.example.test'];
  const copies = await step(row('0AAAAAAAAA001', example.length), rcpts, original(example, rcpts));
  t.same(
    copies.map((c) => c.recipients),
    [['Ana@Example.test'], ['bob@example.test'], ['carl@de.example.test'], ['dora@off.example.test']],
    'es part, en part, zxx part (de has no part), and the original for mode off',
  );
  const [es, en, zxx, off] = await Promise.all(copies.map(read));
  t.match(es, /^Authentication-Results: gw\.example\.test;\r\n dkim=none/);
  t.match(es, /Subject: =\?UTF-8\?Q\?Ejemplo/);
  t.match(en, /Content-Language: en\r\n/);
  t.match(zxx, /Content-Language: zxx\r\n/);
  t.equal(off, example.toString('latin1'), 'mode off: the original bytes');
  t.equal(copies[0]!.size, Buffer.byteLength(es!, 'latin1'));
  const choices = store.multilingual.choices('0AAAAAAAAA001');
  t.same(
    choices.map((c) => [c.rcpt, c.part_index, c.rule, c.preferences]),
    [
      ['Ana@Example.test', 2, 'lookup', 'es-mx, en;q=0.5'],
      ['bob@example.test', 1, 'exact', 'en'],
      ['carl@de.example.test', 3, 'independent', 'de'],
    ],
  );
});

t.test('not multilingual, or a structure that is not rewritten: the original, reason recorded', async (t) => {
  const config = multilingualSchema.parse({ mode: 'select', defaultLanguages: 'en' });
  const step = createMultilingualStep(config, { store, logger, hostname: 'gw.example.test', resolver: noDns });
  const plain = Buffer.from('From: a@example.test\r\nSubject: x\r\n\r\nhi\r\n');
  const o = original(plain, ['x@example.test']);
  t.same(await step(row('0AAAAAAAAA002', plain.length), ['x@example.test'], o), [o], 'plain mail: untouched, nothing recorded');
  t.same(store.multilingual.choices('0AAAAAAAAA002'), []);

  const broken = Buffer.from(example.toString('latin1').replace('Content-Type: message/rfc822\r\nContent-Language: en', 'Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\nContent-Language: en'), 'latin1');
  const copies = await step(row('0AAAAAAAAA003', broken.length), ['x@example.test'], original(broken, ['x@example.test']));
  t.equal(copies.length, 1);
  t.equal(await read(copies[0]!), broken.toString('latin1'));
  t.match(store.multilingual.choices('0AAAAAAAAA003'), [{ rule: 'unchanged', why: /transfer-encoded/ }]);

  const small = createMultilingualStep(multilingualSchema.parse({ mode: 'select', maxMessageBytes: 100 }), { store, logger, hostname: 'gw', resolver: noDns });
  const big = await small(row('0AAAAAAAAA004', example.length), ['x@example.test'], original(example, ['x@example.test']));
  t.equal(await read(big[0]!), example.toString('latin1'));
  t.match(store.multilingual.choices('0AAAAAAAAA004'), [{ why: /maxMessageBytes/ }]);
});

t.test('an inner From naming another sender is reported and never delivered', async (t) => {
  const spoof = Buffer.from(example.toString('latin1').replace('Subject: =?UTF-8?Q?Ejemplo', 'From: Bank <security@bank.example>\r\nSubject: =?UTF-8?Q?Ejemplo'), 'latin1');
  const seen: string[] = [];
  const step = createMultilingualStep(multilingualSchema.parse({ mode: 'select', verifyDkim: false }), { store, logger, hostname: 'gw', resolver: noDns, onFromMismatch: (qid) => seen.push(qid) });
  const copies = await step(row('0AAAAAAAAA005', spoof.length), ['x@example.test'], original(spoof, ['x@example.test']));
  t.notMatch(await read(copies[0]!), /bank\.example/);
  t.same(seen, []);
  store.users.set('y@example.test', 'es');
  const es = await step(row('0AAAAAAAAA006', spoof.length), ['y@example.test'], original(spoof, ['y@example.test']));
  t.notMatch(await read(es[0]!), /bank\.example/, 'the Spanish part chosen, its From dropped');
  t.same(seen, ['0AAAAAAAAA006'], 'counted once');
  t.match(store.multilingual.choices('0AAAAAAAAA006'), [{ from_mismatch: 1 }]);
});

t.test('config: bad language lists and modes are refused with the key named', async (t) => {
  t.throws(() => multilingualSchema.parse({ defaultLanguages: 'en;q=9' }));
  t.throws(() => multilingualSchema.parse({ mode: 'translate' }));
  t.throws(() => multilingualSchema.parse({ domains: { 'bad domain': { mode: 'off' } } }));
  t.same(multilingualSchema.parse({}).translationPreference, ['original', 'human', 'automated']);
});
