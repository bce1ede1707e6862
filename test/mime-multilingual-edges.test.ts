// Edge cases of multipart/multilingual selection and rewriting found by trying to break
// them: RFC 2616 section 14.4 q-value semantics (which RFC 3282 defers to), header-only
// language parts, From checks that read the address, not the display name.
import { simpleParser } from 'mailparser';
import t from 'tap';
import { parseLanguagePreferences } from '../src/mime/language-range.js';
import { analyseMultilingual, isRewritable, rewriteReorder, rewriteSelect, selectLanguagePart, type MultilingualMessage } from '../src/mime/multilingual.js';
import { parseMimeTree } from '../src/mime/tree.js';

function analysed(text: string): MultilingualMessage {
  const a = analyseMultilingual(parseMimeTree(Buffer.from(text, 'latin1')));
  if (!isRewritable(a)) throw new Error(`not rewritable: ${a.reason}`);
  return a;
}

function message(parts: { lang: string; from?: string }[], o: { from?: string | null; zxx?: boolean } = {}): string {
  const lines = [];
  if (o.from !== null) lines.push(`From: ${o.from ?? 'Sender <sender@example.test>'}`);
  lines.push('To: r@example.test', 'Subject: top', 'MIME-Version: 1.0', 'Content-Type: multipart/multilingual; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'preface');
  for (const p of parts) {
    lines.push('--b1', 'Content-Type: message/rfc822', `Content-Language: ${p.lang}`, '');
    if (p.from) lines.push(`From: ${p.from}`);
    lines.push(`Subject: in ${p.lang}`, 'Content-Type: text/plain', '', `body ${p.lang}`);
  }
  if (o.zxx) lines.push('--b1', 'Content-Type: message/rfc822', 'Content-Language: zxx', '', 'Content-Type: text/plain', '', ':-)');
  lines.push('--b1--', '');
  return lines.join('\r\n');
}

const choose = (m: MultilingualMessage, prefs: string) => selectLanguagePart(m, parseLanguagePreferences(prefs));
const tagsOf = (m: MultilingualMessage, prefs: string) => choose(m, prefs).part.tags.join(',');

t.test('q=0 refuses what its range is the longest match for (RFC 2616 14.4 via RFC 3282)', async (t) => {
  const m = analysed(message([{ lang: 'es' }, { lang: 'en' }, { lang: 'es-MX' }]));
  t.equal(tagsOf(m, 'en, *;q=0'), 'en', '"*;q=0" refuses only the languages no other range names');
  t.equal(tagsOf(m, 'fr, en;q=0.5, *;q=0'), 'en');
  t.equal(tagsOf(m, 'es-MX, es;q=0'), 'es-MX', 'a longer range with q>0 wins over "es;q=0" for es-MX');
  t.equal(tagsOf(m, 'es, es-MX;q=0'), 'es', 'es-MX refused, plain es still fine');
  const onlyMx = analysed(message([{ lang: 'es-ES' }, { lang: 'en' }]));
  t.equal(tagsOf(onlyMx, 'es-MX, es;q=0, de'), 'en', 'es-ES refused by "es;q=0": the first part left');
  const withZxx = analysed(message([{ lang: 'es' }, { lang: 'de' }], { zxx: true }));
  const s = choose(withZxx, 'en, *;q=0');
  t.same([s.part.tags, s.rule], [['zxx'], 'independent'], '"*;q=0" refuses languages, not the language-independent part');
  t.equal(tagsOf(m, 'en, en;q=0'), 'es', 'the same range twice, once with q=0: never wins');
  t.equal(tagsOf(m, 'en;q=0, en'), 'es', 'in either order');
});

t.test('select: a language part that is a header only, its last line without a line ending, gives whole header lines', async (t) => {
  const head = 'From: a@example.test\r\nSubject: top\r\nContent-Type: multipart/multilingual; boundary=b1\r\n\r\n--b1\r\n\r\npreface\r\n';
  // The line ending before a delimiter belongs to the delimiter (RFC 2046 5.1.1), so the
  // inner message's last header line reaches the rewrite without one.
  const cases = [
    ['Content-Type last', 'Subject: hi\r\nContent-Type: text/plain'],
    ['Subject last', 'Content-Type: text/plain\r\nSubject: hi'],
    ['Subject only', 'Subject: hi'],
  ];
  for (const [name, inner] of cases) {
    const m = analysed(`${head}--b1\r\nContent-Type: message/rfc822\r\nContent-Language: en\r\n\r\n${inner}\r\n--b1--\r\n`);
    const out = rewriteSelect(m, m.languageParts[0]!).toString('latin1');
    const lines = out.split('\r\n').filter((l) => l !== '');
    t.ok(lines.includes('Subject: hi'), `${name}: Subject on its own line (${JSON.stringify(out)})`);
    t.ok(lines.includes('Content-Language: en'), `${name}: Content-Language on its own line`);
    t.ok(lines.includes('MIME-Version: 1.0'), `${name}: MIME-Version on its own line`);
    t.ok(out.endsWith('\r\n'), `${name}: the header ends with a line ending`);
    const parsed = await simpleParser(Buffer.from(out, 'latin1'));
    t.equal(parsed.subject, 'hi', `${name}: mailparser reads the Subject`);
    t.equal(parsed.headers.get('content-language'), 'en', `${name}: and the Content-Language`);
  }
});

t.test('an inner From is checked by its address, not by text that looks like one (RFC 8255 section 10)', async (t) => {
  const spoofs: [string, string, string][] = [
    ['quoted display name holding the top address', 'attacker@evil.example', '"<attacker@evil.example>" <ceo@bank.example>'],
    ['top display name holding the inner address', '"<ceo@bank.example>" <attacker@evil.example>', 'Bank <ceo@bank.example>'],
    ['a second address', 'attacker@evil.example', 'attacker@evil.example, ceo@bank.example'],
  ];
  for (const [name, top, inner] of spoofs) {
    const m = analysed(message([{ lang: 'en' }, { lang: 'es', from: inner }], { from: top }));
    const es = m.languageParts[1]!;
    t.ok(es.fromMismatch, `${name}: seen as another sender`);
    const reordered = rewriteReorder(m, es).toString('latin1');
    t.notOk(reordered.includes(`From: ${inner}\r\n`), `${name}: the inner From is not delivered in reorder`);
  }
  const same: [string, string][] = [
    ['Sender <sender@example.test>', '=?utf-8?q?Remitente?= <SENDER@example.test>'],
    ['sender@example.test (Sender)', 'Remitente <sender@example.test>'],
    ['a@example.test, b@example.test', 'b@example.test, A <a@example.test>'],
  ];
  for (const [top, inner] of same) {
    const m = analysed(message([{ lang: 'es', from: inner }], { from: top }));
    t.notOk(m.languageParts[0]!.fromMismatch, `a localised display name is no other sender: ${inner}`);
  }
  const noTop = analysed(message([{ lang: 'en' }, { lang: 'es', from: 'ceo@bank.example' }], { from: null }));
  t.ok(noTop.languageParts[1]!.fromMismatch);
  t.notMatch(rewriteReorder(noTop, noTop.languageParts[1]!).toString('latin1'), /bank\.example/, 'no top-level From to put in its place: the inner one is removed');
});

t.test('reorder: an empty preface does not let a moved part swallow the next one', async (t) => {
  // After an empty part the next delimiter has no line ending of its own before it (the
  // one there belongs to the delimiter before); moved behind a part with content it needs one.
  const text = 'From: a@example.test\r\nSubject: top\r\nContent-Type: multipart/multilingual; boundary=b1\r\n\r\n--b1\r\n--b1\r\nContent-Type: message/rfc822\r\nContent-Language: en\r\n\r\nSubject: en\r\n\r\nhello\r\n--b1\r\nContent-Type: message/rfc822\r\nContent-Language: es\r\n\r\nSubject: es\r\n\r\nhola\r\n--b1--\r\n';
  const m = analysed(text);
  const out = rewriteReorder(m, choose(m, 'es').part).toString('latin1');
  t.notMatch(out, /hola--b1/, 'no delimiter glued to a body');
  const again = analysed(out);
  t.same(again.languageParts.map((p) => p.tags[0]), ['es', 'en'], 'both language parts, Spanish first');
  t.same(
    again.languageParts.map((p) => rewriteSelect(again, p).toString('latin1').split('\r\n\r\n')[1]),
    ['hola', 'hello'],
    'each part keeps its own body',
  );
});

t.test('extlang, private use and case: what RFC 4647 matching gives (held)', async (t) => {
  const m = analysed(message([{ lang: 'en' }, { lang: 'zh-Yue' }, { lang: 'x-klingon' }, { lang: 'de-CH-1996' }]));
  const pick = (prefs: string) => {
    const s = choose(m, prefs);
    return `${s.part.tags.join(',')} ${s.rule}`;
  };
  t.equal(pick('ZH-YUE-hk'), 'zh-Yue lookup', 'extlang range truncated to zh-yue, any case');
  t.equal(pick('zh'), 'zh-Yue filter', 'zh covers zh-yue');
  t.equal(pick('yue'), 'en default', 'yue alone is another tag (no canonicalisation)');
  t.equal(pick('X-Klingon'), 'x-klingon exact', 'private use tag, exact');
  t.equal(pick('en-x-klingon'), 'en lookup', 'private use subtags go first in lookup: en');
  t.equal(pick('ch'), 'en default', '"ch" does not match de-CH-1996');
  t.equal(pick('de-CH'), 'de-CH-1996 filter');
  t.equal(pick('de-CH-1996-x-a, en'), 'de-CH-1996 lookup', 'lookup drops x-a, then matches');
});
