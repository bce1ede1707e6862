// Header text for plain IMP readers: TEXT is 7-bit, so non-ASCII words of a header
// value (RFC 6532 raw UTF-8) are written as RFC 2047 encoded-words, which every MIME
// reader decodes back to the same characters. Exact bytes are carried elsewhere.

const MAX_WORD_PAYLOAD = 45; // 45 octets -> 60 base64 chars; with =?UTF-8?B?...?= under 75

/** Unfolded, trimmed, 7-bit rendering of raw header value bytes. */
export function presentableValue(raw: Buffer): string {
  const unfolded = raw.toString('latin1').replace(/\r?\n(?=[ \t])/g, '').replace(/[\r\n]+$/, '').trim();
  if (!/[^\x00-\x7f]/.test(unfolded)) return unfolded;
  const bytes = Buffer.from(unfolded, 'latin1');
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  // Tokens keep their leading whitespace so grouped runs keep inner spaces.
  const tokens = text.match(/\s*\S+|\s+$/g) ?? [];
  const out: string[] = [];
  let run = '';
  const flush = () => {
    if (!run) return;
    const lead = /^\s*/.exec(run)![0];
    out.push(lead + encodeWords(run.slice(lead.length)));
    run = '';
  };
  for (const tok of tokens) {
    if (/[^\x00-\x7f]/.test(tok)) run += tok;
    else {
      flush();
      out.push(tok);
    }
  }
  flush();
  return out.join('');
}

/** `s` as RFC 2047 B encoded-words (UTF-8), each at most 45 octets of payload, space-separated. */
export function encodeWords(s: string): string {
  const words: string[] = [];
  let cur: string[] = [];
  let curLen = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (curLen + n > MAX_WORD_PAYLOAD && cur.length) {
      words.push(cur.join(''));
      cur = [];
      curLen = 0;
    }
    cur.push(ch);
    curLen += n;
  }
  if (cur.length) words.push(cur.join(''));
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join(' ');
}
