import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import t from 'tap';
import type { CliIO } from '../src/cli/command.js';
import { runCli } from '../src/cli/main.js';
import { startGateway } from '../src/gateway/gateway.js';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { maildirFiles, startSink, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';
import { batch, maillogPair, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-trace-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function fresh() {
  const db = join(dir, `s${n}.db`);
  const cfg = join(dir, `c${n}.yaml`);
  writeFileSync(cfg, `store: { path: ${JSON.stringify(db)} }\nspool: { dir: ${JSON.stringify(join(dir, `spool${n++}`))} }\n`);
  return { db, cfg, run: (argv: string[]) => cli([...argv, '--config', cfg]) };
}

const T0 = Date.parse('2026-11-30T09:12:00Z');

function addMessage(store: Store, qid: string, at: number, header: string): void {
  store.queue.insertMessage({ qid, receivedAt: at, envelopeFrom: 'alice@sender.test', size: 900, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), clientAddress: '198.51.100.2', recipients: ['bob@example.test'] });
  store.correlation.recordMessageKeys({ qid, receivedAt: at, keys: extractCorrelationKeys(header), envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: '198.51.100.2', size: 900 });
}

t.test('bad input: one clear line and the right exit code', async (t) => {
  const { db, run } = fresh();
  const missing = await run(['trace', '0MBQ7ZK2T4H1A']);
  t.same([missing.code, missing.stderr], [1, `mailbag trace: no store at ${db} (has the gateway run with this config?)\n`], 'missing store');

  writeFileSync(db, '');
  const empty = await run(['trace', '0MBQ7ZK2T4H1A']);
  t.equal(empty.code, 1, 'an empty file is not a store');
  t.match(empty.stderr, /^mailbag trace: store .* is empty \(no schema yet\): has the gateway run with this config\?\n$/);
  rmSync(db);

  Store.open(db).close();
  const unknown = await run(['trace', '0MBQ7ZK2T4H1A']);
  t.same([unknown.code, unknown.stderr, unknown.stdout.toString()], [1, 'mailbag trace: nothing found for 0MBQ7ZK2T4H1A\n', ''], 'an unknown key');
  const forced = await run(['trace', 'nobody@example.test', '--by', 'message-id']);
  t.same([forced.code, forced.stderr], [1, 'mailbag trace: nothing found for message-id nobody@example.test\n']);

  for (const [argv, message] of [
    [['trace'], 'expected one KEY (a qid, upstream qid, Message-ID or guid)'],
    [['trace', 'a', 'b'], 'expected one KEY (a qid, upstream qid, Message-ID or guid)'],
    [['trace', '  '], 'KEY is empty'],
    [['trace', 'x', '--by', 'sender'], '--by must be one of qid, upstream, message-id, guid, not "sender"'],
  ] as const) {
    const r = await run([...argv]);
    t.same([r.code, r.stderr], [2, `mailbag trace: ${message}\n`], argv.join(' '));
  }
});

t.test('a reused Message-ID: every match, newest first; --by forces the kind', async (t) => {
  const { db, run } = fresh();
  const store = Store.open(db);
  const h = 'Message-ID: <weekly@sender.test>\r\nSubject: x\r\n\r\n';
  addMessage(store, '0MBQ7ZK2T4H1A', T0, h);
  addMessage(store, '0MBQ7ZK2T4H1B', T0 + 7 * 24 * 3600_000, h);
  store.close();
  const r = await run(['trace', 'weekly@Sender.test', '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString()) as { by: string; matches: { mailbagQids: string[] }[] };
  t.equal(j.by, 'message-id');
  t.same(j.matches.map((m) => m.mailbagQids), [['0MBQ7ZK2T4H1B'], ['0MBQ7ZK2T4H1A']]);
  const text = await run(['trace', '<weekly@sender.test>']);
  t.match(text.stdout.toString(), /^match 1 of 2 for message-id <weekly@sender.test> \(newest first\)\nmailbag +0MBQ7ZK2T4H1B\n/);
  const wrongKind = await run(['trace', '0MBQ7ZK2T4H1A', '--by', 'upstream']);
  t.equal(wrongKind.code, 1, 'a qid asked for as an upstream qid is not found');
});

t.test('an upstream message discarded before sendmail: its verdict alone, found by guid and by its <sid>-<n> qid', async (t) => {
  const { db, run } = fresh();
  const store = Store.open(db);
  store.pod.storeBatch(
    batch([messageEvent({ guid: 'Zx9discardGUID0000000000000000aa', qid: '3y8abcd123-1', sid: '3y8abcd123', at: T0, disposition: 'discard', finalAction: 'discard', finalRule: 'virus_discard', virusNames: ['Eicar-Test-Signature'] })]),
    { source: 'test' },
  );
  store.close();
  for (const key of ['Zx9discardGUID0000000000000000aa', '3y8abcd123-1']) {
    const r = await run(['trace', key]);
    t.equal(r.code, 0, r.stderr);
    const out = r.stdout.toString();
    t.match(out, /^mailbag +\(no mailbag message: not delivered to mailbag, or not yet recorded\)\nupstream +3y8abcd123-1\n/);
    t.match(out, /verdict discard, final action discard/);
    t.match(out, /virus Eicar-Test-Signature/);
    t.notMatch(out, /maillog/);
  }
});

t.test('colour only on a terminal, and never with NO_COLOR', async (t) => {
  const { db, cfg } = fresh();
  const store = Store.open(db);
  addMessage(store, '0MBQ7ZK2T4H1A', T0, 'Subject: x\r\n\r\n');
  store.close();
  const run = async (env: NodeJS.ProcessEnv) => {
    const stdout = Object.assign(new PassThrough(), { isTTY: true });
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const io: CliIO = { stdin: Readable.from([]), stdout, stderr: new PassThrough(), env };
    t.equal(await runCli(['trace', '0MBQ7ZK2T4H1A', '--config', cfg], io), 0);
    return Buffer.concat(chunks).toString();
  };
  t.match(await run({}), /\x1b\[32mmailbag  0MBQ7ZK2T4H1A\x1b\[39m/);
  t.notMatch(await run({ NO_COLOR: '1' }), /\x1b\[/);
});

t.test('a bounce links back to its message: trace by either qid shows both', async (t) => {
  const { dir: gwDir, cleanup } = tempDir('trace-bounce');
  const sink = await startSink();
  const overrides = {
    smtp: { trustedNetworks: ['127.0.0.0/8'] },
    routes: [
      { domain: 'example.test', nexthop: `maildir:${join(gwDir, 'mailboxes')}` },
      { domain: 'remote.test', nexthop: `smtp://127.0.0.1:${sink.port}` },
    ],
  };
  const gw = await startGateway(testConfig(gwDir, overrides), { pollMs: 30 });
  const cfg = writeTestConfig(gwDir, overrides);
  t.teardown(async () => {
    await gw.stop();
    await sink.close();
    cleanup();
  });
  sink.rcptReply.set('bob@remote.test', { code: 550, message: '5.1.1 no such user here' });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@example.test', to: ['bob@remote.test'] }, raw: 'From: ann@example.test\r\nMessage-ID: <b1@example.test>\r\nSubject: s\r\n\r\nbody\r\n' });
  client.close();
  const qid = /queued as (\w+)/.exec(info.response as string)![1]!;
  await waitFor(() => maildirFiles(join(gwDir, 'mailboxes'), 'example.test', 'ann')[0], 5000, 'the bounce delivered');
  const bounceQid = await waitFor(() => gw.store.correlation.derived(qid)[0]?.qid, 5000, 'the bounce recorded');
  await waitFor(() => gw.store.queue.attempts(bounceQid).length > 0, 5000, 'the bounce attempt recorded');
  for (const key of [qid, bounceQid]) {
    const r = await cli(['trace', key, '--json', '--config', cfg]);
    t.equal(r.code, 0, r.stderr);
    const m = (JSON.parse(r.stdout.toString()) as { matches: { mailbagQids: string[]; origins: unknown[]; timeline: { id: string; kind: string; title: string }[] }[] }).matches;
    t.equal(m.length, 1);
    t.same(m[0]!.mailbagQids, [qid, bounceQid].sort());
    t.same(m[0]!.origins, [{ qid: bounceQid, originQid: qid, kind: 'bounce' }]);
    const steps = m[0]!.timeline.map((e) => `${e.id === qid ? 'original' : 'bounce'} ${e.kind}`);
    t.same(steps, ['original received', 'original attempt', 'bounce generated', 'bounce attempt'], `by ${key === qid ? 'the original' : 'the bounce'}`);
  }
});

t.test('80 columns even for a token longer than a continuation line (a long Message-ID)', async (t) => {
  const { db, run } = fresh();
  const store = Store.open(db);
  const longId = `${'1716405734681339795.108109.574101123456786866'}@user2.example.net`;
  addMessage(store, '0MX3LONGID000', T0, `Message-ID: <${longId}>\r\nSubject: x\r\n\r\n`);
  store.close();
  const r = await run(['trace', '0MX3LONGID000']);
  t.equal(r.code, 0, r.stderr);
  const text = r.stdout.toString();
  t.same(text.split('\n').filter((l) => l.length > 80), [], 'no line over 80 columns');
  t.match(text.replace(/\n\s+/g, ''), longId, 'the whole Message-ID is there, cut across lines');
});
