// The Maildir transport on its own: only ENOENT proves a file absent, the tmp/ entry is
// durable before the delivery name is recorded, replies say what really happened, and
// domains are filed in one normal form. File-system errors are injected through the
// transport's fs seam (tests run as root, whom chmod does not stop).
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseNextHop, type NextHop } from '../src/config/schema.js';
import { MaildirTransport, nodeMaildirFs, type MaildirFs } from '../src/delivery/transports/maildir.js';
import type { DeliveryRequest } from '../src/delivery/transports/transport.js';
import { maildirFiles, tempDir } from './helpers/gateway.js';

const BODY = Buffer.from('From: ann@sender.test\r\nSubject: maildir\r\n\r\nbody\r\n');
const HOST = 'mx.test.invalid';

function setup(t: Test): { root: string; hop: NextHop } {
  const { dir, cleanup } = tempDir('maildir-transport');
  t.teardown(cleanup);
  const root = join(dir, 'mailboxes');
  const hop = parseNextHop(`maildir:${root}`);
  if (typeof hop === 'string') throw new Error(hop);
  return { root, hop };
}

/** A request whose recorded names live in `intents` (the store's delivered_as). */
function request(recipients: string[], intents = new Map<string, string>(), log?: string[]): DeliveryRequest {
  return {
    qid: 'Q0000000000001',
    envelopeFrom: 'ann@sender.test',
    recipients,
    receivedAt: 1_700_000_000_000,
    size: BODY.length,
    openMessage: () => Readable.from([BODY]),
    intendedName: (rcpt) => intents.get(rcpt),
    recordIntent: (rcpt, name) => {
      log?.push(`recordIntent ${name}`);
      intents.set(rcpt, name);
    },
  };
}

const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
const nameFor = (rcpt: string) => MaildirTransport.fileName(request([rcpt]), rcpt, HOST);
const box = (root: string, domain: string, local: string) => join(root, domain, local);

t.test('an EACCES on new/ is not "absent": a recorded name found nowhere it can see defers', async (t) => {
  const { root, hop } = setup(t);
  const rcpt = 'alice@example.test';
  const name = nameFor(rcpt);
  for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(box(root, 'example.test', 'alice'), sub), { recursive: true });
  const fs: Partial<MaildirFs> = {
    async access(path) {
      if (path.includes(`${join('alice', 'new')}`)) throw errno('EACCES');
      return nodeMaildirFs.access(path);
    },
  };
  const res = await new MaildirTransport(HOST, fs).deliver(hop, request([rcpt], new Map([[rcpt, name]])));
  t.equal(res.recipients[0]!.outcome, 'deferred', 'not recorded as delivered');
  t.match(res.recipients[0]!.reply, /^451 4\.3\.0 deferred while checking new\/: EACCES/);
  t.match(res.reply, /^451 4\.3\.0 .*0 of 1 delivered, 1 deferred/);
});

t.test('an EIO on tmp/ defers instead of taking a file stuck in tmp/ for a reader removal', async (t) => {
  const { root, hop } = setup(t);
  const rcpt = 'alice@example.test';
  const name = nameFor(rcpt);
  const b = box(root, 'example.test', 'alice');
  for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(b, sub), { recursive: true });
  writeFileSync(join(b, 'tmp', name), BODY); // recorded, crashed before the rename
  const broken = new MaildirTransport(HOST, {
    async access(path) {
      if (path.includes(`${join('alice', 'tmp')}`)) throw errno('EIO');
      return nodeMaildirFs.access(path);
    },
  });
  const intents = new Map([[rcpt, name]]);
  const first = await broken.deliver(hop, request([rcpt], intents));
  t.equal(first.recipients[0]!.outcome, 'deferred');
  t.match(first.recipients[0]!.reply, /checking tmp\/: EIO/);
  t.same(maildirFiles(root, 'example.test', 'alice'), [], 'nothing in new/ yet');
  // once the disk answers again the rename is redone, and the reply says so
  const second = await new MaildirTransport(HOST).deliver(hop, request([rcpt], intents));
  t.equal(second.recipients[0]!.outcome, 'delivered');
  t.match(second.recipients[0]!.reply, new RegExp(`^250 2\\.0\\.0 delivered as ${name.replace(/\./g, '\\.')} \\(redone the rename from tmp/\\)`));
  t.same(readdirSync(join(b, 'new')), [name]);
});

t.test('an EIO reading cur/ defers instead of delivering a second copy', async (t) => {
  const { root, hop } = setup(t);
  const rcpt = 'alice@example.test';
  const name = nameFor(rcpt);
  const b = box(root, 'example.test', 'alice');
  for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(b, sub), { recursive: true });
  // delivered (renamed) but the name was never recorded, then read by the user
  writeFileSync(join(b, 'cur', `${name}:2,S`), BODY);
  const broken = new MaildirTransport(HOST, {
    async readdir(path) {
      if (path.endsWith(join('alice', 'cur'))) throw errno('EIO');
      return nodeMaildirFs.readdir(path);
    },
  });
  const res = await broken.deliver(hop, request([rcpt]));
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /reading cur\/: EIO/);
  t.equal(maildirFiles(root, 'example.test', 'alice').length, 1, 'still exactly one copy');
  const again = await new MaildirTransport(HOST).deliver(hop, request([rcpt]));
  t.match(again.recipients[0]!.reply, /^250 2\.0\.0 already delivered as .* \(found in cur\/\)/);
  t.equal(maildirFiles(root, 'example.test', 'alice').length, 1, 'still exactly one copy');
});

t.test('a missing cur/ or new/ (ENOENT) is absent: the message is delivered', async (t) => {
  const { root, hop } = setup(t);
  mkdirSync(join(box(root, 'example.test', 'bob'), 'tmp'), { recursive: true });
  const res = await new MaildirTransport(HOST).deliver(hop, request(['bob@example.test']));
  t.equal(res.recipients[0]!.outcome, 'delivered');
  t.match(res.reply, /^250 2\.0\.0 maildir:.*: 1 of 1 delivered: <bob@example\.test> 250 2\.0\.0 delivered as /);
});

t.test('the tmp/ entry is fsync\'d after the file and before the name is recorded', async (t) => {
  const { root, hop } = setup(t);
  const log: string[] = [];
  const rel = (p: string) => p.slice(root.length) || '/';
  const fs: Partial<MaildirFs> = {
    mkdir: async (p) => {
      log.push(`mkdir ${rel(p)}`);
      return nodeMaildirFs.mkdir(p);
    },
    writeFile: async (p, m) => {
      log.push(`writeFile ${rel(p).replace(/[^/]+$/, 'NAME')}`);
      return nodeMaildirFs.writeFile(p, m);
    },
    fsyncDir: async (p) => {
      log.push(`fsyncDir ${rel(p)}`);
      return nodeMaildirFs.fsyncDir(p);
    },
    rename: async (a, b) => {
      log.push(`rename ${rel(a).replace(/[^/]+$/, 'NAME')} -> ${rel(b).replace(/[^/]+$/, 'NAME')}`);
      return nodeMaildirFs.rename(a, b);
    },
  };
  mkdirSync(root);
  const res = await new MaildirTransport(HOST, fs).deliver(hop, request(['carol@example.test'], new Map(), log));
  t.equal(res.recipients[0]!.outcome, 'delivered');
  const tail = log.slice(log.indexOf('writeFile /example.test/carol/tmp/NAME'));
  t.same(
    tail.map((l) => l.replace(/recordIntent .*/, 'recordIntent')),
    [
      'writeFile /example.test/carol/tmp/NAME',
      'fsyncDir /example.test/carol/tmp',
      'recordIntent',
      'rename /example.test/carol/tmp/NAME -> /example.test/carol/new/NAME',
      'fsyncDir /example.test/carol/new',
    ],
    'file, tmp/ entry, name, rename, new/ entry',
  );
  // a new mailbox's directories are durable too: each created directory's parent is fsync'd
  const head = log.slice(0, log.indexOf('writeFile /example.test/carol/tmp/NAME'));
  for (const d of ['/', '/example.test', '/example.test/carol']) t.ok(head.includes(`fsyncDir ${d}`), `parent ${d} fsync'd before the write`);
});

t.test('the attempt reply never claims success for a recipient that was deferred or failed', async (t) => {
  const { root, hop } = setup(t);
  const fs: Partial<MaildirFs> = {
    async writeFile(path, message) {
      if (path.includes(join('full', 'tmp'))) {
        message.resume();
        throw errno('ENOSPC');
      }
      return nodeMaildirFs.writeFile(path, message);
    },
  };
  const res = await new MaildirTransport(HOST, fs).deliver(hop, request(['ok@example.test', 'full@example.test', '.hidden@example.test']));
  t.same(
    res.recipients.map((r) => r.outcome),
    ['delivered', 'deferred', 'failed'],
  );
  t.match(res.recipients[1]!.reply, /^451 4\.3\.0 deferred while writing tmp\/: ENOSPC/);
  t.notMatch(res.reply, /^2/, 'no 2xx overall');
  t.match(res.reply, /^451 4\.3\.0 maildir:.*: 1 of 3 delivered, 1 deferred, 1 failed: <ok@example\.test> 250 2\.0\.0 delivered as \S+; <full@example\.test> 451 4\.3\.0 deferred while writing tmp\/: ENOSPC .*; <\.hidden@example\.test> 550 5\.1\.3 failed: mailbox name not allowed/);
  t.equal(maildirFiles(root, 'example.test', 'full').length, 0);
});

t.test('U-labels and A-labels of one domain are filed in one folder, in A-labels', async (t) => {
  const { root, hop } = setup(t);
  const res = await new MaildirTransport(HOST).deliver(hop, request(['anna@Bücher.example', 'bert@xn--bcher-kva.EXAMPLE']));
  t.same(
    res.recipients.map((r) => r.outcome),
    ['delivered', 'delivered'],
  );
  t.same(readdirSync(root), ['xn--bcher-kva.example']);
  t.same(readdirSync(join(root, 'xn--bcher-kva.example')).sort(), ['anna', 'bert']);
});

t.test('the attempt deadline stops a Maildir delivery: nothing lands after the abort', async (t) => {
  const { root, hop } = setup(t);
  const deadline = new AbortController();
  let releaseWrite!: () => void;
  const writing = new Promise<void>((r) => (releaseWrite = r));
  let writeStarted!: () => void;
  const started = new Promise<void>((r) => (writeStarted = r));
  const calls: string[] = [];
  const fs: Partial<MaildirFs> = {
    // a hung file system (NFS, a dying disk): the write returns only once released
    async writeFile(path, message) {
      calls.push('writeFile');
      writeStarted();
      await writing;
      return nodeMaildirFs.writeFile(path, message);
    },
    async rename(from, to) {
      calls.push('rename');
      return nodeMaildirFs.rename(from, to);
    },
  };
  const intents = new Map<string, string>();
  const delivery = new MaildirTransport(HOST, fs).deliver(hop, { ...request(['alice@example.test', 'bob@example.test'], intents), signal: deadline.signal });
  await started;
  deadline.abort();
  releaseWrite();
  const res = await delivery;
  t.same(res.recipients.map((r) => r.outcome), ['deferred', 'deferred'], 'both deferred: the deadline passed');
  for (const r of res.recipients) t.match(r.reply, /^451 4\.4\.7 /, `${r.rcpt}: the reply names the deadline`);
  t.same(calls, ['writeFile'], 'no rename and no second recipient after the abort');
  t.equal(intents.size, 0, 'no delivery name recorded after the abort');
  t.same(maildirFiles(root, 'example.test', 'alice'), [], 'nothing in new/ or cur/');
  t.match(res.reply, /0 of 2 delivered/, 'the attempt reply says nothing was delivered');
});

t.test('an attempt already past its deadline touches nothing', async (t) => {
  const { root, hop } = setup(t);
  const deadline = new AbortController();
  deadline.abort();
  const res = await new MaildirTransport(HOST).deliver(hop, { ...request(['alice@example.test']), signal: deadline.signal });
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /^451 4\.4\.7 /);
  t.notOk(existsSync(root), 'not even the mailbox was created');
});
