import { readFileSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { parseLanguagePreferences } from '../src/mime/language-range.js';
import {
  analyseMultilingual,
  isRewritable,
  rewriteReorder,
  rewriteSelect,
  selectLanguagePart,
  type MultilingualMessage,
} from '../src/mime/multilingual.js';
import { parseMimeTree, serializeMimeTree } from '../src/mime/tree.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/multilingual/${name}`, import.meta.url));

function analysed(bytes: Buffer): MultilingualMessage {
  const a = analyseMultilingual(parseMimeTree(bytes));
  if (!isRewritable(a)) throw new Error(`not rewritable: ${a.reason}`);
  return a;
}

function choose(m: MultilingualMessage, prefs: string | undefined) {
  return selectLanguagePart(m, prefs === undefined ? [] : parseLanguagePreferences(prefs));
}

// Expected part index (0 is the preface) and rule per preference, for each RFC 8255 example.
const expectations: Record<string, Record<string, [number, string]>> = {
  '8.1': { en: [1, 'filter'], 'en-US': [1, 'lookup'], es: [2, 'exact'], 'es-MX': [2, 'lookup'], fr: [1, 'default'], none: [1, 'default'], '*': [1, 'wildcard'] },
  '8.2': { en: [1, 'exact'], 'en-US': [1, 'lookup'], es: [2, 'filter'], 'es-MX': [2, 'lookup'], fr: [3, 'independent'], none: [3, 'independent'], '*': [1, 'wildcard'] },
  '8.3': { en: [1, 'exact'], 'en-US': [1, 'lookup'], es: [2, 'exact'], 'es-MX': [2, 'lookup'], fr: [3, 'independent'], none: [3, 'independent'], '*': [1, 'wildcard'] },
};

for (const form of ['rfc8255', 'draft'] as const) {
  for (const [example, cases] of Object.entries(expectations)) {
    t.test(`${form} example ${example}: the part each preference selects`, async (t) => {
      const m = analysed(fixture(`${form}-${example}.eml`));
      t.same(
        m.languageParts.map((p) => p.translationType),
        ['original', 'human'],
        form === 'draft' ? 'translation-type parameter of Content-Language' : 'Content-Translation-Type field',
      );
      for (const [pref, [index, rule]] of Object.entries(cases)) {
        const s = choose(m, pref === 'none' ? undefined : pref);
        t.equal(s.part.index, index, `${pref}: part ${index}`);
        t.equal(s.rule, rule, `${pref}: by ${rule} (${s.why})`);
      }
    });
  }
}

function multilingual(parts: { lang: string; type?: string; subject: string; from?: string; body: string }[], opts: { zxx?: boolean } = {}): Buffer {
  const lines = [
    'From: Sender <sender@example.test>',
    'To: rcpt@example.test',
    'Subject: top-level subject',
    'Message-ID: <m1@example.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/multilingual; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'This message is in several languages.',
  ];
  for (const p of parts) {
    lines.push('--b1', 'Content-Type: message/rfc822', `Content-Language: ${p.lang}`);
    if (p.type) lines.push(`Content-Translation-Type: ${p.type}`);
    lines.push('');
    if (p.from) lines.push(`From: ${p.from}`);
    lines.push(`Subject: ${p.subject}`, 'Content-Type: text/plain; charset=utf-8', '', p.body);
  }
  if (opts.zxx) lines.push('--b1', 'Content-Type: message/rfc822', 'Content-Language: zxx', '', 'Content-Type: text/plain', '', ':-)');
  lines.push('--b1--', '');
  return Buffer.from(lines.join('\r\n'));
}

t.test('ties: a tag equal to the range, then the translation type, then document order', async (t) => {
  const m = analysed(
    multilingual([
      { lang: 'en-GB', type: 'original', subject: 'gb', body: 'gb' },
      { lang: 'en', type: 'automated', subject: 'en-auto', body: 'x' },
      { lang: 'en', type: 'human', subject: 'en-human', body: 'y' },
    ]),
  );
  t.equal(choose(m, 'en').part.index, 3, 'exact tag beats an earlier prefix match; human beats automated');
  t.equal(selectLanguagePart(m, parseLanguagePreferences('en'), { translationPreference: ['automated', 'human', 'original'] }).part.index, 2, 'configured translation preference');
  t.equal(choose(m, 'en-GB').part.index, 1);
  t.equal(choose(m, 'en-US').part.index, 3, 'lookup falls back to "en": the parts tagged exactly "en" win over en-GB, human before automated');
});

t.test('multi-tag parts, q=0 and q-value order', async (t) => {
  const m = analysed(
    multilingual([
      { lang: 'fr', subject: 'fr', body: 'fr' },
      { lang: 'es-MX, pt', subject: 'es', body: 'es' },
      { lang: 'de', subject: 'de', body: 'de' },
    ]),
  );
  t.equal(choose(m, 'pt').part.index, 2, 'the second tag of a part matches');
  t.equal(choose(m, 'it, fr;q=0').part.index, 2, 'q=0: fr is never chosen, even as the default');
  t.equal(choose(m, 'de;q=0.2, es;q=0.9').part.index, 2, 'higher q first whatever the written order');
  t.equal(choose(m, 'en-GB, *').part.index, 1, 'wildcard after an unmatched range');
  t.equal(choose(m, 'fr;q=0, *').part.index, 2, 'wildcard skips refused parts');
});

t.test('select: top-level header kept, Subject and body from the chosen part, parses with mailparser', async (t) => {
  const original = fixture('rfc8255-8.1.eml');
  const m = analysed(original);
  const out = rewriteSelect(m, choose(m, 'es').part);
  const text = out.toString('latin1');
  t.match(text, /^From: Nik@example\.com\r\nTo: Nathaniel@example\.com\r\nSubject: =\?UTF-8\?Q\?Ejemplo/);
  t.match(text, /Date: Thu, 7 Apr 2017 21:28:00 \+0100\r\nMIME-Version: 1\.0\r\n/);
  t.notMatch(text, /multipart\/multilingual/);
  t.match(text, /Content-Language: es\r\nContent-Translation-Type: human\r\n\r\nHola,/);
  const parsed = await simpleParser(out);
  t.equal(parsed.subject, 'Ejemplo práctico de mensaje en español e inglés');
  t.equal(parsed.text?.trim(), 'Hola, el contenido de este mensaje esta disponible en su idioma.');
  t.equal(parsed.headers.get('content-language'), 'es');
  t.equal(parsed.from?.value[0]?.address, 'Nik@example.com');

  const en = rewriteSelect(m, choose(m, 'en').part);
  const parsedEn = await simpleParser(en);
  t.equal(parsedEn.subject, 'Example of a message in Spanish and English');
  t.equal(parsedEn.text?.trim(), 'Hello, this message content is provided in your language.');
});

t.test('select keeps a nested multipart/alternative whole (example 8.3)', async (t) => {
  const m = analysed(fixture('rfc8255-8.3.eml'));
  const parsed = await simpleParser(rewriteSelect(m, choose(m, 'es').part));
  t.equal(parsed.text?.trim(), 'Hola, el contenido de este mensaje esta disponible en su idioma.');
  t.match(parsed.html, /<b>mensaje<\/b>/);
});

t.test('select: the top-level Subject when the part has none', async (t) => {
  const bytes = Buffer.from(
    multilingual([{ lang: 'en', subject: 'x', body: 'hi' }])
      .toString('latin1')
      .replace('Subject: x\r\n', ''),
    'latin1',
  );
  const m = analysed(bytes);
  t.match(rewriteSelect(m, m.languageParts[0]!).toString(), /^Subject: top-level subject\r\n/m);
});

t.test('reorder: the chosen part moves first after the preface, nothing else changes', async (t) => {
  const original = fixture('rfc8255-8.2.eml');
  const m = analysed(original);
  const out = rewriteReorder(m, choose(m, 'es').part);
  t.equal(out.length, original.length, 'same bytes, other order');
  const tree = parseMimeTree(out);
  const re = analyseMultilingual(tree);
  if (!isRewritable(re)) throw new Error('reordered message is not multilingual');
  t.same(
    re.languageParts.map((p) => p.tags[0]),
    ['es-ES', 'en'],
  );
  t.equal(re.independent?.tags[0], 'zxx', 'the zxx part stays last');
  t.same(rewriteReorder(m, m.languageParts[0]!), original, 'choosing the first part changes nothing');
});

t.test('an inner From naming another sender is never delivered (RFC 8255 section 10)', async (t) => {
  const m = analysed(
    multilingual([
      { lang: 'en', subject: 'en', body: 'en', from: 'Sender <sender@example.test>' },
      { lang: 'es', subject: 'es', body: 'es', from: 'Bank <security@bank.example>' },
    ]),
  );
  t.same(
    m.languageParts.map((p) => p.fromMismatch),
    [false, true],
  );
  const part = choose(m, 'es').part;
  t.notMatch(rewriteSelect(m, part).toString(), /bank\.example/, 'select: top-level From only');
  const reordered = rewriteReorder(m, part).toString();
  t.notMatch(reordered, /bank\.example/, 'reorder: the inner From is replaced by the top-level one');
  t.equal(reordered.match(/From: Sender <sender@example\.test>/g)?.length, 3);
});

t.test('structures that are delivered unchanged, each with its reason', async (t) => {
  const base = multilingual([{ lang: 'en', subject: 'en', body: 'en' }]).toString('latin1');
  const cases: [string, string, RegExp][] = [
    ['plain message', 'From: a@example.test\r\nSubject: x\r\n\r\nhello\r\n', /not multipart\/multilingual/],
    ['no preface', base.replace('Content-Type: text/plain; charset=utf-8\r\n\r\nThis message', 'Content-Type: text/plain; charset=utf-8\r\nContent-Language: en\r\n\r\nThis message'), /no multilingual preface/],
    ['no language parts', base.replace(/--b1\r\nContent-Type: message\/rfc822[\s\S]*?(?=--b1--)/, ''), /no language message parts/],
    ['not message/rfc822', base.replace('Content-Type: message/rfc822', 'Content-Type: text/plain'), /is text\/plain, not message\/rfc822/],
    ['base64-wrapped', base.replace('Content-Type: message/rfc822\r\n', 'Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n'), /transfer-encoded/],
    ['missing Content-Language', base.replace('Content-Language: en\r\n', ''), /has no Content-Language/],
    ['8-bit header', base.replace('Subject: en', 'Subject: \u00e9t\u00e9'), /8-bit/],
    ['no boundary', base.replace('; boundary="b1"', ''), /without a usable boundary/],
  ];
  for (const [name, text, reason] of cases) {
    const bytes = Buffer.from(text, name === '8-bit header' ? 'utf8' : 'latin1');
    const tree = parseMimeTree(bytes);
    const a = analyseMultilingual(tree);
    t.notOk(isRewritable(a), `${name}: not rewritten`);
    if (!isRewritable(a)) t.match(a.reason, reason, `${name}: ${a.reason}`);
    t.same(serializeMimeTree(tree), bytes, `${name}: bytes intact`);
  }
  const nested = Buffer.from(
    base.replace('Content-Language: en\r\n\r\nSubject: en\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nen', 'Content-Language: en\r\n\r\nContent-Type: multipart/multilingual; boundary=b2\r\n\r\n--b2\r\n\r\npreface\r\n--b2--'),
    'latin1',
  );
  const a = analyseMultilingual(parseMimeTree(nested));
  t.notOk(isRewritable(a));
  if (!isRewritable(a)) t.match(a.reason, /itself multipart\/multilingual/);
});

t.test('planLanguageCopies: one copy per chosen part, every recipient exactly once', async (t) => {
  const { planLanguageCopies } = await import('../src/mime/multilingual.js');
  const root = parseMimeTree(fixture('rfc8255-8.2.eml'));
  const plan = planLanguageCopies(
    root,
    [
      { rcpt: 'a@example.test', preferences: parseLanguagePreferences('es') },
      { rcpt: 'b@example.test', preferences: parseLanguagePreferences('en-GB') },
      { rcpt: 'c@example.test', preferences: parseLanguagePreferences('es-MX, en') },
      { rcpt: 'd@example.test', preferences: parseLanguagePreferences('de') },
    ],
    { mode: 'select' },
  );
  if (plan.kind !== 'split') throw new Error('expected a split');
  t.same(
    plan.copies.map((c) => [c.part.index, c.recipients.map((r) => r.rcpt)]),
    [
      [2, ['a@example.test', 'c@example.test']],
      [1, ['b@example.test']],
      [3, ['d@example.test']],
    ],
  );
  const plain = planLanguageCopies(parseMimeTree(Buffer.from('Subject: x\r\n\r\ny\r\n')), [{ rcpt: 'a@example.test', preferences: [] }], { mode: 'select' });
  t.same(plain, { kind: 'unchanged', reason: 'not multipart/multilingual', multilingual: false });
});
