import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBag, proplistGet, textValue } from '../src/imp/index.js';
import { cli } from './helpers/cli.js';
import { fixtureDir } from './helpers/mime-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-imp-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const eml = join(fixtureDir, 'mailparser__mixed.eml');
const original = readFileSync(eml);

t.test('encode FILE with --rcpt, decode from stdin: exact bytes back', async (t) => {
  const enc = await cli(['imp', 'encode', '--rcpt', 'a@example.test', '--ihn', '167772404', '--tn', '37', eml]);
  t.equal(enc.code, 0, enc.stderr);
  const [msg] = decodeBag(enc.stdout);
  t.same(msg!.tid, { tn: 37, ihn: 167772404 });
  t.equal(textValue(proplistGet(msg!.command.mailbox, 'USER')!), 'a');
  const dec = await cli(['imp', 'decode'], { stdin: enc.stdout });
  t.equal(dec.code, 0, dec.stderr);
  t.ok(dec.stdout.equals(original));
});

t.test('--compress writes a basic-compressed shipping unit that decode reads', async (t) => {
  const enc = await cli(['imp', 'encode', '--compress', '--rcpt', 'a@example.test', '--ihn', '1'], { stdin: original });
  t.equal(enc.code, 0, enc.stderr);
  t.equal(enc.stdout[0], 1);
  const file = join(dir, 'c.bag');
  writeFileSync(file, enc.stdout);
  const dec = await cli(['imp', 'decode', file]);
  t.ok(dec.stdout.equals(original));
});

t.test('without --rcpt the recipients come from To/Cc; ihn from the config', async (t) => {
  const cfg = join(dir, 'cfg.yaml');
  writeFileSync(cfg, 'imp:\n  ihn: 42\n');
  const raw = Buffer.from('From: a@b.test\r\nTo: "X, Y" <x@example.test>, y@example.test\r\nCc: z@example.test, x@example.test\r\nSubject: hi\r\n\r\nhello\r\n');
  const enc = await cli(['imp', 'encode', '--config', cfg], { stdin: raw });
  t.equal(enc.code, 0, enc.stderr);
  const msgs = decodeBag(enc.stdout);
  t.same(msgs.map((m) => `${textValue(proplistGet(m.command.mailbox, 'USER')!)}@${textValue(proplistGet(m.command.mailbox, 'HOST')!)}`), ['x@example.test', 'y@example.test', 'z@example.test']);
  t.same(msgs.map((m) => m.tid), [{ tn: 0, ihn: 42 }, { tn: 1, ihn: 42 }, { tn: 2, ihn: 42 }]);
  t.same(msgs[0]!.command.stamp, [42]);

  // several messages: stdout refuses, --out-dir writes TN.eml each
  const refused = await cli(['imp', 'decode'], { stdin: enc.stdout });
  t.equal(refused.code, 2);
  t.match(refused.stderr, /holds 3 messages; use --out-dir/);
  const out = join(dir, 'out');
  const dec = await cli(['imp', 'decode', '--out-dir', out], { stdin: enc.stdout });
  t.equal(dec.code, 0, dec.stderr);
  t.same(readdirSync(out).sort(), ['0.eml', '1.eml', '2.eml']);
  for (const f of readdirSync(out)) t.ok(readFileSync(join(out, f)).equals(raw), f);
  t.equal(dec.stdout.toString(), '0.eml\tx@example.test\n1.eml\ty@example.test\n2.eml\tz@example.test\n');
});

t.test('bad input: no recipients is a usage error; a broken bag names the problem', async (t) => {
  const none = await cli(['imp', 'encode', '--ihn', '1'], { stdin: 'Subject: nobody\n\nx\n' });
  t.equal(none.code, 2);
  t.match(none.stderr, /^mailbag imp encode: no recipients/);
  const badIhn = await cli(['imp', 'encode', '--ihn', 'x', '--rcpt', 'a@b'], { stdin: 'x' });
  t.equal(badIhn.code, 2);
  const trunc = await cli(['imp', 'decode'], { stdin: Buffer.from([7, 0, 0, 9, 3]) });
  t.equal(trunc.code, 1);
  t.match(trunc.stderr, /^mailbag imp decode: ERR_IMP_\w+/);
  t.equal(trunc.stderr.trim().split('\n').length, 1, 'one line');
  // message[1]'s last INTEGER 167772404 (the ihn of its body's share reference) turned into a one-octet TEXT.
  const two = await cli(['imp', 'encode', '--rcpt', 'a@b.test', '--rcpt', 'c@d.test', '--ihn', '167772404', eml]);
  const broken = Buffer.from(two.stdout);
  const at = broken.lastIndexOf(Buffer.from([0x04, 0x0a, 0x00, 0x00, 0xf4]));
  Buffer.from([0x06, 0, 0, 1, 0x58]).copy(broken, at);
  const pathErr = await cli(['imp', 'decode', '--out-dir', join(dir, 'never')], { stdin: broken });
  t.equal(pathErr.code, 1);
  t.match(pathErr.stderr, /^mailbag imp decode: ERR_IMP_MESSAGE at offset \d+ in message\[1\]\.documentList\.bodyList\.tid\.ihn: expected INTEGER, found TEXT\n$/);
  const tight = join(dir, 'tight.yaml');
  writeFileSync(tight, 'imp:\n  maxBagBytes: 100\n');
  const bag = await cli(['imp', 'encode', '--rcpt', 'a@b.test', '--ihn', '1', eml]);
  const limited = await cli(['imp', 'decode', '--config', tight], { stdin: bag.stdout });
  t.equal(limited.code, 1);
  t.match(limited.stderr, /^mailbag imp decode: ERR_IMP_TOO_LARGE/, 'decoder limits come from the config');
  const missing = await cli(['imp', 'decode', join(dir, 'nope.bag')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read/);
});

t.test('--rcpt takes one address, with or without a display name; anything else is a usage error', async (t) => {
  const enc = await cli(['imp', 'encode', '--ihn', '1', '--rcpt', 'Bob <bob@example.test>', '--rcpt', '<ann@example.test>', eml]);
  t.equal(enc.code, 0, enc.stderr);
  const msgs = decodeBag(enc.stdout);
  t.same(
    msgs.map((m) => [textValue(proplistGet(m.command.mailbox, 'USER')!), textValue(proplistGet(m.command.mailbox, 'HOST')!)]),
    [['bob', 'example.test'], ['ann', 'example.test']],
  );
  for (const bad of ['', 'nodomain', 'a@b.test, c@d.test', '@example.test', 'user@']) {
    const r = await cli(['imp', 'encode', '--ihn', '1', '--rcpt', bad, eml]);
    t.equal(r.code, 2, `--rcpt ${JSON.stringify(bad)}`);
    t.match(r.stderr, /^mailbag imp encode: --rcpt .* is not one mail address \(local@domain\)\n$/);
    t.equal(r.stdout.length, 0, 'nothing written');
  }
});

t.test('--out-dir that cannot be created: exit 1 with one line, never a hang', async (t) => {
  const bag = (await cli(['imp', 'encode', '--ihn', '1', '--rcpt', 'a@example.test', eml])).stdout;
  const file = join(dir, 'plain-file');
  writeFileSync(file, 'x');
  const under = await cli(['imp', 'decode', '--out-dir', join(file, 'sub'), '-'], { stdin: bag });
  t.equal(under.code, 1);
  t.match(under.stderr, /^mailbag imp decode: cannot create --out-dir .*: not a directory at .*plain-file\n$/);
  // procfs answers ENOENT to mkdir although the parent exists; Node 20's recursive mkdir loops on that forever
  if (!existsSync('/proc/self')) return t.comment('skipped: no /proc on this system');
  const proc = await cli(['imp', 'decode', '--out-dir', '/proc/mailbag-no-such-dir/out', '-'], { stdin: bag });
  t.equal(proc.code, 1);
  t.match(proc.stderr, /^mailbag imp decode: cannot create --out-dir \/proc\/mailbag-no-such-dir\/out: ENOENT at \/proc\/mailbag-no-such-dir\n$/);
  // an existing directory is fine, even a nested new one
  const nested = join(dir, 'a', 'b', 'c');
  const ok = await cli(['imp', 'decode', '--out-dir', nested, '-'], { stdin: bag });
  t.equal(ok.code, 0, ok.stderr);
  t.ok(readFileSync(join(nested, '0.eml')).equals(original));
});

t.test('--out-dir: a tn repeated by messages from different ihns gets its index, nothing is overwritten', async (t) => {
  const deliver = (tn: number, ihn: number, user: string, subject: string) => `
    LIST( LIST( INDEX=${tn}, INTEGER=${ihn} ),
          LIST( INDEX=0, LIST( PROPLIST( USER: ${user}, HOST: example.test ), LIST( INTEGER=${ihn} ), INDEX=1,
                               TEXT="DELIVER", LIST( LIST( TEXT="REGULAR" ) ), LIST( ) ) ),
          LIST( LIST( INDEX=0, PROPLIST( SUBJECT: "${subject}" ) ), LIST( INDEX=0, LIST( TEXT="hi" ) ) ) )`;
  const bag = await cli(['imp', 'pack'], { stdin: deliver(5, 1, 'ann', 'first') + deliver(5, 2, 'bob', 'second') + deliver(6, 1, 'cy', 'third') });
  t.equal(bag.code, 0, bag.stderr);
  const out = join(dir, 'same-tn');
  const dec = await cli(['imp', 'decode', '--out-dir', out], { stdin: bag.stdout });
  t.equal(dec.code, 0, dec.stderr);
  t.equal(dec.stdout.toString(), '5.eml\tann@example.test\n5-1.eml\tbob@example.test\n6.eml\tcy@example.test\n');
  t.match(readFileSync(join(out, '5.eml'), 'latin1'), /^Subject: first\r$/m);
  t.match(readFileSync(join(out, '5-1.eml'), 'latin1'), /^Subject: second\r$/m);
  t.match(readFileSync(join(out, '6.eml'), 'latin1'), /^Subject: third\r$/m);
});

t.test('--help says where recipients come from', async (t) => {
  const help = await cli(['imp', 'encode', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout.toString(), /without --rcpt the recipients are\s+the addresses in the To and Cc fields/);
  const list = await cli(['imp', '--help']);
  t.match(list.stdout.toString(), /encode .*MIME message/);
  t.match(list.stdout.toString(), /decode .*message-bag to MIME/);
});

t.test('a bag with no DELIVER in it: one line and exit 1 (bad input, not bad usage), with or without --out-dir', async (t) => {
  const empty = Buffer.from('00070000020000', 'hex');
  for (const args of [[], ['--out-dir', join(dir, 'none')]]) {
    const r = await cli(['imp', 'decode', ...args], { stdin: empty });
    t.equal(r.code, 1, args.join(' '));
    t.equal(r.stderr.toString(), 'mailbag imp decode: the bag holds no DELIVER message\n');
    t.equal(r.stdout.length, 0);
  }
});
