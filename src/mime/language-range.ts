// Language priority lists in the RFC 3282 Accept-Language form ("es-MX, es;q=0.8, en;q=0.3"),
// and RFC 4647 matching of language ranges against language tags. Pure functions.

/** One entry of a priority list. `q = 0` means "never this language". */
export interface LanguagePreference {
  /** The language range as written, lower-cased (`*` for any). */
  range: string;
  /** Quality 0..1 (1 when absent). */
  q: number;
}

export class LanguagePreferenceError extends Error {
  readonly code = 'ERR_MAILBAG_LANGUAGE_RANGE';
  override readonly name = 'LanguagePreferenceError';
}

// RFC 4647 section 2.1: language-range = (1*8ALPHA *("-" 1*8alphanum)) / "*"
const BASIC_RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/i;
// RFC 3282: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * Parses a priority list, most preferred first: by q descending, ties in written order
 * (RFC 3282: without q-values the leftmost range is the most preferred). Comments and the
 * obsolete whitespace around `;` and `=` are accepted, as RFC 3282 requires of readers.
 * Throws LanguagePreferenceError naming the bad element.
 */
export function parseLanguagePreferences(value: string): LanguagePreference[] {
  const text = value.replace(/\([^()]*\)/g, ' ');
  const out: (LanguagePreference & { order: number })[] = [];
  const items = text.split(',');
  items.forEach((raw, order) => {
    const item = raw.trim();
    if (item === '') {
      if (items.length === 1) throw new LanguagePreferenceError('empty language list');
      return; // RFC 7230's #rule allows empty list elements
    }
    const [rangePart, ...params] = item.split(';');
    const range = rangePart!.trim();
    if (!BASIC_RANGE.test(range)) throw new LanguagePreferenceError(`not a language range: ${JSON.stringify(range)}`);
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*(\S*)\s*$/i.exec(p);
      if (!m || !QVALUE.test(m[1]!)) throw new LanguagePreferenceError(`bad quality value in ${JSON.stringify(item)} (use q=0 to q=1, up to three decimals)`);
      q = Number(m[1]);
    }
    out.push({ range: range.toLowerCase(), q, order });
  });
  if (out.length === 0) throw new LanguagePreferenceError('empty language list');
  out.sort((a, b) => b.q - a.q || a.order - b.order);
  return out.map(({ range, q }) => ({ range, q }));
}

/** The list back in Accept-Language form, q omitted where it is 1. */
export function formatLanguagePreferences(list: readonly LanguagePreference[]): string {
  return list.map((p) => (p.q === 1 ? p.range : `${p.range};q=${p.q}`)).join(', ');
}

/**
 * RFC 4647 section 3.3.1 basic filtering: the range equals the tag, or a prefix of it
 * followed by "-" (case-insensitive); `*` matches every tag.
 */
export function basicFilterMatches(range: string, tag: string): boolean {
  if (range === '*') return true;
  const r = range.toLowerCase();
  const t = tag.toLowerCase();
  return t === r || (t.startsWith(r) && t.charCodeAt(r.length) === 0x2d);
}

/**
 * RFC 4647 section 3.3.2 extended filtering (`de-*-DE` matches `de-Latn-DE`, not
 * `de-x-DE`).
 */
export function extendedFilterMatches(range: string, tag: string): boolean {
  const r = range.toLowerCase().split('-');
  const t = tag.toLowerCase().split('-');
  if (r[0] !== '*' && r[0] !== t[0]) return false;
  let ri = 1;
  let ti = 1;
  while (ri < r.length) {
    const rs = r[ri]!;
    if (rs === '*') {
      ri++;
      continue;
    }
    if (ti >= t.length) return false;
    const ts = t[ti]!;
    if (rs === ts) {
      ri++;
      ti++;
      continue;
    }
    if (ts.length === 1) return false;
    ti++;
  }
  return true;
}

/**
 * The progressively truncated forms of a range that RFC 4647 section 3.4 lookup tries,
 * the range itself first: `zh-Hant-CN-x-private1-private2` gives itself,
 * `zh-Hant-CN-x-private1`, `zh-Hant-CN`, `zh-Hant`, `zh`. A single-letter or digit subtag
 * left at the end is removed together with the subtag after it.
 */
export function lookupFallbacks(range: string): string[] {
  if (range === '*') return [];
  const subtags = range.toLowerCase().split('-');
  const out: string[] = [];
  while (subtags.length > 0) {
    out.push(subtags.join('-'));
    subtags.pop();
    while (subtags.length > 0 && subtags[subtags.length - 1]!.length === 1) subtags.pop();
  }
  return out;
}

/**
 * RFC 4647 section 3.4 lookup: the first tag that equals a fallback of the first range
 * that has one; `*` is skipped; `defaultTag` when nothing matches.
 */
export function lookupTag(priority: readonly string[], tags: readonly string[], defaultTag?: string): string | undefined {
  for (const range of priority) {
    for (const candidate of lookupFallbacks(range)) {
      const hit = tags.find((t) => t.toLowerCase() === candidate);
      if (hit !== undefined) return hit;
    }
  }
  return defaultTag;
}
