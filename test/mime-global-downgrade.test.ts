// message/global (RFC 6532 section 3.7) carries a message whose header may be UTF-8 as a
// body: it needs 8BITMIME, not SMTPUTF8, and unlike message/rfc822 it may be encoded
// ("any content-transfer-encoding is permitted"). RFC 8255 allows such language parts.
import { simpleParser } from 'mailparser';
import t from 'tap';
import { downgradeTo7bit, hasEightBitHeaders } from '../src/mime/downgrade.js';
import { parseMimeTree } from '../src/mime/tree.js';

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'utf8');
const inner = crlf(['From: Nik <nik@example.com>', 'Subject: Ejemplo práctico', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Hola, señor.', '']);
const multilingual = (wrapper: string) =>
  Buffer.concat([
    crlf(['From: Nik <nik@example.com>', 'Subject: Example', 'MIME-Version: 1.0', 'Content-Type: multipart/multilingual; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'preface', '--b1', wrapper, 'Content-Language: es', '', '']),
    inner,
    crlf(['--b1--', '']),
  ]);

t.test('UTF-8 in the header of a message/global part is body, not a header needing SMTPUTF8', async (t) => {
  t.notOk(hasEightBitHeaders(multilingual('Content-Type: message/global')), 'message/global: no SMTPUTF8 needed');
  t.ok(hasEightBitHeaders(multilingual('Content-Type: message/rfc822')), 'message/rfc822: its header is a header');
  t.ok(hasEightBitHeaders(crlf(['Subject: x', 'Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: message/global', 'Content-Description: Köln', '', 'Subject: y', '', 'z', '--b--', ''])), "the message/global part's own header still counts");
});

t.test('7-bit conversion base64-encodes an 8-bit message/global part instead of refusing the message', async (t) => {
  const msg = multilingual('Content-Type: message/global');
  const r = downgradeTo7bit(msg);
  if (r.kind !== 'converted') return t.fail(`${r.kind}${r.kind === 'impossible' ? `: ${r.reason}` : ''}`);
  t.notMatch(r.bytes.toString('latin1'), /[^\x00-\x7f]/, 'all 7-bit');
  const part = parseMimeTree(r.bytes);
  if (part.body.kind !== 'multipart') return t.fail('not multipart');
  const global = part.body.parts[1]!.node;
  t.match(global.header.map((f) => f.raw.toString()).join(''), /^Content-Type: message\/global\r\nContent-Language: es\r\nContent-Transfer-Encoding: base64\r\n$/);
  if (global.body.kind !== 'leaf') return t.fail('encoded part is a leaf');
  t.same(Buffer.from(global.body.data.toString('latin1'), 'base64'), inner.subarray(0, inner.length - 2), 'decodes to the inner message exactly (its last line ending belongs to the delimiter)');
  const parsed = await simpleParser(r.bytes);
  t.equal(parsed.subject, 'Example');
});
