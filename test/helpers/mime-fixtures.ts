// The MIME fixture set (test/fixtures/mime) and checks that each fixture really
// covers the categories its MANIFEST line claims.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMimeTree, headerValue, type MimeNode } from '../../src/mime/tree.js';

export const fixtureDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'mime');

export interface Fixture {
  name: string;
  raw: Buffer;
}

/** Every message fixture (the README and MANIFEST are not messages). */
export function loadFixtures(): Fixture[] {
  return readdirSync(fixtureDir)
    .filter((n) => !/^(CORPUS-README\.txt|MANIFEST\.tsv)$/.test(n))
    .sort()
    .map((name) => ({ name, raw: readFileSync(join(fixtureDir, name)) }));
}

/** MANIFEST.tsv: `file<TAB>category,category,...` (lines starting with # are comments). */
export function loadManifest(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(join(fixtureDir, 'MANIFEST.tsv'), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [file, cats = ''] = line.split('\t');
    m.set(file!, cats.split(',').map((c) => c.trim()).filter(Boolean));
  }
  return m;
}

function walk(node: MimeNode, visit: (n: MimeNode) => void): void {
  visit(node);
  if (node.body.kind === 'message') walk(node.body.node, visit);
  else if (node.body.kind === 'multipart') for (const p of node.body.parts) walk(p.node, visit);
}

function nodes(raw: Buffer): MimeNode[] {
  const all: MimeNode[] = [];
  walk(parseMimeTree(raw), (n) => all.push(n));
  return all;
}

const headerBytes = (n: MimeNode) => Buffer.concat(n.header.map((f) => f.raw));
const has8bit = (b: Buffer) => b.some((c) => c >= 0x80);
const cte = (n: MimeNode) => (headerValue(n, 'content-transfer-encoding') ?? '').toLowerCase();

/** Category -> predicate over the fixture bytes. Every category a manifest may claim is here. */
export const categoryChecks: Record<string, (raw: Buffer) => boolean> = {
  mixed: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'mixed'),
  alternative: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'alternative'),
  related: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'related'),
  digest: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'digest'),
  signed: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'signed'),
  report: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.subtype === 'report'),
  rfc822: (r) => nodes(r).some((n) => n.body.kind === 'message'),
  'delivery-status': (r) => nodes(r).some((n) => n.contentType === 'message/delivery-status'),
  rfc2231: (r) => nodes(r).some((n) => n.header.some((f) => /^[^:]*:[^]*\b[a-z-]+\*(\d+\*?)?=/i.test(f.raw.toString('latin1')))),
  base64: (r) => nodes(r).some((n) => cte(n) === 'base64'),
  'quoted-printable': (r) => nodes(r).some((n) => cte(n) === 'quoted-printable'),
  '8bit': (r) => nodes(r).some((n) => n.body.kind === 'leaf' && has8bit(n.body.data)),
  binary: (r) => nodes(r).some((n) => cte(n) === 'binary' && n.body.kind === 'leaf' && n.body.data.includes(0)),
  'encoded-words': (r) => nodes(r).some((n) => /=\?[^?]+\?[bq]\?/i.test(headerBytes(n).toString('latin1'))),
  'non-ascii-header': (r) => nodes(r).some((n) => has8bit(headerBytes(n))),
  smtputf8: (r) => nodes(r).some((n) => has8bit(headerBytes(n)) && Buffer.from(headerBytes(n).toString('utf8'), 'utf8').equals(headerBytes(n))),
  folded: (r) => nodes(r).some((n) => n.header.some((f) => /\n[ \t]/.test(f.raw.toString('latin1')))),
  lf: (r) => r.includes(0x0a) && !r.includes('\r\n'),
  crlf: (r) => r.includes('\r\n'),
  preamble: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && /\S/.test(n.body.preamble.toString('latin1'))),
  epilogue: (r) => nodes(r).some((n) => n.body.kind === 'multipart' && /\S/.test(n.body.epilogue.toString('latin1'))),
  'missing-close': (r) => nodes(r).some((n) => n.body.kind === 'multipart' && n.body.closeDelimiter === null),
  'no-body': (r) => parseMimeTree(r).headerEnd.length === 0,
  'junk-header-line': (r) => nodes(r).some((n) => n.header.some((f) => f.name === null)),
  nul: (r) => r.includes(0),
  'multipart-no-boundary': (r) => nodes(r).some((n) => n.contentType.startsWith('multipart/') && n.body.kind === 'leaf'),
};
const malformedKinds = ['missing-close', 'no-body', 'junk-header-line', 'nul', 'multipart-no-boundary'] as const;
categoryChecks['malformed'] = (r) => malformedKinds.some((k) => categoryChecks[k]!(r));

/** Categories the issue requires the fixture set to cover, each mapped to the checks that satisfy it. */
export const requiredCategories = Object.keys(categoryChecks);
