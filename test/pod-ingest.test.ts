import t from 'tap';
import { ingestPayload, type PodEvent } from '../src/pod/ingest.js';
import { maillogSchema } from '../src/pod/maillog-schema.js';
import { schemaProblem } from '../src/pod/validate.js';
import { corpusEvents, podFixture } from './helpers/pod-corpus.js';

type Obj = Record<string, unknown>;

function ok(payload: string | Buffer, kind?: 'message' | 'maillog'): PodEvent {
  const r = ingestPayload(payload, kind ? { kind } : {});
  if (!r.ok) throw new Error(`expected an event: ${r.code} ${r.reason}`);
  return r.event;
}

const identity = (e: PodEvent) => `${e.eventId}|${e.tsUs}|${e.contentSha256}`;
const corpus = corpusEvents();
const mailLines = corpus.filter((c) => c.source.startsWith('elastic-test-mail')).map((c) => c.payload);

t.test("the maillog schema is the document's, unchanged", async (t) => {
  t.same(maillogSchema, JSON.parse(podFixture('document-maillog-schema.json')));
});

t.test("the document's example validates and round-trips", async (t) => {
  const text = podFixture('document-maillog-example.json');
  const example = JSON.parse(text) as Obj;
  t.equal(schemaProblem('maillog', example), undefined, 'valid against the document schema as printed');
  const ev = ok(text);
  t.equal(ev.kind, 'maillog');
  t.same(ev.event, example, 'normalisation changes nothing in an event already in the document form');
  t.equal(JSON.stringify(ev.event), JSON.stringify(example), 'same members in the same order');
  t.equal(ev.ts.utc, '2017-08-17T21:54:12.949180Z');
  t.equal(ev.eventId, 'ZeYGULpZmL5N0151HN10yA');
  const again = ok(JSON.stringify(ev.event));
  t.equal(identity(again), identity(ev), 'the stored form ingests to the same identity');
  t.equal(identity(ok(Buffer.from(text))), identity(ev), 'a binary frame is the same event');
});

t.test('every public sample event is taken', async (t) => {
  const kinds = { message: 0, maillog: 0 };
  const ids = new Set<string>();
  for (const { source, payload } of corpus) {
    const r = ingestPayload(payload);
    t.ok(r.ok, `${source}: ${r.ok ? '' : r.reason}`);
    if (!r.ok) continue;
    kinds[r.event.kind]++;
    ids.add(identity(r.event));
    if (r.event.kind === 'message') t.ok(r.event.qid && r.event.event['pps'], `${source}: qid and pps`);
    else t.ok(r.event.fields.qid, `${source}: qid`);
  }
  t.same(kinds, { message: 22, maillog: 18 });
  t.equal(ids.size, 40, 'no two samples are the same event (shared guids and ids differ in time or content)');
});

t.test('maillog quirks: numbers as strings, tls{} beside sm{}, pps{} only in metadata', async (t) => {
  const raw = JSON.parse(mailLines[2]!) as { sm: Obj; tls: Obj };
  t.equal(raw.sm['nrcpts'], '1');
  t.match(schemaProblem('maillog', { ...raw, sm: { ...raw.sm, pri: '120812' } }), /\/sm\/pri must be integer/, 'the document schema alone refuses newer events');
  const ev = ok(mailLines[2]!);
  const sm = ev.event['sm'] as Obj;
  t.same([sm['sizeBytes'], sm['nrcpts'], sm['class']], [1557, 1, 0], 'strings became numbers');
  t.same(sm['tls'], raw.tls, 'tls{} under sm as the document has it');
  t.same(ev.event['tls'], raw.tls, 'the top-level copy is kept');
  t.equal((ok(mailLines[1]!).event['sm'] as Obj)['pri'], 120812);

  const noPps = JSON.parse(mailLines[1]!) as Obj;
  delete noPps['pps'];
  const filled = ok(JSON.stringify(noPps));
  t.same(filled.event['pps'], { agent: 'm0000123.ppops.net', cid: 'pphosted_prodmgt_hosted' });
  t.equal(filled.cid, 'pphosted_prodmgt_hosted');

  const bad = JSON.parse(mailLines[1]!) as { sm: Obj };
  bad.sm['pri'] = '12x';
  const r = ingestPayload(JSON.stringify(bad));
  t.same(r, { ok: false, code: 'ERR_POD_NORMALISE', reason: 'sm.pri is "12x", not an integer' });
});

t.test('message quirks: pps{} from metadata.origin.data, isFinal "True"', async (t) => {
  const dd = corpus.find((c) => c.source.startsWith('datadog'))!;
  t.notOk((JSON.parse(dd.payload) as Obj)['pps']);
  const ev = ok(dd.payload);
  t.same(ev.event['pps'], { agent: 'a0072552.ppops.net', cid: 'pod_hosted', version: '8.22.0.1767' });
  t.equal(((ev.event['filter'] as Obj)['actions'] as Obj[])[0]!['isFinal'], true);
  t.equal(ev.ts.utc, '2025-05-11T14:05:02.318134Z');
  if (ev.kind !== 'message') throw new Error('kind');
  t.same(
    [ev.qid, ev.messageId, ev.sid, ev.envelopeFrom, ev.disposition],
    ['11AAa1AA1111111', '111111111111.11AA111A110111@a0011111.abc.net', '11a3aa1aaa', 'netflip@abc.com', 'accept'],
  );
  const sumo = ok(corpus.find((c) => c.source.startsWith('sumologic'))!.payload);
  if (sumo.kind !== 'message') throw new Error('kind');
  t.equal(sumo.messageId, '1581095749241195154.24679.9211199633289683320@tx01.kfront.net', 'angle brackets removed');
});

t.test('identity: a replay is the same event, a different event with the same guid is not', async (t) => {
  const line = mailLines[1]!;
  const ev = ok(line);
  const reordered = Object.fromEntries(Object.entries(JSON.parse(line) as Obj).reverse());
  t.equal(identity(ok(JSON.stringify(reordered, null, 2))), identity(ev), 'other key order and whitespace');
  const otherSpelling = { ...(JSON.parse(line) as Obj), ts: '2024-02-15T05:25:41.855197-07:00' };
  t.equal(identity(ok(JSON.stringify(otherSpelling))), identity(ev), '-07:00 and -0700 are one instant');
  const later = { ...(JSON.parse(line) as Obj), ts: '2024-02-15T05:25:41.855198-0700' };
  t.not(identity(ok(JSON.stringify(later))), identity(ev), 'one microsecond later is another event');

  const messages = corpus.filter((c) => c.source.startsWith('elastic-test-message')).map((c) => ok(c.payload));
  const byGuid = new Map<string, Set<string>>();
  for (const m of messages) byGuid.set(m.eventId, (byGuid.get(m.eventId) ?? new Set()).add(identity(m)));
  t.ok([...byGuid.values()].some((s) => s.size > 1), 'the samples reuse guids for different events');
  const first = JSON.parse(corpus.find((c) => c.source === 'elastic-test-message.jsonl:1')!.payload) as { filter: Obj };
  const sameGuidSameTs = JSON.stringify({ ...first, filter: { ...first.filter, disposition: 'discard' } });
  const a = ok(corpus.find((c) => c.source === 'elastic-test-message.jsonl:1')!.payload);
  const b = ok(sameGuidSameTs);
  t.equal(a.eventId, b.eventId);
  t.equal(a.tsUs, b.tsUs);
  t.not(a.contentSha256, b.contentSha256, 'same guid and ts, other content: two events');
});

t.test('malformed events get a reason, never an exception', async (t) => {
  const doc = JSON.parse(podFixture('document-maillog-example.json')) as Obj;
  for (const [payload, code, reason] of [
    ['not json', 'ERR_POD_JSON', /^not JSON: /],
    ['[1,2]', 'ERR_POD_JSON', /expected a JSON object, got an array/],
    ['null', 'ERR_POD_JSON', /got object/],
    [Buffer.from([0x7b, 0xff, 0x7d]), 'ERR_POD_JSON', /not UTF-8/],
    ['{"x":1}', 'ERR_POD_KIND', /neither a message event/],
    [JSON.stringify({ ...doc, ts: 'yesterday' }), 'ERR_POD_TIME', /'yesterday' is not an ISO 8601 time/],
    [JSON.stringify({ ...doc, id: undefined }), 'ERR_POD_SCHEMA', /maillog event: \(event\) must have required property 'id'/],
    [JSON.stringify({ ...doc, sm: { ...(doc['sm'] as Obj), to: 'x@y' } }), 'ERR_POD_SCHEMA', /\/sm\/to must be array/],
    [JSON.stringify({ ...doc, data: 'v7HLqYbx029423: from=<open@example.com, size=1' }), 'ERR_POD_SENDMAIL_LINE', /unterminated '<' in from=/],
    [JSON.stringify({ guid: 'g', ts: '2024-01-01T00:00:00Z' }), 'ERR_POD_SCHEMA', /message event: \(event\) must have required property 'connection'/],
  ] as const) {
    const r = ingestPayload(payload);
    t.equal(r.ok, false, String(payload).slice(0, 60));
    if (r.ok) continue;
    t.equal(r.code, code);
    t.match(r.reason, reason);
  }
  const deep = JSON.stringify(doc).replace(/}$/, `,"deep":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
  t.match(ingestPayload(deep), { ok: false, code: 'ERR_POD_JSON', reason: /^nested too deeply to process/ }, 'no stack overflow escapes');
  const asMessage = ingestPayload(podFixture('document-maillog-example.json'), { kind: 'message' });
  t.match(asMessage, { ok: false, code: 'ERR_POD_SCHEMA' }, "a stream's type is enforced");
});

t.test('events over 1 MiB are taken; only the configured limit dead-letters', async (t) => {
  const dd = JSON.parse(corpus.find((c) => c.source.startsWith('datadog'))!.payload) as Obj;
  const part = JSON.parse(podFixture('elastic-test-message.jsonl').split('\n')[6]!) as { msgParts: Obj[] };
  const big = JSON.stringify({ ...dd, msgParts: [{ ...part.msgParts[0]!, dataBase64: 'A'.repeat(1_500_000) }] });
  t.ok(big.length > 1024 * 1024);
  t.equal(ok(big).kind, 'message', 'a 1.5 MiB event is an event');
  const r = ingestPayload(big, { maxEventBytes: 1024 * 1024 });
  t.match(r, { ok: false, code: 'ERR_POD_TOO_LARGE', reason: /event of \d+ bytes is over the 1048576-byte limit/ });
});

t.test('canonical JSON: key order and whitespace do not matter, "__proto__" is content', async (t) => {
  const { canonicalJson } = await import('../src/pod/json.js');
  t.equal(canonicalJson(JSON.parse('{"b":[{"y":1,"x":"2"}],"a":null}')), '{"a":null,"b":[{"x":"2","y":1}]}');
  t.equal(canonicalJson(JSON.parse('{ "a" : null , "b":[ {"x":"2","y":1} ] }')), canonicalJson(JSON.parse('{"b":[{"y":1,"x":"2"}],"a":null}')));
  t.not(canonicalJson(JSON.parse('{"__proto__":{"a":1}}')), canonicalJson(JSON.parse('{"__proto__":{"a":2}}')));
});

t.test('canonical JSON is the text the first implementation wrote, so stored identities still match', async (t) => {
  const { canonicalJson, canonicalJsonPair } = await import('../src/pod/json.js');
  // The first implementation: a sorted copy (null prototype) written by JSON.stringify.
  type V = null | boolean | number | string | V[] | { [k: string]: V };
  const sortedCopy = (v: V): V => {
    if (typeof v !== 'object' || v === null) return v;
    if (Array.isArray(v)) return v.map(sortedCopy);
    const out = Object.create(null) as { [k: string]: V };
    for (const k of Object.keys(v).sort()) out[k] = sortedCopy(v[k]!);
    return out;
  };
  const first = (v: V) => JSON.stringify(sortedCopy(v));
  const tricky = [
    '{"10":1,"2":2,"b":3,"a":{"1":0,"01":1,"-1":2},"4294967295":4,"4294967294":5}',
    '{"__proto__":{"z":1,"a":[1,{"y":"\u2028","x":"é"}]},"constructor":null}',
    '{"b":1.5e300,"a":-0,"c":[true,false,null,"\\"quoted\\""]," ":0,"":1}',
  ];
  const cases = [...corpus, ...tricky.map((payload, i) => ({ source: `tricky ${i}`, payload }))];
  for (const { source, payload } of cases) {
    const v = JSON.parse(payload) as { [k: string]: V };
    t.equal(canonicalJson(v), first(v), source);
    const rest = Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'ts'));
    t.same(canonicalJsonPair(v, 'ts'), { full: first(v), without: first(rest) }, `${source} without ts`);
  }
});
