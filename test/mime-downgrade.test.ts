import t from 'tap';
import { simpleParser } from 'mailparser';
import { downgradeTo7bit, hasEightBitHeaders } from '../src/mime/downgrade.js';

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'utf8');

t.test('7-bit mail is left alone', async (t) => {
  t.same(downgradeTo7bit(crlf(['Subject: x', '', 'plain', ''])), { kind: 'unchanged' });
});

t.test('a non-MIME 8-bit message becomes quoted-printable text with MIME headers', async (t) => {
  const r = downgradeTo7bit(crlf(['Subject: x', '', 'Grüße', '']));
  if (r.kind !== 'converted') return t.fail(r.kind);
  const text = r.bytes.toString('latin1');
  t.match(text, /^Subject: x\r\nMIME-Version: 1\.0\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n$/);
  t.equal((await simpleParser(r.bytes)).text?.trim(), 'Grüße');
});

t.test('an encapsulated message/rfc822 is converted inside; its 8bit label becomes 7bit', async (t) => {
  const msg = crlf([
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=o',
    '',
    '--o',
    'Content-Type: message/rfc822',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Subject: inner',
    'Content-Type: text/plain; charset=latin1',
    '',
    'K\u00f6ln',
    '--o--',
    '',
  ]);
  const r = downgradeTo7bit(msg);
  if (r.kind !== 'converted') return t.fail(r.kind);
  const text = r.bytes.toString('latin1');
  t.notOk(/[^\x00-\x7f]/.test(text));
  t.match(text, /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: inner\r\nContent-Type: text\/plain; charset=latin1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=C3=B6ln/);
});

t.test('what cannot be converted is named', async (t) => {
  const cases: [string, Buffer, RegExp][] = [
    ['8-bit header', crlf(['Subject: Köln', '', 'x', '']), /header/],
    ['8-bit in a part declared base64', crlf(['MIME-Version: 1.0', 'Content-Transfer-Encoding: base64', '', 'Köln', '']), /base64/],
    ['8-bit preamble', crlf(['Content-Type: multipart/mixed; boundary=b', '', 'Köln', '--b', '', 'x', '--b--', '']), /preamble/],
    ['8-bit message/partial', crlf(['Content-Type: message/partial; id=1', '', 'Köln', '']), /message\/partial/],
  ];
  for (const [what, msg, reason] of cases) {
    const r = downgradeTo7bit(msg);
    t.equal(r.kind, 'impossible', what);
    if (r.kind === 'impossible') t.match(r.reason, reason, what);
  }
});

t.test('8-bit headers are found in MIME parts too', async (t) => {
  t.notOk(hasEightBitHeaders(crlf(['Subject: x', '', 'Köln', ''])), 'an 8-bit body is not a header');
  t.ok(hasEightBitHeaders(crlf(['Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Description: Köln', '', 'x', '--b--', ''])));
});
