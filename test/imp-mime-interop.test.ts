// RFC 753 Example 1, foreign documents, and DKIM surviving MIME -> IMP -> MIME.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { decodeBag, encodeElement, parseNotation, proplist, type Element, type ImpMessage, type ProplistElement } from '../src/imp/index.js';
import { bagToMime, mimeToBag } from '../src/imp/mime/bag.js';
import { impMessageToMime } from '../src/imp/mime/from-imp.js';
import { TidAllocator } from '../src/imp/mime/tid-allocator.js';

const IHN = 167772404;
const text = (s: string) => ({ type: 'text' as const, data: Buffer.from(s, 'latin1') });
const pairText = (pl: ProplistElement, name: string) => {
  const v = pl.pairs.find((p) => p.name === name)?.value;
  return v && (v.type === 'text' || v.type === 'bitstr') ? Buffer.from(v.data).toString('latin1') : undefined;
};

// RFC 753 section 4, Example 1 step 6, in the RFC's own notation (the codec's fixture).
const notation = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'imp', 'fixtures', 'rfc753-example1.txt'), 'utf8');
const exampleBag = encodeElement({ type: 'list', items: [parseNotation(notation)] });
const example1: ImpMessage = decodeBag(exampleBag)[0]!;
const EXAMPLE_BODY = 'Dave:\r\n\r\nPlease mark your calendar for our meeting Thursday at 3 pm.\r\n\r\n--jon.';

t.test('RFC 753 Example 1 becomes a MIME message with its Date, From, To, Cc, Subject and body', async (t) => {
  const [out] = bagToMime(exampleBag);
  t.equal(out!.recipient, 'DCrocker@rand-unix');
  const raw = out!.raw.toString('latin1');
  t.match(raw, /^Date: Thu, 29 Mar 1979 11:46:00 -0800\r\n/m);
  t.match(raw, /^From: Jon Postel <Postel@ISIB>\r\n/m);
  t.match(raw, /^To: Dave Crocker <DCrocker@Rand-Unix>\r\n/m);
  t.match(raw, /^Cc: Mamie\r\n/m);
  t.match(raw, /^Subject: Meeting Thursday\r\n/m);
  t.notOk(/\n(?!$)[^\r\n]{999}/.test(raw), 'no line over 998 octets');
  const parsed = await simpleParser(out!.raw);
  t.equal(parsed.subject, 'Meeting Thursday');
  t.same(parsed.from?.value, [{ name: 'Jon Postel', address: 'Postel@ISIB' }]);
  t.equal(parsed.date?.toISOString(), '1979-03-29T19:46:00.000Z');
  t.equal(parsed.text, EXAMPLE_BODY.replace(/\r\n/g, '\n'));

  // ... and back to a bag whose document carries the example's values.
  const bag = mimeToBag(out!.raw, { recipients: [out!.recipient], ihn: IHN, tids: new TidAllocator({ ihn: IHN, start: 38 }) });
  const doc = decodeBag(bag)[0]!.document!;
  t.equal(pairText(doc.header, 'DATE'), '1979-03-29-11:46:00,000-08:00', 'the example date, in the full RFC 753 form');
  t.equal(pairText(doc.header, 'FROM'), 'Jon Postel <Postel@ISIB>');
  t.equal(pairText(doc.header, 'SUBJECT'), 'Meeting Thursday');
  t.equal(pairText(doc.header, 'TO'), 'Dave Crocker <DCrocker@Rand-Unix>');
  t.equal(pairText(doc.header, 'CC'), 'Mamie');
  t.same(doc.body.items.map((el) => (el.type === 'text' ? Buffer.from(el.data).toString('latin1') : el.type)), [EXAMPLE_BODY]);
  t.ok(bagToMime(bag)[0]!.raw.equals(out!.raw), 'and that bag converts back to the same MIME bytes');
});

t.test('foreign bodies: TEXT joined as text/plain, BITSTR runs as attachments, part headers honoured', async (t) => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  const blob = Buffer.from([0, 1, 2, 3, 255, 254]);
  const msg: ImpMessage = {
    ...example1,
    document: {
      header: proplist({ DATE: 'not a date', FROM: 'a@b.test', SUBJECT: 'parts', 'SALUTATION:': 'Mr. Frank Hacker' }),
      body: {
        type: 'list',
        items: [
          text('first line\n'),
          text('second line'),
          { type: 'bitstr', bits: 24, data: blob.subarray(0, 3) },
          { type: 'bitstr', bits: 24, data: blob.subarray(3) },
          { type: 'list', items: [proplist({ 'Content-Type': 'image/png', 'Content-Disposition': 'attachment; filename="dot.png"' }), { type: 'bitstr', bits: png.length * 8, data: png }] },
          { type: 'list', items: [text(`${'x'.repeat(1200)}=end`)] },
        ],
      },
    },
  };
  const { raw } = impMessageToMime(msg);
  const parsed = await simpleParser(raw);
  t.equal(parsed.subject, 'parts');
  t.equal(parsed.headers.get('x-imp-date'), 'not a date', 'an unconvertible DATE is kept, not dropped');
  t.equal(parsed.headers.get('salutation'), 'Mr. Frank Hacker');
  t.match(raw.toString('latin1'), /^Date: /m, 'a Date field is always present');
  t.equal(parsed.attachments.length, 2);
  t.equal(parsed.attachments[0]!.contentType, 'application/octet-stream');
  t.ok(parsed.attachments[0]!.content.equals(blob), 'consecutive BITSTRs are one attachment');
  t.equal(parsed.attachments[1]!.contentType, 'image/png');
  t.equal(parsed.attachments[1]!.filename, 'dot.png');
  t.ok(parsed.attachments[1]!.content.equals(png));
  t.match(parsed.text ?? '', /first line\nsecond line/);
  t.match(parsed.text ?? '', new RegExp(`${'x'.repeat(1200)}=end`), 'long lines survive via quoted-printable');
  for (const line of raw.toString('latin1').split('\r\n')) t.ok(line.length <= 998, 'line length') || t.comment(line.slice(0, 80));
});

t.test('a document-less DELIVER still becomes a valid message', async (t) => {
  const { document: _, ...bare } = example1;
  const { raw, recipient } = impMessageToMime(bare);
  t.equal(recipient, 'DCrocker@rand-unix');
  const parsed = await simpleParser(raw);
  t.ok(parsed.date instanceof Date);
  t.ok(parsed.from);
});

t.test('DKIM: a nodemailer-signed message still verifies after MIME -> IMP -> MIME', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'crlf' });
  const info = await transport.sendMail({
    from: 'Jürgen <sender@example.test>',
    to: 'rcpt@example.test',
    subject: 'DKIM over IMP — ünïcödé',
    text: 'Hello,\nthis message is signed.\n',
    html: '<p>Hello, <b>signed</b></p>',
    attachments: [{ filename: 'data.bin', content: Buffer.from([0, 1, 2, 250, 251]) }],
    dkim: { domainName: 'example.test', keySelector: 'sel', privateKey: pem },
  });
  const signed = info.message as Buffer;
  const resolver = async (name: string, type: string) => {
    if (name === 'sel._domainkey.example.test' && type === 'TXT') return [[`v=DKIM1; k=rsa; p=${spki}`]];
    throw Object.assign(new Error(`no record for ${name}`), { code: 'ENOTFOUND' });
  };
  const before = await dkimVerify(signed, { resolver });
  t.equal(before.results[0]?.status.result, 'pass', 'signed message verifies before conversion');

  const bag = mimeToBag(signed, { recipients: ['rcpt@example.test'], envelopeFrom: 'sender@example.test', ihn: IHN, tids: new TidAllocator({ ihn: IHN }) });
  const [out] = bagToMime(bag);
  t.ok(out!.raw.equals(signed), 'byte-identical');
  const after = await dkimVerify(out!.raw, { resolver });
  t.equal(after.results[0]?.status.result, 'pass', 'and verifies after MIME -> IMP -> MIME');
  t.equal(after.results[0]?.signingDomain, 'example.test');
});

t.test('property: any DELIVER document becomes well-formed RFC 5322/MIME', async (t) => {
  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 1200 });
  const textish = fc.oneof(printable, fc.constantFrom('line\r\nbreak', 'bare\rcr', 'lf\nonly', '', '   '));
  const scalar = fc.oneof(
    textish.map((s) => ({ type: 'text' as const, data: Buffer.from(s, 'latin1') })),
    fc.uint8Array({ maxLength: 300 }).map((d) => ({ type: 'bitstr' as const, bits: d.length * 8, data: Buffer.from(d) })),
    fc.integer({ min: -5, max: 5 }).map((v) => ({ type: 'integer' as const, value: v })),
  );
  const name = fc.oneof(fc.constantFrom('DATE', 'FROM', 'TO', 'CC', 'SUBJECT', 'SENDER', 'REPLY-TO', 'SALUTATION:', 'X Y', 'Content-Type'), printable.filter((s) => s.length > 0 && s.length < 60));
  const header = fc.array(fc.record({ name, value: scalar }), { maxLength: 12 }).map((pairs) => ({ type: 'proplist' as const, pairs }));
  const item: fc.Arbitrary<Element> = fc.oneof(
    scalar,
    fc.tuple(header, fc.array(scalar, { maxLength: 3 })).map(([h, xs]) => ({ type: 'list' as const, items: [h, ...xs] as Element[] })),
    fc.array(scalar, { maxLength: 3 }).map((xs) => ({ type: 'list' as const, items: xs as Element[] })),
  );
  const body = fc.array(item, { maxLength: 6 }).map((items) => ({ type: 'list' as const, items }));
  await fc.assert(
    fc.asyncProperty(header, body, async (h, b) => {
      const { raw } = impMessageToMime({ ...example1, document: { header: h, body: b } });
      const text = raw.toString('latin1');
      const [head] = text.split('\r\n\r\n', 1);
      if (/[^\x00-\x7f]/.test(text)) return false; // 7-bit throughout
      if (text.split('\r\n').some((l) => l.length > 998)) return false;
      if (/\r(?!\n)|(?<!\r)\n/.test(text)) return false; // CRLF only
      if (!/^Date: /m.test(head!) || !/^From: /m.test(head!)) return false;
      if (!head!.split('\r\n').every((l) => /^[\x21-\x39\x3b-\x7e]+: ?/.test(l) || /^[ \t]+\S/.test(l))) return false;
      const parsed = await simpleParser(raw);
      return parsed.date instanceof Date && !Number.isNaN(parsed.date.getTime());
    }),
    { numRuns: 300 },
  );
  t.pass('300 random documents');
});

t.test('DKIM simple/simple (every byte counts) on an 8-bit, LF-only fixture survives too', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const resolver = async (name: string, type: string) => {
    if (name === 'strict._domainkey.example.test' && type === 'TXT') return [[`v=DKIM1; k=rsa; p=${spki}`]];
    throw Object.assign(new Error(`no record for ${name}`), { code: 'ENOTFOUND' });
  };
  const source = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'mime', 'mailbag__smtputf8-headers.eml'));
  // mailauth reads signatureData at run time; its .d.ts only describes the flat form, which it ignores.
  const signOptions = { signatureData: [{ signingDomain: 'example.test', selector: 'strict', privateKey: pem, canonicalization: 'simple/simple' }] };
  const { signatures } = await dkimSign(source, signOptions as unknown as Parameters<typeof dkimSign>[1]);
  t.match(signatures, /c=simple\/simple/);
  const signed = Buffer.concat([Buffer.from(signatures), source]);
  t.equal((await dkimVerify(signed, { resolver })).results[0]?.status.result, 'pass', 'verifies before');
  const [out] = bagToMime(mimeToBag(signed, { recipients: ['r@example.test'], ihn: IHN, tids: new TidAllocator({ ihn: IHN }) }));
  const after = await dkimVerify(out!.raw, { resolver });
  t.equal(after.results[0]?.status.result, 'pass', 'verifies after MIME -> IMP -> MIME');
  t.ok(out!.raw.equals(signed));
});

t.test('property: a foreign TEXT body reads back as the same text (7bit or quoted-printable)', async (t) => {
  const chars = fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('\r\n', '\n', '\r', '=', ' ', '\t', '\x01', '\x7f'),
  );
  const line = fc.oneof(fc.string({ unit: chars, maxLength: 200 }), fc.string({ unit: chars, minLength: 990, maxLength: 1100 }));
  let qp = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 4 }), async (pieces) => {
      const body = pieces.join('');
      const { raw } = impMessageToMime({ ...example1, document: { header: proplist({ SUBJECT: 's' }), body: { type: 'list', items: [text(body)] } } });
      if (/quoted-printable/.test(raw.toString('latin1'))) qp++;
      if (raw.toString('latin1').split('\r\n').some((l) => l.length > 998)) return false;
      const parsed = await simpleParser(raw);
      // mailparser reports CRLF as LF and drops one final line break
      const want = body.replace(/\r\n|\r|\n/g, '\n');
      return (parsed.text ?? '') === want || (parsed.text ?? '') === want.replace(/\n$/, '');
    }),
    { numRuns: 200 },
  );
  t.ok(qp > 0, `${qp} of 200 needed quoted-printable`);
});
