import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import { importFiles } from '../src/cli/pod/import.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { readPayloads, type FilePayload } from '../src/cli/pod/payloads.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { corpusEvents, podFixture, podFixturePath } from './helpers/pod-corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-pod-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** A config with a store of its own, and a runner for it. */
function fresh() {
  const cfg = join(dir, `c${n}.yaml`);
  writeFileSync(cfg, `store: { path: ${JSON.stringify(join(dir, `s${n}.db`))} }\nspool: { dir: ${JSON.stringify(join(dir, `spool${n}`))} }\n`);
  const db = join(dir, `s${n++}.db`);
  return { db, run: (argv: string[], stdin?: string | Buffer) => cli([...argv, '--config', cfg], stdin === undefined ? {} : { stdin }) };
}
const file = (name: string, content: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

const mail = podFixturePath('elastic-test-mail.jsonl');
const message = podFixturePath('elastic-test-message.jsonl');
// The two pretty-printed samples, as a JSON array file.
const others = corpusEvents().filter((c) => !c.source.startsWith('elastic'));
const array = file('others.json', `[\n${others.map((c) => c.payload).join(',\n')}\n]\n`);

t.test('every corpus event imports; importing again stores nothing', async (t) => {
  const { run } = fresh();
  const first = await run(['pod', 'import', mail, message, array]);
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout.toString(), 'read 40, stored 40, duplicates 0, dead-lettered 0\n');
  t.equal(first.stderr, '', 'no progress bar when stderr is not a terminal');
  const again = await run(['pod', 'import', '--json', mail, message, array]);
  t.equal(again.stdout.toString(), '{"read":40,"stored":0,"duplicates":40,"deadLettered":0}\n');
});

t.test('pretty-printed events, as the public samples and `jq .` write them, import as they are', async (t) => {
  const { run } = fresh();
  // The Sumo Logic sample file as published: one event over many lines, starting with a lone '{'.
  const sumo = await run(['pod', 'import', '--json', podFixturePath('sumologic-message-log.json')]);
  t.equal(sumo.code, 0, sumo.stderr);
  t.equal(sumo.stdout.toString(), '{"read":1,"stored":1,"duplicates":0,"deadLettered":0}\n');
  // Several events one after the other (`jq . events.jsonl`), CRLF, a brace inside a string.
  const events = podFixture('elastic-test-mail.jsonl').split('\n').filter(Boolean).slice(0, 3).map((l) => JSON.parse(l) as Record<string, unknown>);
  events[1] = { ...events[1], note: 'a } and a { in a string, and an escaped \\" quote' };
  const pretty = file('pretty.json', events.map((e) => JSON.stringify(e, null, 2)).join('\n').replaceAll('\n', '\r\n') + '\r\n');
  t.equal((await run(['pod', 'import', '--json', pretty])).stdout.toString(), '{"read":3,"stored":3,"duplicates":0,"deadLettered":0}\n');
  t.equal((await run(['pod', 'import', '--json', pretty])).stdout.toString(), '{"read":3,"stored":0,"duplicates":3,"deadLettered":0}\n');
  // An object cut short is one dead letter, not one per line.
  const cut = file('cut.json', `${JSON.stringify(events[0], null, 2)}\n${JSON.stringify(events[2], null, 2).slice(0, 200)}`);
  const r = await run(['pod', 'import', '--json', cut]);
  t.equal(r.stdout.toString(), '{"read":2,"stored":0,"duplicates":1,"deadLettered":1}\n');
  t.match((await run(['pod', 'dead-letters'])).stdout.toString(), /cut\.json:object 2\tERR_POD_JSON\t/);
});

t.test('overlapping files and stdin: only new events are stored', async (t) => {
  const { run } = fresh();
  const lines = podFixture('elastic-test-mail.jsonl').split('\n').filter(Boolean);
  const a = file('a.jsonl', lines.slice(0, 12).join('\n') + '\n');
  const b = file('b.jsonl', lines.slice(6).join('\r\n'));
  t.equal((await run(['pod', 'import', '--json', a])).stdout.toString(), '{"read":12,"stored":12,"duplicates":0,"deadLettered":0}\n');
  t.equal((await run(['pod', 'import', '--json', b])).stdout.toString(), '{"read":12,"stored":6,"duplicates":6,"deadLettered":0}\n', 'CRLF lines, no final newline');
  const viaStdin = await run(['pod', 'import', '--json', '-'], podFixture('elastic-test-mail.jsonl'));
  t.equal(viaStdin.stdout.toString(), '{"read":18,"stored":0,"duplicates":18,"deadLettered":0}\n');
});

t.test('malformed events are dead-lettered with a reason and listed', async (t) => {
  const { run } = fresh();
  const good = podFixture('elastic-test-mail.jsonl').split('\n')[0]!;
  const bad = file('bad.jsonl', `${good}\n\nnot json\n   \n{"x":1}\n{"id":"a","ts":"2024-01-01T00:00:00Z","data":"q1q1q1q1: from=<open","sm":{"qid":"q1q1q1q1"},"pps":{"agent":"a","cid":"c"}}\n`);
  const r = await run(['pod', 'import', bad]);
  t.equal(r.code, 0, 'dead letters are accounted for, not a failure');
  t.equal(r.stdout.toString(), 'read 4, stored 1, duplicates 0, dead-lettered 3\n', 'blank lines are not events');
  t.equal((await run(['pod', 'import', bad])).stdout.toString(), 'read 4, stored 0, duplicates 4, dead-lettered 0\n');
  const list = await run(['pod', 'dead-letters']);
  const rows = list.stdout.toString().trimEnd().split('\n').map((l) => l.split('\t'));
  t.same(
    rows.map((f) => [f[2], f[3]]),
    [
      [`import ${bad}:line 3`, 'ERR_POD_JSON'],
      [`import ${bad}:line 5`, 'ERR_POD_KIND'],
      [`import ${bad}:line 6`, 'ERR_POD_SENDMAIL_LINE'],
    ],
  );
  t.equal(rows[2]![4], "unterminated '<' in from=");
  const json = JSON.parse((await run(['pod', 'dead-letters', '--json', '--limit', '1'])).stdout.toString()) as Record<string, unknown>[];
  t.match(json, [{ id: 1, source: `import ${bad}:line 3`, code: 'ERR_POD_JSON', reason: /^not JSON/, rawBytes: 8, rawTruncated: false, raw: 'not json' }]);
  t.equal((await run(['pod', 'dead-letters', '--limit', '0'])).code, 2);
});

t.test('an event over 1 MiB is stored; the store keeps it whole', async (t) => {
  const { run, db } = fresh();
  const dd = JSON.parse(others.find((c) => c.source.startsWith('datadog'))!.payload) as Record<string, unknown>;
  const big = JSON.stringify({ ...dd, guid: 'big-one', filter: { ...(dd['filter'] as object), qid: 'BIG1' }, padding: 'x'.repeat(1_200_000) });
  const r = await run(['pod', 'import', '--json', file('big.jsonl', big + '\n')]);
  t.equal(r.stdout.toString(), '{"read":1,"stored":1,"duplicates":0,"deadLettered":0}\n');
  const store = Store.open(db);
  t.teardown(() => store.close());
  const stored = JSON.parse(store.pod.messageEventsByQid('BIG1')[0]!.event) as { padding: string };
  t.equal(stored.padding.length, 1_200_000);
});

t.test('oversize lines are streamed past: prefix and hash kept, the next line still read', async (t) => {
  const long = `{"pad":"${'y'.repeat(300 * 1024)}"}`;
  const text = `${long}\n{"a":1}\n`;
  // Delivered in small chunks, as a file stream would.
  const chunks: Buffer[] = [];
  const whole = Buffer.from(text);
  for (let i = 0; i < whole.length; i += 4096) chunks.push(whole.subarray(i, i + 4096));
  const got: FilePayload[] = [];
  for await (const p of readPayloads(Readable.from(chunks), { maxEventBytes: 100 * 1024, maxArrayBytes: 1 << 20 })) got.push(p);
  t.equal(got.length, 2);
  t.equal(got[0]!.totalBytes, Buffer.byteLength(long));
  t.equal(got[0]!.payload.length, 64 * 1024, 'only the dead-letter prefix was kept');
  t.same(got[0]!.oversize, { sha256: createHash('sha256').update(long).digest('hex') }, 'hash of the whole line');
  t.same([got[1]!.payload.toString(), got[1]!.position, got[1]!.oversize], ['{"a":1}', 'line 2', undefined]);

  const store = Store.open(join(dir, 'oversize.db'));
  t.teardown(() => store.close());
  const io = { stdin: Readable.from([]), stdout: new PassThrough(), stderr: new PassThrough(), env: {} };
  const big = file('oversize.jsonl', text.replace('{"a":1}', podFixture('elastic-test-mail.jsonl').split('\n')[0]!));
  const s = await importFiles([big], store.pod, io, { maxEventBytes: 100 * 1024 });
  t.same(s, { read: 2, stored: 1, duplicates: 0, deadLettered: 1 });
  t.match(store.pod.deadLetters(), [{ code: 'ERR_POD_TOO_LARGE', reason: `event of ${Buffer.byteLength(long)} bytes is over the 102400-byte limit`, rawTruncated: true }]);
});

t.test('JSON arrays: parsed whole up to a limit, with a clear error beyond it', async (t) => {
  const store = Store.open(join(dir, 'arrays.db'));
  t.teardown(() => store.close());
  const io = { stdin: Readable.from([]), stdout: new PassThrough(), stderr: new PassThrough(), env: {} };
  await t.rejects(importFiles([array], store.pod, io, { maxArrayBytes: 1000 }), {
    code: 'ERR_POD_IMPORT_FILE',
    message: `${array}: a JSON array file over 1000 bytes is not read whole; write one event per line instead (jq -c '.[]')`,
  });
  t.same(store.pod.counts(), { messages: 0, maillogs: 0, deadLetters: 0 });
  const { run } = fresh();
  const broken = await run(['pod', 'import', file('broken.json', '[{"guid":"x"},')]);
  t.equal(broken.code, 1);
  t.match(broken.stderr, /^mailbag pod import: .*broken\.json: not a JSON array: /);
});

t.test('progress bar only on a terminal', async (t) => {
  const store = Store.open(join(dir, 'tty.db'));
  t.teardown(() => store.close());
  const stderr = Object.assign(new PassThrough(), { isTTY: true, columns: 100, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  const out: Buffer[] = [];
  stderr.on('data', (c: Buffer) => out.push(c));
  const io = { stdin: Readable.from([]), stdout: new PassThrough(), stderr, env: {} };
  const s = await importFiles([mail], store.pod, io);
  t.equal(s.stored, 18);
  t.match(Buffer.concat(out).toString(), /importing \[.*\] 100% \| 15793\/15793 bytes \| 18 events/);
});

t.test('usage and file errors', async (t) => {
  const { run } = fresh();
  t.equal((await run(['pod', 'import'])).code, 2);
  t.equal((await run(['pod', 'import', '-', '-'])).code, 2);
  const missing = await run(['pod', 'import', mail, join(dir, 'nope.jsonl')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read .*nope\.jsonl: ENOENT/);
  t.equal((await run(['pod', 'import', '--json', mail])).stdout.toString(), '{"read":18,"stored":18,"duplicates":0,"deadLettered":0}\n', 'the failed run stored nothing');
  t.match((await run(['pod', 'import', dir])).stderr, /not a file/);
  const help = await cli(['pod', '--help']);
  t.match(help.stdout.toString(), /import .*\n.*dead-letters/);
});

t.test('dead letters: one line each whatever the payload holds, and --json keeps bytes that are not UTF-8', async (t) => {
  const { run, db } = fresh();
  // What a stream can send: a payload over several lines with tabs and a terminal escape, and one that is not UTF-8.
  const multiline = '{\n\t"guid": broken\u001b[31m red';
  const binary = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x0a, 0x7d]);
  const store = Store.open(db);
  store.pod.storeBatch([ingestToBatchItem(multiline, 'pod-msg'), ingestToBatchItem(binary, 'pod-msg')], { source: 'pod-msg' });
  store.close();
  const list = await run(['pod', 'dead-letters']);
  t.equal(list.code, 0, list.stderr);
  const lines = list.stdout.toString().trimEnd().split('\n');
  t.equal(lines.length, 2, 'one line per dead letter');
  for (const line of lines) {
    t.equal(line.split('\t').length, 6, `six tab-separated fields: ${JSON.stringify(line)}`);
    t.notOk(/[\u0000-\u0008\u000b-\u001f\u007f]/.test(line), 'no control characters reach the terminal');
  }
  const json = JSON.parse((await run(['pod', 'dead-letters', '--json'])).stdout.toString()) as Array<{ raw?: string | null; rawBase64?: string; reason: string }>;
  t.equal(json[0]!.raw, multiline, 'a UTF-8 payload is given as text');
  t.match(json[0]!.reason, /\n/, 'the reason is given as it is');
  t.ok(json[1]!.rawBase64 !== undefined && Buffer.from(json[1]!.rawBase64, 'base64').equals(binary), 'bytes that are not UTF-8 are given whole, in base64');
});

t.test('bytes that are not UTF-8 are dead-lettered as they are, whatever the file layout; never stored altered', async (t) => {
  const { run, db } = fresh();
  const good = podFixture('elastic-test-mail.jsonl').split('\n').filter(Boolean).slice(0, 2);
  // The second event with a 0xff byte in its id: JSON, but not UTF-8.
  const bad = Buffer.from(good[1]!.replace(/"id":"[^"]*"/, '"id":"bad-XX-id"')).toString('latin1').replace('XX', '\xff');
  const badBytes = Buffer.from(bad, 'latin1');
  const pretty = Buffer.concat([Buffer.from(JSON.stringify(JSON.parse(good[0]!), null, 2) + '\n'), Buffer.from('{\n'), badBytes.subarray(1), Buffer.from('\n')]);
  const r = await run(['pod', 'import', '--json', file('not-utf8-pretty.json', pretty)]);
  t.equal(r.stdout.toString(), '{"read":2,"stored":1,"duplicates":0,"deadLettered":1}\n', 'pretty-printed: the bad object is a dead letter');
  const array = Buffer.concat([Buffer.from(`[${good[0]},`), badBytes, Buffer.from(']\n')]);
  const a = await run(['pod', 'import', '--json', file('not-utf8.json', array)]);
  t.equal(a.code, 1, 'a JSON array that is not UTF-8 is a bad file');
  t.match(a.stderr, /not UTF-8/);
  const store = Store.open(db);
  t.teardown(() => store.close());
  const ids = (store.db.prepare('SELECT event_id FROM pod_maillog_events').pluck().all() as string[]);
  t.notOk(ids.some((id) => id.includes('\ufffd')), 'no event stored with a replacement character for the bytes it had');
  t.match(store.pod.deadLetters(), [{ code: 'ERR_POD_JSON', reason: /not UTF-8/ }]);
});
