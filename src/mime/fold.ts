// Header field folding (RFC 5322 section 2.2.3), the one implementation every header
// mailbag writes itself goes through.

/** Lines are folded to stay near this many characters (RFC 5322 2.1.1 SHOULD). */
export const FOLD_WIDTH = 78;
/** A word longer than this has no place to fold: it is cut, so no line reaches 998 octets. */
const MAX_WORD = 900;

/**
 * `Name: value` folded at spaces to stay near 78 columns, lines joined with CRLF and no
 * final line ending. Each fold replaces one space by CRLF + space, so unfolding (removing
 * the CRLFs) gives back the field exactly. A word over 900 characters is cut into pieces
 * on separate lines, so no line exceeds RFC 5322's 998 octets; unfolding then shows a
 * space at each cut.
 */
export function foldField(name: string, value: string, width = FOLD_WIDTH): string {
  const words = value.split(' ').flatMap((w) => (w.length > MAX_WORD ? (w.match(/[^]{1,900}/g) ?? [w]) : [w]));
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > width && line.length > name.length + 1 && line.trim().length > 0) {
      lines.push(line);
      line = '';
    }
    line += ' ' + w;
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** `foldField` for a field already written as `Name: value`. */
export function foldLine(field: string, width = FOLD_WIDTH): string {
  const colon = field.indexOf(':');
  if (colon <= 0 || field.length <= width) return field;
  const value = field.slice(colon + 1);
  return foldField(field.slice(0, colon), value.startsWith(' ') ? value.slice(1) : value, width);
}
