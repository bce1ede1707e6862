/** One CSV record and the line it starts on (1-based). */
export interface CsvRecord {
  line: number;
  fields: string[];
}

export class CsvError extends Error {
  readonly code = 'ERR_MAILBAG_CSV';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'CsvError';
  }
}

/**
 * RFC 4180 CSV: comma-separated fields, double-quoted fields may hold commas, line
 * breaks and doubled quotes; CRLF or LF line ends; blank lines are skipped.
 */
export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let line = 1;
  let i = 0;
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  while (i < body.length) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    let wasQuoted = false;
    let ended = false;
    for (; i < body.length && !ended; i++) {
      const c = body[i]!;
      if (quoted) {
        if (c === '"') {
          if (body[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else {
          if (c === '\n') line++;
          field += c;
        }
        continue;
      }
      if (c === '"') {
        if (field.trim() !== '' || wasQuoted) throw new CsvError('a quote inside an unquoted field', line);
        field = '';
        quoted = wasQuoted = true;
      } else if (c === ',') {
        fields.push(wasQuoted ? field : field.trim());
        field = '';
        wasQuoted = false;
      } else if (c === '\n' || c === '\r') {
        if (c === '\r' && body[i + 1] === '\n') i++;
        line++;
        ended = true;
      } else if (wasQuoted) {
        if (c !== ' ' && c !== '\t') throw new CsvError('text after a closing quote', line);
      } else field += c;
    }
    if (quoted) throw new CsvError('a quoted field is not closed', start);
    fields.push(wasQuoted ? field : field.trim());
    if (fields.length === 1 && fields[0] === '' && !wasQuoted) continue;
    records.push({ line: start, fields });
  }
  return records;
}
