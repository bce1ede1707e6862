// Content-Type (and Content-Disposition) value parsing: `type/subtype; name=value; ...`
// with quoted strings, comments ignored, and RFC 2231 continuations and charset/language
// decoding (`name*0*=utf-8''%C3%A9`). Tolerant: junk parameters are skipped, never thrown.

export interface ContentType {
  /** Lower-case `type/subtype`, or the bare lower-case value when it has no slash. */
  type: string;
  /** Parameter names lower-cased; RFC 2231 sections joined and decoded. */
  params: Map<string, string>;
}

export function parseContentType(value: string): ContentType {
  const semi = value.indexOf(';');
  const head = (semi === -1 ? value : value.slice(0, semi)).replace(/\([^)]*\)/g, '').trim().toLowerCase();
  const params = parseParams(semi === -1 ? '' : value.slice(semi + 1));
  return { type: head, params };
}

interface Section {
  index: number;
  encoded: boolean;
  value: string;
}

function parseParams(text: string): Map<string, string> {
  const plain = new Map<string, string>();
  const sections = new Map<string, Section[]>();
  let i = 0;
  while (i < text.length) {
    // name
    while (i < text.length && /[\s;]/.test(text[i]!)) i++;
    const nameStart = i;
    while (i < text.length && text[i] !== '=' && text[i] !== ';') i++;
    const rawName = text.slice(nameStart, i).trim().toLowerCase();
    if (text[i] !== '=') continue;
    i++;
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    let val = '';
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        val += text[i];
        i++;
      }
      i++;
      while (i < text.length && text[i] !== ';') i++;
    } else {
      const start = i;
      while (i < text.length && text[i] !== ';') i++;
      val = text.slice(start, i).trim();
    }
    if (!rawName) continue;
    const m = /^([^*]+)\*(?:(\d+)(\*)?)?$|^([^*]+)\*$/.exec(rawName);
    if (m && m[1] !== undefined && m[2] !== undefined) {
      const list = sections.get(m[1]) ?? [];
      list.push({ index: Number(m[2]), encoded: m[3] === '*', value: val });
      sections.set(m[1], list);
    } else if (m && m[1] !== undefined) {
      // name*=charset'lang'value (single encoded section)
      sections.set(m[1], [{ index: 0, encoded: true, value: val }]);
    } else if (!plain.has(rawName)) plain.set(rawName, val);
  }
  for (const [name, list] of sections) {
    list.sort((a, b) => a.index - b.index);
    plain.set(name, decode2231(list));
  }
  return plain;
}

function decode2231(list: Section[]): string {
  let charset = 'utf-8';
  const bytes: number[] = [];
  list.forEach((s, n) => {
    let v = s.value;
    if (s.encoded && n === 0) {
      const q = /^([^']*)'[^']*'(.*)$/.exec(v);
      if (q) {
        charset = q[1]!.toLowerCase() || 'utf-8';
        v = q[2]!;
      }
    }
    if (s.encoded) {
      for (let i = 0; i < v.length; i++) {
        if (v[i] === '%' && /^[0-9a-fA-F]{2}$/.test(v.slice(i + 1, i + 3))) {
          bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
          i += 2;
        } else bytes.push(v.charCodeAt(i) & 0xff);
      }
    } else for (const b of Buffer.from(v, 'utf8')) bytes.push(b);
  });
  const buf = Buffer.from(bytes);
  try {
    return new TextDecoder(charset).decode(buf);
  } catch {
    return buf.toString('latin1');
  }
}
