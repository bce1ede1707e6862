// The shared MIME helpers (src/mime: date, fold, boundary, transfer encoding) and a
// check that the rest of the code uses them instead of copies of its own.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { formatDateTime, rfc5322Date } from '../src/mime/date.js';
import { foldField, foldLine } from '../src/mime/fold.js';
import { mimeBoundary } from '../src/mime/boundary.js';
import { base64Lines, quotedPrintableLines } from '../src/mime/transfer-encoding.js';

t.test('RFC 5322 dates: UTC instants and wall-clock parts with their offset', async (t) => {
  t.equal(rfc5322Date(new Date('2026-11-25T09:37:37Z')), 'Wed, 25 Nov 2026 09:37:37 +0000');
  t.equal(rfc5322Date(new Date('2026-01-05T00:00:09Z')), 'Mon, 5 Jan 2026 00:00:09 +0000', 'day not padded, time padded');
  t.equal(formatDateTime({ year: 1979, month: 3, day: 29, hour: 11, minute: 46, second: 0, offset: -480 }), 'Thu, 29 Mar 1979 11:46:00 -0800');
  t.equal(formatDateTime({ year: 2026, month: 11, day: 25, hour: 10, minute: 11, second: 12, offset: 330 }), 'Wed, 25 Nov 2026 10:11:12 +0530');
  t.equal(formatDateTime({ year: 50, month: 1, day: 1, hour: 0, minute: 0, second: 0, offset: 0 }), 'Sat, 1 Jan 0050 00:00:00 +0000', 'year 50 is not 1950');
  const parsed = new Date(rfc5322Date(new Date('2031-07-04T23:59:59Z')));
  t.equal(parsed.toISOString(), '2031-07-04T23:59:59.000Z', 'Date.parse reads it back');
});

t.test('folding: near 78 columns, unfolds to the original, long words cut below 998', async (t) => {
  const value = 'smtp; 550 5.7.1 ' + 'policy rejection reason '.repeat(10).trim();
  const folded = foldField('Diagnostic-Code', value);
  for (const line of folded.split('\r\n')) t.ok(line.length <= 78, `line within 78: ${line.length}`);
  t.ok(folded.split('\r\n').slice(1).every((l) => l.startsWith(' ')), 'continuation lines start with a space');
  t.equal(folded.replace(/\r\n/g, ''), `Diagnostic-Code: ${value}`, 'unfolding gives the field back');
  t.equal(foldLine(`Diagnostic-Code: ${value}`), folded, 'foldLine = foldField on a written field');
  t.equal(foldField('Subject', 'short'), 'Subject: short', 'short fields stay on one line');
  const huge = foldField('X-Long', 'a'.repeat(2500));
  t.ok(huge.split('\r\n').every((l) => l.length < 998), 'a word longer than a line is cut');
  t.equal(huge.replace(/\r\n /g, ''), 'X-Long: ' + 'a'.repeat(2500), 'the pieces join back');
});

t.test('boundaries: never in the contents, valid bchars, random or reproducible', async (t) => {
  const content = [Buffer.from('--=_x.abc\r\nhello\r\n')];
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const b = mimeBoundary(content, { tag: 'Q1' });
    t.ok(b.length <= 70 && /^[0-9A-Za-z'()+_,\-./:=?]+$/.test(b), `RFC 2046 boundary: ${b}`);
    t.ok(b.startsWith('=_Q1.'));
    seen.add(b);
  }
  t.equal(seen.size, 50, 'random boundaries differ');
  const d1 = mimeBoundary(content, { tag: 'imp', deterministic: true });
  t.equal(mimeBoundary(content, { tag: 'imp', deterministic: true }), d1, 'deterministic for the same contents');
  const clash = mimeBoundary([Buffer.from(`x\r\n--${d1}\r\n`), ...content], { tag: 'imp', deterministic: true });
  const other = Buffer.from(`x\r\n--${d1}\r\n`);
  t.notOk(other.includes(`--${clash}`) && clash === d1, 'a boundary found in the contents is not used');
});

t.test('quoted-printable and base64 lines from nodemailer decode back to the input', async (t) => {
  const text = Buffer.from('Grüße aus Köln = 100 % \r\n\tTabbed line with trailing space \r\n' + 'x'.repeat(200) + '\r\nend', 'utf8');
  const qp = quotedPrintableLines(text);
  const lines = qp.toString('latin1').split('\r\n');
  t.ok(lines.every((l) => l.length <= 76), 'QP lines within 76');
  t.notOk(/[^\x00-\x7f]/.test(qp.toString('latin1')), 'QP is 7-bit');
  t.ok(lines.every((l) => !/[ \t]$/.test(l)), 'no whitespace before a line break');
  const data = Buffer.alloc(1000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const b64 = base64Lines(data);
  t.ok(b64.toString('latin1').split('\r\n').slice(0, -1).every((l) => l.length === 76 || l.length === Math.ceil(((data.length % 57) * 4) / 3 / 4) * 4));
  t.ok(b64.toString('latin1').endsWith('\r\n'));
  const mail = await simpleParser(
    Buffer.concat([
      Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'),
      qp,
      Buffer.from('\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'),
      b64,
      Buffer.from('--b--\r\n'),
    ]),
  );
  t.equal(mail.text, text.toString('utf8').replace(/\r\n/g, '\n'), 'QP decodes to the text (mailparser reads line ends as LF)');
  t.same(mail.attachments[0]?.content, data, 'base64 decodes to the bytes');
  t.equal(base64Lines(Buffer.alloc(0)).length, 0);
  t.equal(quotedPrintableLines(Buffer.alloc(0)).length, 0);
});

/** Every .ts file under dir. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('one copy each: dates, folding, boundaries and QP/base64 live in src/mime only', async (t) => {
  const helpers = new Set(['src/mime/date.ts', 'src/mime/fold.ts', 'src/mime/boundary.ts', 'src/mime/transfer-encoding.ts']);
  const offenders = { date: [] as string[], fold: [] as string[], boundary: [] as string[], encoding: [] as string[] };
  for (const file of sources('src')) {
    if (helpers.has(file)) continue;
    const code = readFileSync(file, 'utf8');
    if (/getUTCDay\(|toUTCString\(|'Sun', 'Mon'/.test(code)) offenders.date.push(file);
    if (/function fold\w*\(/.test(code) && !/foldField|foldLine/.test(code)) offenders.fold.push(file);
    if (/function pickBoundary\(/.test(code) && !/mimeBoundary/.test(code)) offenders.boundary.push(file);
    if (/'0123456789ABCDEF'|toString\('base64', i/.test(code)) offenders.encoding.push(file);
  }
  t.same(offenders, { date: [], fold: [], boundary: [], encoding: [] }, 'no file keeps a copy of its own');
});
