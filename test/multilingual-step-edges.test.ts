// The multilingual rewrite step against real messages and hostile envelopes: every
// corpus message passes untouched, every recipient lands in exactly one copy, and a
// rewritten copy carries only the gateway's own Authentication-Results verdict.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

const dir = mkdtempSync(join(tmpdir(), 'mailbag-ml-edges-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const store = Store.open(join(dir, 'store.db'));
t.teardown(() => store.close());
const logger = pino({ level: 'silent' });
const corpusDir = new URL('./fixtures/mime/', import.meta.url);
const example = readFileSync(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url));
const noDns = async (name: string) => {
  throw Object.assign(new Error(`no DNS in tests (${name})`), { code: 'ENOTFOUND' });
};

function original(bytes: Buffer, recipients: string[]): MessageCopy {
  return { recipients, size: bytes.length, open: () => Readable.from([bytes]) };
}
let seq = 0;
function row(size: number): MessageRow {
  seq++;
  return { qid: `0EDGE${String(seq).padStart(8, '0')}`, received_at: Date.now(), envelope_from: 'nik@example.com', size, spool_path: '/nonexistent', client_address: null, client_hostname: null, helo: null, auth_user: null, state: 'queued', finished_at: null } as MessageRow;
}
async function read(copy: MessageCopy): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of copy.open() as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

t.test('every corpus message (none multilingual) passes the step as the original itself', async (t) => {
  const step = createMultilingualStep(multilingualSchema.parse({ mode: 'select', defaultLanguages: 'en' }), { store, logger, hostname: 'gw.example.test', resolver: noDns });
  const files = readdirSync(corpusDir).filter((f) => /\.(eml|txt)$/.test(f) && !/README/.test(f));
  t.ok(files.length >= 30, `${files.length} corpus messages`);
  for (const f of files) {
    const bytes = readFileSync(new URL(f, corpusDir));
    const o = original(bytes, ['a@example.test', 'b@example.test']);
    const r = row(bytes.length);
    const copies = await step(r, ['a@example.test', 'b@example.test'], o);
    t.equal(copies.length, 1, `${f}: one copy`);
    t.equal(copies[0], o, `${f}: the original itself, its bytes untouched`);
    t.same(store.multilingual.choices(r.qid), [], `${f}: no decision recorded`);
  }
});

t.test('one envelope, many languages and modes: each recipient in exactly one copy, with its own language', async (t) => {
  const config = multilingualSchema.parse({
    mode: 'select',
    defaultLanguages: '',
    domains: { 'ro.example.test': { mode: 'reorder', defaultLanguages: 'es' }, 'off.example.test': { mode: 'off' } },
  });
  const step = createMultilingualStep(config, { store, logger, hostname: 'gw.example.test', resolver: noDns });
  const wants: Record<string, string> = {
    'es1@example.test': 'es',
    'es2@example.test': 'es-MX, es;q=0',
    'es3@example.test': 'es-MX, es;q=0.5',
    'en1@example.test': 'en-GB, en, en;q=0.2',
    'en2@example.test': 'de, en;q=0.5, *;q=0',
    'zxx@example.test': 'fr, *;q=0',
  };
  for (const [rcpt, langs] of Object.entries(wants)) store.users.set(rcpt, langs);
  const rcpts = [...Object.keys(wants), 'none@example.test', 'x@ro.example.test', 'y@ro.example.test', 'z@off.example.test'];
  const copies = await step(row(example.length), [...rcpts], original(example, rcpts));
  const all = copies.flatMap((c) => c.recipients);
  t.same([...all].sort(), [...rcpts].sort(), 'every recipient once, none added');
  const langOf = async (rcpt: string) => {
    const copy = copies.find((c) => c.recipients.includes(rcpt))!;
    const text = (await read(copy)).toString('latin1');
    if (text === example.toString('latin1')) return 'original';
    const reorder = /multipart\/multilingual/.test(text);
    const lang = reorder ? /--01189998819991197253\r\nContent-Type: message\/rfc822(?:; name="Icon")?\r\nContent-Language: ([\w-]+)/.exec(text)?.[1] : /^Content-Language: ([\w-]+)\r\n/m.exec(text)?.[1];
    return `${reorder ? 'reorder' : 'select'} ${lang}`;
  };
  t.same(
    Object.fromEntries(await Promise.all(rcpts.map(async (r) => [r, await langOf(r)]))),
    {
      'es1@example.test': 'select es-ES',
      'es2@example.test': 'select zxx', // the part is es-ES: refused by "es;q=0"
      'es3@example.test': 'select es-ES',
      'en1@example.test': 'select en',
      'en2@example.test': 'select en',
      'zxx@example.test': 'select zxx',
      'none@example.test': 'select zxx',
      'x@ro.example.test': 'reorder es-ES',
      'y@ro.example.test': 'reorder es-ES',
      'z@off.example.test': 'original',
    },
  );
  t.equal(new Set(copies.map((c) => c.open)).size, copies.length, 'recipients choosing the same part share one copy');
  t.equal(copies.length, 5, 'es, en, zxx, reorder es, original');
});

t.test('a rewritten copy carries no Authentication-Results in the gateway\'s name but its own (RFC 8601 section 5)', async (t) => {
  const forged = Buffer.concat([
    Buffer.from('Authentication-Results: GW.example.test;\r\n dkim=pass header.d=bank.example\r\nAuthentication-Results: (forged) gw.example.test 1; dmarc=pass\r\nAuthentication-Results: mx.upstream.example; spf=pass\r\n'),
    example,
  ]);
  const step = createMultilingualStep(multilingualSchema.parse({ mode: 'select', defaultLanguages: 'es' }), { store, logger, hostname: 'gw.example.test', resolver: noDns });
  for (const mode of ['select', 'reorder'] as const) {
    const s = mode === 'select' ? step : createMultilingualStep(multilingualSchema.parse({ mode, defaultLanguages: 'es' }), { store, logger, hostname: 'gw.example.test', resolver: noDns });
    const [copy] = await s(row(forged.length), ['r@example.test'], original(forged, ['r@example.test']));
    const text = (await read(copy!)).toString('latin1');
    const results = text.slice(0, text.indexOf('\r\n\r\n')).split(/\r\n(?![ \t])/).filter((l) => /^authentication-results:/i.test(l));
    t.equal(results.length, 2, `${mode}: ours and the upstream one`);
    t.match(results[0], /^Authentication-Results: gw\.example\.test;\r\n dkim=none/, `${mode}: ours first, with the real verdict`);
    t.match(results[1], /mx\.upstream\.example; spf=pass/, `${mode}: another host's verdict stays`);
    t.notMatch(text, /dkim=pass|dmarc=pass/, `${mode}: the forged verdicts are gone`);
  }
});

t.test('a chain that already has 50 ARC sets is not extended to an invalid i=51 (RFC 8617 4.2.1)', async (t) => {
  const { arcSealCopy } = await import('../src/delivery/rewrite/authentication.js');
  const { generateKeyPairSync } = await import('node:crypto');
  const privateKey = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const key = { signingDomain: 'gw.example.test', selector: 'arc', privateKey };
  const received = (nextInstance: number) => ({ field: Buffer.alloc(0), authResults: 'gw.example.test; dkim=none', cv: 'pass', nextInstance, dkim: [] });
  const copy = Buffer.from('From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n');
  t.match((await arcSealCopy(copy, key, received(50))).toString(), /^ARC-Seal: i=50;/, 'the 50th set is sealed');
  t.equal((await arcSealCopy(copy, key, received(51))).length, 0, 'no 51st');
});
