import t from 'tap';
import {
  basicFilterMatches,
  extendedFilterMatches,
  formatLanguagePreferences,
  lookupFallbacks,
  lookupTag,
  parseLanguagePreferences,
} from '../src/mime/language-range.js';

t.test('RFC 4647 3.3.1 basic filtering examples', async (t) => {
  t.ok(basicFilterMatches('de-de', 'de-DE-1996'), '"de-de" matches "de-DE-1996"');
  t.notOk(basicFilterMatches('de-de', 'de-Deva'), 'but not "de-Deva"');
  t.notOk(basicFilterMatches('de-de', 'de-Latn-DE'), 'nor "de-Latn-DE"');
  t.ok(basicFilterMatches('*', 'x-anything'), '"*" matches any tag');
  t.ok(basicFilterMatches('es', 'es-ES'), '"es" matches "es-ES"');
  t.notOk(basicFilterMatches('ch', 'de-CH-1996'), '"ch" does not match "de-CH-1996"');
  t.notOk(basicFilterMatches('en', 'eng'), 'a prefix must end at a hyphen');
  t.ok(basicFilterMatches('EN-gb', 'en-GB'), 'case-insensitive');
});

t.test('RFC 4647 3.3.2 extended filtering examples', async (t) => {
  for (const tag of ['de-DE', 'de-de', 'de-Latn-DE', 'de-Latf-DE', 'de-DE-x-goethe', 'de-Latn-DE-1996', 'de-Deva-DE']) {
    t.ok(extendedFilterMatches('de-*-DE', tag), `"de-*-DE" matches ${tag}`);
    t.ok(extendedFilterMatches('de-DE', tag), `its synonym "de-DE" matches ${tag}`);
  }
  for (const tag of ['de', 'de-x-DE', 'de-Deva']) t.notOk(extendedFilterMatches('de-*-DE', tag), `"de-*-DE" does not match ${tag}`);
});

t.test('RFC 4647 3.4 lookup fallback pattern and default', async (t) => {
  t.same(lookupFallbacks('zh-Hant-CN-x-private1-private2'), ['zh-hant-cn-x-private1-private2', 'zh-hant-cn-x-private1', 'zh-hant-cn', 'zh-hant', 'zh']);
  t.same(lookupFallbacks('de-CH-1996'), ['de-ch-1996', 'de-ch', 'de']);
  t.same(lookupFallbacks('*'), [], '"*" has no lookup fallbacks');
  // "fr-FR, zh-Hant" with the default range "ja-JP": fr-FR, fr, zh-Hant, zh, ja-JP, ja
  const priority = ['fr-FR', 'zh-Hant', 'ja-JP'];
  t.equal(lookupTag(priority, ['fr', 'zh', 'ja']), 'fr');
  t.equal(lookupTag(priority, ['zh', 'ja-JP']), 'zh');
  t.equal(lookupTag(priority, ['ja', 'en']), 'ja');
  t.equal(lookupTag(priority, ['en'], 'i-default'), 'i-default', 'nothing matches: the default');
  t.equal(lookupTag(['de-ch'], ['de-CH-1996']), undefined, 'lookup never returns a more specific tag than the range');
  t.equal(lookupTag(['*', 'en'], ['en']), 'en', '"*" is skipped when other ranges follow');
});

t.test('RFC 3282 priority lists: q-values order, q=0, obsolete syntax', async (t) => {
  t.same(parseLanguagePreferences('es-MX, es;q=0.8, en;q=0.3'), [
    { range: 'es-mx', q: 1 },
    { range: 'es', q: 0.8 },
    { range: 'en', q: 0.3 },
  ]);
  t.same(
    parseLanguagePreferences('en;q=0.3, fr, de;q=0.9, it').map((p) => p.range),
    ['fr', 'it', 'de', 'en'],
    'by q descending, written order among equals',
  );
  t.same(parseLanguagePreferences('fr;q=0, en'), [
    { range: 'en', q: 1 },
    { range: 'fr', q: 0 },
  ]);
  t.same(parseLanguagePreferences('da (Danish) , en-gb ; q = 0.8'), [
    { range: 'da', q: 1 },
    { range: 'en-gb', q: 0.8 },
  ]);
  t.equal(formatLanguagePreferences(parseLanguagePreferences('es-MX, es;q=0.8, *;q=0')), 'es-mx, es;q=0.8, *;q=0');
  for (const bad of ['', 'en;q=2', 'en;q=0.1234', 'en;level=1', 'toolongsubtag', 'en_US', 'en;q=']) {
    t.throws(() => parseLanguagePreferences(bad), { code: 'ERR_MAILBAG_LANGUAGE_RANGE', name: 'LanguagePreferenceError' }, `refused: ${JSON.stringify(bad)}`);
  }
});
