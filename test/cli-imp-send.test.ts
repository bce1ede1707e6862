// `mailbag imp send` against a scripted peer: prints the ACKNOWLEDGEs, exit 0 on yes,
// exit 1 with the reason on no or when no answer comes, exit 2 on usage errors.
import t from 'tap';
import { startImpPeer } from './helpers/imp-peer.js';
import { cli } from './helpers/cli.js';
import { join } from 'node:path';
import { startGateway } from '../src/gateway/gateway.js';
import { maildirFiles, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';
import { mailboxAddress } from '../src/imp/mime/from-imp.js';

const MESSAGE = 'From: ann@sender.test\r\nSubject: by hand\r\n\r\nsent with imp send\r\n';

t.test('imp send ships one bag and prints each ACKNOWLEDGE', async (t) => {
  const peer = await startImpPeer();
  const { dir, cleanup } = tempDir('imp-send');
  t.teardown(async () => {
    await peer.close();
    cleanup();
  });
  const cfg = writeTestConfig(dir, { imp: { ihn: 167772404 } });
  peer.fallback = (_m, rcpt) => (rcpt.startsWith('nobody') ? { answer: false, reasons: ['no such user'] } : { answer: true, reasons: ['OK'] });

  const ok = await cli(['imp', 'send', '--config', cfg, '--peer', `127.0.0.1:${peer.port}`, '--to', 'dave@far.test', '--from', 'ann@sender.test'], { stdin: MESSAGE });
  t.equal(ok.code, 0, ok.stderr);
  const out = ok.stdout.toString();
  t.match(out, /TEXT="ACKNOWLEDGE"/);
  t.match(out, /LIST\(\s*INDEX=0,\s*INTEGER=167772404\s*\)/, 'the tid of our DELIVER (tn 0, our ihn)');
  t.match(out, /BOOLEAN=TRUE/);
  t.match(out, /INTEGER=167772404,\s*INTEGER=167772359/, 'the trail: our stamp plus the peer');
  t.equal(peer.bags.length, 1);
  t.same(peer.bags[0]!.messages.map((m) => mailboxAddress(m.command.mailbox, 'mailbox')), ['dave@far.test']);
  t.same(peer.bags[0]!.messages[0]!.command.stamp, [167772404]);

  const no = await cli(['imp', 'send', '--config', cfg, '--peer', `127.0.0.1:${peer.port}`, '--to', 'dave@far.test', '--to', 'nobody@far.test'], { stdin: MESSAGE });
  t.equal(no.code, 1);
  t.match(no.stderr, /<nobody@far\.test>: ACKNOWLEDGE no: no such user/);
  t.notMatch(no.stderr, /dave/);
  t.equal((no.stdout.toString().match(/TEXT="ACKNOWLEDGE"/g) ?? []).length, 2, 'both ACKNOWLEDGEs printed');
  t.same(peer.bags[1]!.messages.map((m) => m.tid.tn), [1, 2], 'the next tns from the store');
  t.same(peer.bags[1]!.messages[1]!.shared, { header: peer.bags[1]!.messages[0]!.tid, body: peer.bags[1]!.messages[0]!.tid }, 'one document');

  peer.scripts.push('drop');
  const dropped = await cli(['imp', 'send', '--config', cfg, '--peer', `127.0.0.1:${peer.port}`, '--to', 'dave@far.test'], { stdin: MESSAGE });
  t.equal(dropped.code, 1);
  t.match(dropped.stderr, /closed the connection before acknowledging \(1 of 1 not acknowledged\)/);

  const compressed = await cli(['imp', 'send', '--config', cfg, '--compress', '--peer', `127.0.0.1:${peer.port}`, '--to', 'dave@far.test'], { stdin: MESSAGE });
  t.equal(compressed.code, 0);
  t.equal(peer.bags[3]!.wire[0], 1, 'compression type 1 on the wire');
});

t.test('imp send usage errors exit 2', async (t) => {
  t.equal((await cli(['imp', 'send', '--to', 'a@b.test'])).code, 2, 'no --peer');
  t.equal((await cli(['imp', 'send', '--peer', 'h:1'])).code, 2, 'no --to');
  t.equal((await cli(['imp', 'send', '--peer', 'nohost', '--to', 'a@b.test'])).code, 2, 'bad --peer');
  t.equal((await cli(['imp', 'send', '--peer', 'h:1', '--to', 'not-an-address'])).code, 2, 'bad --to');
});

t.test('imp send to the gateway of its own config: the loop names the cause, --ihn sends as another MPM', async (t) => {
  const { dir, cleanup } = tempDir('imp-send-self');
  const imp = { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 } };
  const gw = await startGateway(testConfig(dir, { imp }), { pollMs: 50 });
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const cfg = writeTestConfig(dir, { imp });
  const peer = `127.0.0.1:${gw.impAddress()!.port}`;
  const looped = await cli(['imp', 'send', '--config', cfg, '--peer', peer, '--to', 'dave@example.test', '--to', 'erin@example.test'], { stdin: MESSAGE });
  t.equal(looped.code, 1);
  t.match(looped.stderr, /<dave@example\.test>: ACKNOWLEDGE no: routing loop/);
  t.match(looped.stderr, /<erin@example\.test>: ACKNOWLEDGE no: routing loop/, 'every refused recipient is named, not only the first');
  t.match(looped.stderr, /the peer has this config's imp\.ihn \(167772359\): pass --ihn N/, 'says why and what to do');

  const sent = await cli(['imp', 'send', '--config', cfg, '--ihn', '167772404', '--peer', peer, '--to', 'dave@example.test'], { stdin: MESSAGE });
  t.equal(sent.code, 0, sent.stderr);
  t.match(sent.stdout.toString(), /INTEGER=167772404,\s*INTEGER=167772359/, 'the trail: the given ihn plus the gateway');
  const files = await waitFor(() => {
    const f = maildirFiles(join(dir, 'mailboxes'), 'example.test', 'dave');
    return f.length ? f : undefined;
  });
  t.equal(files.length, 1);
  t.equal((await cli(['imp', 'send', '--ihn', 'x', '--peer', peer, '--to', 'a@b.test'])).code, 2, 'bad --ihn');
});
