import t from 'tap';
import fc from 'fast-check';
import { parseMimeTree, serializeMimeTree, headerValue, type MimeNode } from '../src/mime/tree.js';
import { parseContentType } from '../src/mime/content-type.js';
import { loadFixtures } from './helpers/mime-fixtures.js';

t.test('every fixture serializes back to its exact bytes', async (t) => {
  for (const f of loadFixtures()) t.ok(serializeMimeTree(parseMimeTree(f.raw)).equals(f.raw), f.name);
});

t.test('structure of a multipart with preamble, padding, epilogue', async (t) => {
  const raw = Buffer.from(
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\npre\r\n--b  \r\nX: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepi\r\n',
  );
  const n = parseMimeTree(raw);
  t.equal(n.headerEnd.toString(), '\r\n');
  if (n.body.kind !== 'multipart') throw new Error('not multipart');
  t.equal(n.body.subtype, 'mixed');
  t.equal(n.body.preamble.toString(), 'pre');
  t.same(n.body.parts.map((p) => p.delimiter.toString()), ['\r\n--b  \r\n', '\r\n--b\r\n']);
  const [p1, p2] = n.body.parts;
  t.equal(p1!.node.header[0]!.raw.toString(), 'X: 1\r\n');
  t.same(p1!.node.body, { kind: 'leaf', data: Buffer.from('one') });
  t.equal(p2!.node.header.length, 0);
  t.equal(p2!.node.headerEnd.toString(), '\r\n');
  t.same(p2!.node.body, { kind: 'leaf', data: Buffer.from('two') });
  t.equal(n.body.closeDelimiter?.toString(), '\r\n--b--\r\n');
  t.equal(n.body.epilogue.toString(), 'epi\r\n');
});

t.test('nested multipart missing its close stays inside the outer part', async (t) => {
  const raw = Buffer.from(
    'Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\nin\n--o\n\nlast\n',
  );
  const n = parseMimeTree(raw);
  if (n.body.kind !== 'multipart') throw new Error('not multipart');
  t.equal(n.body.parts.length, 2);
  t.equal(n.body.closeDelimiter, null);
  const inner = n.body.parts[0]!.node.body;
  t.equal(inner.kind, 'multipart');
  if (inner.kind === 'multipart') {
    t.equal(inner.parts.length, 1);
    t.equal(inner.closeDelimiter, null);
  }
  t.same(n.body.parts[1]!.node.body, { kind: 'leaf', data: Buffer.from('last\n') });
  t.ok(serializeMimeTree(n).equals(raw));
});

t.test('message/rfc822 is parsed in place; digest parts default to message/rfc822', async (t) => {
  const raw = Buffer.from(
    'Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\n\nhello\n--d--\n',
  );
  const n = parseMimeTree(raw);
  if (n.body.kind !== 'multipart') throw new Error('not multipart');
  const part = n.body.parts[0]!.node;
  t.equal(part.contentType, 'message/rfc822');
  t.equal(part.body.kind, 'message');
  if (part.body.kind === 'message') t.equal(headerValue(part.body.node, 'subject'), 'inner');
});

t.test('odd input never throws and round-trips', async (t) => {
  const cases = ['', '\n', '\r\n', 'no colon at all', 'A: b', 'A: b\r\n', ':\n\n', '\0\0\0', 'Content-Type: multipart/x; boundary=""\n\n--\n'];
  for (const c of cases) t.ok(serializeMimeTree(parseMimeTree(Buffer.from(c))).equals(Buffer.from(c)), JSON.stringify(c));
});

t.test('property: random MIME-ish bytes round-trip exactly', async (t) => {
  const token = fc.constantFrom(
    'Content-Type: multipart/mixed; boundary=b\n', 'Content-Type: message/rfc822\r\n', 'X: y\r\n', ' folded\n',
    '\n', '\r\n', '--b\n', '--b--\r\n', '--b \r\n', 'text', '\r', '\0', '\xff', ':', 'A:', '\t',
  );
  fc.assert(
    fc.property(fc.array(token, { maxLength: 60 }), (parts) => {
      const raw = Buffer.from(parts.join(''), 'latin1');
      return serializeMimeTree(parseMimeTree(raw)).equals(raw);
    }),
    { numRuns: 2000 },
  );
  t.pass('round-trips');
});

t.test('depth limit keeps deep nesting as a leaf', async (t) => {
  let raw = 'Subject: leaf\n\nx\n';
  for (let i = 0; i < 50; i++) raw = `Content-Type: message/rfc822\n\n${raw}`;
  const buf = Buffer.from(raw);
  let n: MimeNode = parseMimeTree(buf, { maxDepth: 10 });
  let depth = 0;
  while (n.body.kind === 'message') {
    n = n.body.node;
    depth++;
  }
  t.equal(depth, 10);
  t.ok(serializeMimeTree(parseMimeTree(buf)).equals(buf));
});

t.test('content-type parameters incl. RFC 2231', async (t) => {
  const ct = parseContentType('Multipart/Mixed; boundary*0="a"; boundary*1=b; name*=utf-8\'de\'%C3%BCber; x="q\\"uoted"');
  t.equal(ct.type, 'multipart/mixed');
  t.equal(ct.params.get('boundary'), 'ab');
  t.equal(ct.params.get('name'), 'über');
  t.equal(ct.params.get('x'), 'q"uoted');
});

t.test('field and part caps keep huge headers and part counts bounded, still lossless', async (t) => {
  const many = Buffer.from('A: 1\n'.repeat(50) + 'B: 2\n\nbody');
  const n = parseMimeTree(many, { maxHeaderFields: 10 });
  t.equal(n.header.length, 11);
  t.equal(n.header[10]!.name, null);
  t.equal(n.header[10]!.raw.toString(), 'A: 1\n'.repeat(40) + 'B: 2\n');
  t.same(n.body, { kind: 'leaf', data: Buffer.from('body') });
  t.ok(serializeMimeTree(n).equals(many));
  const noEnd = Buffer.from('A: 1\n'.repeat(20));
  t.ok(serializeMimeTree(parseMimeTree(noEnd, { maxHeaderFields: 3 })).equals(noEnd));

  const parts = Buffer.from('Content-Type: multipart/mixed; boundary=b\n\n' + '--b\n\nx\n'.repeat(30) + '--b--\n');
  const p = parseMimeTree(parts, { maxParts: 5 });
  if (p.body.kind !== 'multipart') throw new Error('multipart');
  t.equal(p.body.parts.length, 5);
  t.equal(p.body.closeDelimiter, null, 'the last part holds the rest, close delimiter included');
  t.ok(serializeMimeTree(p).equals(parts));
});

t.test('obsolete whitespace before the colon: name without it, bytes kept', async (t) => {
  const raw = Buffer.from('Subject \t: spaced\r\nX Y: not a field\r\n\r\n');
  const n = parseMimeTree(raw);
  t.same(n.header.map((f) => f.name), ['Subject', null]);
  t.equal(headerValue(n, 'subject'), 'spaced');
  t.ok(serializeMimeTree(n).equals(raw));
});
