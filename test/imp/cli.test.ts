import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli } from '../helpers/cli.js';
import { decodeBag, decodeElement, decodeShippingUnit, elementsEqual, encodeElement, parseNotation } from '../../src/imp/index.js';
import { hexListing } from './fixtures/hex-listing.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const example1Text = readFileSync(join(fixtures, 'rfc753-example1.txt'), 'utf8');
const example1 = hexListing(readFileSync(join(fixtures, 'rfc753-example1.hex'), 'utf8'));
const view3Text = readFileSync(join(fixtures, 'rfc753-example2-view3.txt'), 'utf8');
const bagOfExample1 = encodeElement({ type: 'list', items: [decodeElement(example1)] });

t.test('pack: notation of one message -> a bag holding it', async (t) => {
  const r = await cli(['imp', 'pack'], { stdin: example1Text });
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout, bagOfExample1);
});

t.test('pack: several messages, a hand-written share, and --compress', async (t) => {
  const share = `
    LIST( LIST( INDEX=38, INTEGER=167772404 ),
          LIST( INDEX=1, LIST( INDEX=37, INTEGER=167772404 ) ),
          LIST( LIST( INDEX=1, LIST( INDEX=37, INTEGER=167772404 ) ),
                LIST( INDEX=1, LIST( INDEX=37, INTEGER=167772404 ) ) ) )`;
  const r = await cli(['imp', 'pack'], { stdin: example1Text + share + view3Text });
  t.equal(r.code, 0, r.stderr);
  const msgs = decodeBag(r.stdout);
  t.equal(msgs.length, 3);
  t.same(msgs[1]!.shared, { command: msgs[0]!.tid, header: msgs[0]!.tid, body: msgs[0]!.tid });
  t.equal(msgs[2]!.command.operation, 'ACKNOWLEDGE');

  const c = await cli(['imp', 'pack', '--compress'], { stdin: example1Text + share + view3Text });
  t.equal(c.code, 0);
  t.equal(c.stdout[0], 1, 'compression type 1');
  t.same(decodeShippingUnit(c.stdout).bag, r.stdout, 'the unit holds the same bag');
  const d = await cli(['imp', 'dump'], { stdin: c.stdout });
  t.equal(d.code, 0, d.stderr);
  t.match(d.stdout.toString(), /^# shipping unit at offset 0, basic compression: \d+ octets, bag of \d+ octets, 3 message\(s\)\n/);
});

t.test('dump: a bare bag from a FILE, and pack reads the dump back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-imp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bag.imp');
  writeFileSync(file, bagOfExample1);
  const r = await cli(['imp', 'dump', file]);
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  t.match(out, /^# message-bag, 434 octets, 1 message\(s\)\n/);
  t.match(out, /LIST\( LIST\( LIST\( INDEX=37, INTEGER=167772404 \),/);
  t.match(out, /HOST: rand-unix,/);
  t.ok(elementsEqual(parseNotation(out), decodeElement(bagOfExample1)));
  const back = await cli(['imp', 'pack'], { stdin: out });
  t.same(back.stdout, bagOfExample1, 'dump | pack gives the same octets');
});

t.test('dump: an uncompressed shipping unit says so', async (t) => {
  const unit = (await cli(['imp', 'pack', '--unit'], { stdin: example1Text })).stdout;
  t.equal(unit[0], 0);
  const r = await cli(['imp', 'dump'], { stdin: unit });
  t.match(r.stdout.toString(), /^# shipping unit at offset 0, no compression: 435 octets, bag of 434 octets/);
});

t.test('bad input: exit 1 with one line naming code and offset', async (t) => {
  const r = await cli(['imp', 'dump'], { stdin: bagOfExample1.subarray(0, 12) });
  t.equal(r.code, 1);
  t.equal(r.stderr, 'mailbag imp dump: ERR_IMP_TRUNCATED at offset 0: LIST needs 434 octets, input ends after 12\n');
  const r2 = await cli(['imp', 'dump'], { stdin: Buffer.from('hello') });
  t.equal(r2.code, 1);
  t.match(r2.stderr, /^mailbag imp dump: input starts with octet 104 101: not a message-bag/);
  const r3 = await cli(['imp', 'pack'], { stdin: 'LIST( INDEX=70000 )' });
  t.equal(r3.code, 1);
  t.match(r3.stderr, /^mailbag imp pack: ERR_IMP_NOTATION at offset 6 \(line 1\): INDEX 70000 is outside 0\.\.65535\n$/);
  const r4 = await cli(['imp', 'pack'], { stdin: 'LIST( LIST( INDEX=1, INTEGER=2 ), LIST( INDEX=1, LIST( INDEX=9, INTEGER=9 ) ), LIST( ) )' });
  t.equal(r4.code, 1);
  t.match(r4.stderr, /^mailbag imp pack: ERR_IMP_SHARE_REF at offset \d+ in message\[0\]\.commandList\.tid: /);
  t.equal((await cli(['imp', 'pack', '--raw'], { stdin: 'INDEX=5' })).stdout.toString('hex'), '030005');
  const r5 = await cli(['imp', 'dump', '--width', 'x']);
  t.equal(r5.code, 2, 'a bad option value is a usage error');
  t.equal(r5.stderr, 'mailbag imp dump: --width must be an integer >= 20, got x\n');
  t.equal((await cli(['imp', 'pack', '--compress', '--unit'])).code, 2);
  t.equal((await cli(['imp', 'dump', 'a', 'b'])).code, 2);
  const missing = await cli(['imp', 'dump', join(tmpdir(), 'mailbag-no-such-file.imp')]);
  t.equal(missing.code, 1);
});

t.test('limits come from the config file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-imp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'mailbag.yaml');
  writeFileSync(config, 'imp:\n  maxDepth: 4\n');
  const r = await cli(['imp', 'dump', '--config', config], { stdin: bagOfExample1 });
  t.equal(r.code, 1);
  t.match(r.stderr, /ERR_IMP_TOO_DEEP at offset \d+: nesting deeper than 4/);
});
