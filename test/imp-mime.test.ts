import t from 'tap';
import { decodeBag, decodeElement, encodeBag, encodeElement, type Element, type ImpMessage, type ProplistElement } from '../src/imp/index.js';
import { mimeToImpMessages, mimeToImpDocument, recipientMailbox } from '../src/imp/mime/to-imp.js';
import { impMessageToMime } from '../src/imp/mime/from-imp.js';
import { bagToMime, mimeToBag } from '../src/imp/mime/bag.js';
import { TidAllocator } from '../src/imp/mime/tid-allocator.js';
import { LINES, MORE } from '../src/imp/mime/carriage.js';
import { loadFixtures } from './helpers/mime-fixtures.js';

const IHN = 167772404;
const tids = () => new TidAllocator({ ihn: IHN, start: 37 });
const fixtures = loadFixtures();
const fixture = (name: string) => fixtures.find((f) => f.name === name)!.raw;

const pairText = (pl: ProplistElement, name: string) => {
  const v = pl.pairs.find((p) => p.name === name)?.value;
  return v && (v.type === 'text' || v.type === 'bitstr') ? Buffer.from(v.data).toString('latin1') : undefined;
};

t.test('byte identity: every fixture, MIME -> bag bytes -> MIME', async (t) => {
  for (const f of fixtures) {
    const bag = mimeToBag(f.raw, { recipients: ['a@example.test', 'b@example.test'], ihn: IHN, tids: tids() });
    const out = bagToMime(bag);
    t.equal(out.length, 2, `${f.name}: one message per recipient`);
    t.ok(out[0]!.raw.equals(f.raw), `${f.name}: first recipient's copy is byte-identical`);
    t.ok(out[1]!.raw.equals(f.raw), `${f.name}: shared copy is byte-identical`);
    t.same(out.map((m) => m.recipient), ['a@example.test', 'b@example.test']);
  }
});

t.test('byte identity through a basic-compressed shipping unit', async (t) => {
  for (const f of fixtures.filter((_, i) => i % 5 === 0)) {
    const unit = mimeToBag(f.raw, { recipients: ['a@example.test'], ihn: IHN, tids: tids(), compress: true });
    t.equal(unit[0], 1, 'compression type 1');
    t.ok(bagToMime(unit)[0]!.raw.equals(f.raw), f.name);
  }
});

t.test('DELIVER command per recipient, as the issue specifies', async (t) => {
  const msgs = mimeToImpMessages(fixture('mailbag__rfc2231-params.eml'), {
    recipients: ['<dcrocker@rand-unix.example>', 'ops@[10.0.0.1]'], ihn: IHN, tids: tids(), envelopeFrom: 'postel@isib.example',
  });
  t.same(msgs.map((m) => m.tid), [{ tn: 37, ihn: IHN }, { tn: 38, ihn: IHN }]);
  const c = msgs[0]!.command;
  t.same(c.stamp, [IHN]);
  t.equal(c.type, 1);
  t.equal(c.operation, 'DELIVER');
  t.equal(encodeElement(c.arguments).toString('hex'), encodeElement({ type: 'list', items: [{ type: 'list', items: [{ type: 'text', data: Buffer.from('REGULAR') }] }] }).toString('hex'));
  t.same(c.errorList.items, []);
  t.equal(pairText(c.mailbox, 'USER'), 'dcrocker');
  t.equal(pairText(c.mailbox, 'HOST'), 'rand-unix.example');
  const ia = msgs[1]!.command.mailbox.pairs.find((p) => p.name === 'IA')?.value;
  t.same(ia, { type: 'integer', value: 0x0a000001 });
  t.equal(msgs[0]!.document, msgs[1]!.document, 'one document object for all recipients');
  const back = impMessageToMime(msgs[1]!);
  t.equal(back.recipient, 'ops@[10.0.0.1]');
  t.equal(back.envelopeFrom, 'postel@isib.example');
});

t.test('document header: recommended objects for plain readers, raw fields after the marker', async (t) => {
  const doc = mimeToImpDocument(fixture('mailbag__related-nested-rfc822.eml'));
  const names = doc.header.pairs.map((p) => p.name);
  t.same(names.slice(0, 5), ['DATE', 'FROM', 'TO', 'SUBJECT', 'MAILBAG-MIME']);
  t.equal(pairText(doc.header, 'DATE'), '2026-11-25-10:11:12,000+05:30');
  t.equal(pairText(doc.header, 'FROM'), 'Related <related@example.test>');
  t.same(names.slice(5), ['From', 'To', 'Subject', 'Date', 'MIME-Version', 'Content-Type', ':eoh']);
  t.equal(pairText(doc.header, 'Date'), ' Wed, 25 Nov 2026 10:11:12 +0530\r\n', 'raw value keeps its space and CRLF');
  // body: one multipart LIST whose frame names the subtype and boundary
  const mp = doc.body.items[0];
  if (mp?.type !== 'list' || mp.items[0]?.type !== 'proplist') throw new Error('expected multipart LIST');
  t.equal(pairText(mp.items[0], 'MULTIPART'), 'mixed');
  t.equal(pairText(mp.items[0], 'BOUNDARY'), 'mix');
  const part = mp.items[3];
  if (part?.type !== 'list' || part.items[0]?.type !== 'proplist') throw new Error('expected part LIST');
  t.equal(pairText(part.items[0], 'Content-Type'), ' multipart/related; boundary="rel"; type="text/html"\r\n');
});

t.test('non-ASCII headers: raw bytes in BITSTR, RFC 2047 words in the presented TEXT', async (t) => {
  const raw = fixture('mailbag__smtputf8-headers.eml');
  const doc = mimeToImpDocument(raw);
  const from = doc.header.pairs.find((p) => p.name === 'FROM')!.value;
  t.equal(from.type, 'text');
  const fromText = pairText(doc.header, 'FROM')!;
  t.match(fromText, /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=/);
  t.notOk(/[^\x00-\x7f]/.test(fromText), '7-bit');
  const decoded = fromText.replace(/=\?UTF-8\?B\?([^?]*)\?=\s*/g, (_, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
  t.match(decoded, /Jürgen Müller/);
  const rawFrom = doc.header.pairs.find((p) => p.name === 'From')!.value;
  t.equal(rawFrom.type, 'bitstr');
  t.equal(Buffer.from((rawFrom as { data: Uint8Array }).data).toString('utf8'), ' Jürgen Müller <jürgen@bücher.example>\n');
  // 8-bit body leaf is a BITSTR
  t.equal(doc.body.items[0]?.type, 'bitstr');
  // SMTPUTF8 recipient round-trips through USER/HOST BITSTRs
  const mailbox = recipientMailbox('收件人@例子.测试');
  t.same(mailbox.pairs.map((p) => [p.name, p.value.type]), [['HOST', 'bitstr'], ['USER', 'bitstr']]);
  const [m] = mimeToImpMessages(raw, { recipients: ['收件人@例子.测试'], ihn: IHN, tids: tids(), envelopeFrom: 'jürgen@bücher.example' });
  const back = bagToMime(encodeBag([m!]))[0]!;
  t.equal(back.recipient, '收件人@例子.测试');
  t.equal(back.envelopeFrom, 'jürgen@bücher.example');
  t.ok(back.raw.equals(raw));
});

t.test('large bodies are split across consecutive BITSTR elements', async (t) => {
  const payload = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 131 + (i >> 9)) & 0xff;
  const raw = Buffer.concat([Buffer.from('Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), payload]);
  const doc = mimeToImpDocument(raw);
  t.equal(doc.body.items.length, 3);
  for (const el of doc.body.items) {
    t.equal(el.type, 'bitstr');
    if (el.type === 'bitstr') t.ok(el.data.length <= 2097151 && el.bits === el.data.length * 8);
  }
  const back = bagToMime(mimeToBag(raw, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }))[0]!;
  t.ok(back.raw.equals(raw));
});

t.test('a message too large for a bag is refused with an error that says so', async (t) => {
  const huge = Buffer.concat([Buffer.from('Subject: huge\n\n'), Buffer.alloc(17 * 1024 * 1024, 0x41)]);
  t.throws(() => mimeToBag(huge, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }), {
    name: 'ImpError', code: 'ERR_IMP_TOO_LARGE', message: /too large for an IMP message bag/,
  });
  // Just under the raw limit, but the element overhead pushes the bag over it.
  const edge = Buffer.concat([Buffer.from('Subject: edge\n\n'), Buffer.alloc(16_777_215 - 40, 0x41)]);
  t.throws(() => mimeToBag(edge, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }), {
    name: 'ImpError', code: 'ERR_IMP_TOO_LARGE', message: /IMP message bag/,
  });
});

t.test('long header fields and more than 255 fields still round-trip', async (t) => {
  const long = 'X-Long: ' + Array.from({ length: 9000 }, (_, i) => `token${i}`).join('\r\n ') + '\r\n';
  const many = Array.from({ length: 600 }, (_, i) => `Received: hop ${i}\r\n`).join('');
  const raw = Buffer.from(`From: a@b.test\r\n${long}${many}Subject: after\r\n\r\nbody\r\n`);
  const doc = mimeToImpDocument(raw);
  t.ok(doc.header.pairs.length <= 255, `${doc.header.pairs.length} pairs`);
  t.ok(doc.header.pairs.some((p) => p.name === MORE), 'long field continued in :more pairs');
  t.ok(doc.header.pairs.some((p) => p.name === LINES), 'fields beyond the pair budget carried as :lines');
  t.equal(pairText(doc.header, 'SUBJECT'), 'after');
  const back = bagToMime(mimeToBag(raw, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }))[0]!;
  t.ok(back.raw.equals(raw));
});

t.test('sharing: a 50-recipient 1 MiB message is < 1% larger than a 1-recipient one', async (t) => {
  const body = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = 0x41 + (i % 26);
  const raw = Buffer.concat([Buffer.from('From: a@b.test\r\nTo: list@b.test\r\nSubject: big\r\n\r\n'), body]);
  const rcpts = Array.from({ length: 50 }, (_, i) => `user${i}@example.test`);
  const one = mimeToBag(raw, { recipients: rcpts.slice(0, 1), ihn: IHN, tids: tids() });
  const fifty = mimeToBag(raw, { recipients: rcpts, ihn: IHN, tids: tids() });
  t.ok(fifty.length < one.length * 1.01, `${fifty.length} vs ${one.length} octets (+${(((fifty.length - one.length) / one.length) * 100).toFixed(3)}%)`);
  const decoded = decodeBag(fifty);
  t.equal(decoded.length, 50);
  t.same(decoded[49]!.shared, { header: { tn: 37, ihn: IHN }, body: { tn: 37, ihn: IHN } });
  const out = bagToMime(fifty);
  t.ok(out.every((m, i) => m.raw.equals(raw) && m.recipient === rcpts[i]));
});

t.test('structure errors name the element path', async (t) => {
  const raw = fixture('mailparser__mixed.eml');
  const msgs = mimeToImpMessages(raw, { recipients: ['a@b.test', 'b@b.test', 'c@b.test'], ihn: IHN, tids: tids() });
  // Third message's stamp holds a TEXT instead of an INTEGER: the codec names the path.
  const bag = encodeBag(msgs, { sharing: 'none' });
  const bad = Buffer.from(bag);
  const stampPos = bad.lastIndexOf(Buffer.from([0x04, 0x0a, 0x00, 0x00, 0xf4])); // INTEGER 167772404: message[2]'s stamp
  t.ok(stampPos > 0);
  Buffer.from([0x06, 0, 0, 1, 0x58]).copy(bad, stampPos); // TEXT "X", same width: still well-formed elements
  t.throws(() => bagToMime(bad), { name: 'ImpError', code: 'ERR_IMP_MESSAGE', path: /^message\[2\]\.command\.stamp/ });
  // A carriage body that is not TEXT/BITSTR/LIST: our own path.
  const broken: ImpMessage = { ...msgs[0]!, document: { ...msgs[0]!.document!, body: { type: 'list', items: [{ type: 'integer', value: 5 } as Element] } } };
  t.throws(() => bagToMime(encodeBag([broken])), { name: 'ImpError', code: 'ERR_IMP_MESSAGE', path: 'message[0].document.body[0]' });
  const notDeliver: ImpMessage = { ...msgs[0]!, command: { ...msgs[0]!.command, operation: 'PROBE' } };
  t.throws(() => impMessageToMime(notDeliver, 'message[4]'), { name: 'ImpError', path: 'message[4].command.operation' });
  const noUser: ImpMessage = { ...msgs[0]!, command: { ...msgs[0]!.command, mailbox: { type: 'proplist', pairs: [] } } };
  t.throws(() => impMessageToMime(noUser), /mailbox has no USER/);
});

t.test('decoded element trees (views of the bag) rebuild the same bytes as the originals', async (t) => {
  const raw = fixture('postal-mime__mimetorture.eml');
  const doc = mimeToImpDocument(raw);
  const header = decodeElement(encodeElement(doc.header)) as ProplistElement;
  const body = decodeElement(encodeElement(doc.body));
  if (body.type !== 'list') throw new Error('body');
  const [m] = mimeToImpMessages(raw, { recipients: ['a@b.test'], ihn: IHN, tids: tids() });
  t.ok(impMessageToMime({ ...m!, document: { header, body } }).raw.equals(raw));
});

t.test('mutated bags give a MIME message or a typed ImpError, never anything else', async (t) => {
  const { default: fc } = await import('fast-check');
  const { ImpError } = await import('../src/imp/index.js');
  const bags = ['mailbag__rfc2231-params.eml', 'mailbag__related-nested-rfc822.eml', 'cpython__msg_02.txt'].map((n) =>
    mimeToBag(fixture(n), { recipients: ['a@b.test', 'c@d.test'], ihn: IHN, tids: tids() }),
  );
  let errors = 0;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: bags.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (which, edits) => {
      const bag = Buffer.from(bags[which]!);
      for (const [pos, byte] of edits) bag[pos % bag.length] = byte;
      try {
        for (const m of bagToMime(bag)) if (!Buffer.isBuffer(m.raw)) return false;
      } catch (err) {
        errors++;
        if (!(err instanceof ImpError)) throw err;
      }
      return true;
    }),
    { numRuns: 3000 },
  );
  t.ok(errors > 0, `${errors} of 3000 mutations rejected with ImpError, the rest converted`);
});

t.test('pathological structure (200k header lines, 100k parts) converts quickly and exactly', async (t) => {
  const lines = Buffer.from('X-A: b\r\n'.repeat(200_000) + '\r\nbody\r\n');
  const parts = Buffer.from('Content-Type: multipart/mixed; boundary=b\n\n' + '--b\n'.repeat(100_000) + '--b--\n');
  for (const raw of [lines, parts]) {
    const started = Date.now();
    const out = bagToMime(mimeToBag(raw, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }))[0]!;
    t.ok(out.raw.equals(raw), `round trip in ${Date.now() - started} ms`);
  }
});

t.test('mutated carriage trees give MIME or a typed ImpError naming a path', async (t) => {
  const { default: fc } = await import('fast-check');
  const { ImpError } = await import('../src/imp/index.js');
  const [base] = mimeToImpMessages(fixture('mailbag__related-nested-rfc822.eml'), { recipients: ['a@b.test'], ihn: IHN, tids: tids() });
  const replacements: Element[] = [
    { type: 'integer', value: 7 },
    { type: 'list', items: [] },
    { type: 'text', data: Buffer.from('x') },
    { type: 'bitstr', bits: 5, data: Buffer.from([0xf8]) },
    { type: 'proplist', pairs: [{ name: ':frame', value: { type: 'boolean', value: true } }] },
    { type: 'proplist', pairs: [{ name: ':more', value: { type: 'text', data: Buffer.from('y') } }] },
    { type: 'proplist', pairs: [] },
    { type: 'nop' },
  ];
  // Replace the n-th element (pre-order) of a copy of the tree.
  const replaceNth = (el: Element, n: { left: number }, by: Element): Element => {
    if (n.left-- === 0) return by;
    if (el.type === 'list') return { ...el, items: el.items.map((c) => replaceNth(c, n, by)) };
    if (el.type === 'proplist') return { ...el, pairs: el.pairs.map((p) => ({ ...p, value: replaceNth(p.value, n, by) })) };
    return el;
  };
  let rejected = 0;
  fc.assert(
    fc.property(fc.boolean(), fc.nat(400), fc.constantFrom(...replacements), (inHeader, n, by) => {
      const doc = base!.document!;
      const header = inHeader ? replaceNth(doc.header, { left: n }, by) : doc.header;
      const body = inHeader ? doc.body : replaceNth(doc.body, { left: n }, by);
      if (header.type !== 'proplist' || body.type !== 'list') return true;
      try {
        return Buffer.isBuffer(impMessageToMime({ ...base!, document: { header, body } }).raw);
      } catch (err) {
        rejected++;
        if (!(err instanceof ImpError) || !err.path?.startsWith('message.document')) throw err;
        return true;
      }
    }),
    { numRuns: 2000 },
  );
  t.ok(rejected > 0, `${rejected} of 2000 mutated trees rejected with a path`);
});

t.test('a field with whitespace before its colon is presented and rebuilt exactly', async (t) => {
  const raw = Buffer.from('Subject \t: spaced out\r\nFrom: a@b.test\r\n\r\nbody\r\n');
  const doc = mimeToImpDocument(raw);
  t.equal(pairText(doc.header, 'SUBJECT'), 'spaced out');
  t.equal(pairText(doc.header, ':raw'), 'Subject \t: spaced out\r\n');
  t.ok(bagToMime(mimeToBag(raw, { recipients: ['x@y.test'], ihn: IHN, tids: tids() }))[0]!.raw.equals(raw));
});

t.test('property: any bytes at all are carried losslessly, MIME -> bag -> MIME', async (t) => {
  const { default: fc } = await import('fast-check');
  const token = fc.oneof(
    fc.constantFrom(
      'Content-Type: multipart/mixed; boundary=b\r\n', 'Content-Type: message/rfc822\n', 'Content-Type: multipart/digest; boundary="b"\n',
      'Subject: x\r\n', 'Date: Thu, 29 Mar 1979 11:46:00 -0800\n', ' folded\r\n', '\r\n', '\n', '--b\r\n', '--b--\n', '--b \n', ':', '\r', '\0',
    ),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  fc.assert(
    fc.property(fc.array(token, { maxLength: 40 }), (parts) => {
      const raw = Buffer.from(parts.join(''), 'latin1');
      return bagToMime(mimeToBag(raw, { recipients: ['a@b.test'], ihn: IHN, tids: tids() }))[0]!.raw.equals(raw);
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random inputs');
});
