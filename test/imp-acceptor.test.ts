// The RFC 753 acceptor end to end: a hand-written peer ships DELIVER, PROBE and CANCEL
// bags to a gateway's imp.listen and checks the replies, byte for byte where RFC 753
// Example 2 fixes them.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import {
  cancelCommand,
  decodeBag,
  deliverCommand,
  encodeBag,
  encodeShippingUnit,
  parseNotation,
  printNotation,
  probeCommand,
  proplist,
  readReply,
  textElement,
  type ImpMessage,
  type Element,
} from '../src/imp/index.js';
import { hexListing } from './imp/fixtures/hex-listing.js';
import { impClient } from './helpers/imp-client.js';
import { maildirFiles, tempDir, testConfig, waitFor } from './helpers/gateway.js';

const fixtures = join(import.meta.dirname, 'imp', 'fixtures');
const notation = (name: string) => readFileSync(join(fixtures, `rfc753-${name}.txt`), 'utf8');
const listing = (name: string) => hexListing(readFileSync(join(fixtures, `rfc753-${name}.hex`), 'utf8'));
const DEST_IHN = 167772359;
const RELAY_IHN = 167772246;
const ORIGIN_IHN = 167772404;

async function gateway(t: Test, imp: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<{ gw: Gateway; dir: string; port: number }> {
  const { dir, cleanup } = tempDir('imp-acceptor');
  const gw = await startGateway(
    testConfig(dir, {
      imp: { ihn: DEST_IHN, listen: { host: '127.0.0.1', port: 0 }, ...imp },
      smtp: { localDomains: ['rand-unix', 'example.test'] },
      routes: [
        { domain: 'rand-unix', nexthop: `maildir:${join(dir, 'mailboxes')}` },
        { domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` },
      ],
      ...extra,
    }),
    { pollMs: 50 },
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  return { gw, dir, port: gw.impAddress()!.port };
}

function deliver(tn: number, user: string, opts: { stamp?: number[]; originIhn?: number; body?: string } = {}): ImpMessage {
  const origin = opts.originIhn ?? ORIGIN_IHN;
  return {
    tid: { tn, ihn: origin },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: user }), stamp: opts.stamp ?? [origin] }),
    document: {
      header: proplist({ FROM: 'Jon Postel <postel@isib.example>', SUBJECT: `message ${tn}`, TO: `${user}@example.test` }),
      body: { type: 'list', items: [textElement(opts.body ?? `hello ${tn}\r\n`)] },
    },
  };
}

t.test('Example 2: the DELIVER of view 2 is answered with the ACKNOWLEDGE of view 3, octet for octet', async (t) => {
  const { gw, dir, port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  const view2 = listing('example2-view2');
  t.ok(parseNotation(notation('example2-view2')));
  // The listing is one message; a bag is LIST( message ).
  const bag = Buffer.concat([Buffer.from([7]), u24(view2.length + 2), Buffer.from([0, 1]), view2]);
  await c.send(encodeShippingUnit(bag));
  const unit = await c.unit();
  t.equal(unit.compression, 0, 'answered uncompressed, as it was sent');
  const [ack] = decodeBag(unit.bag);
  t.ok(ack);
  t.equal(ack!.tid.ihn, DEST_IHN, 'the reply tid is ours');
  // Everything but the reply's own transaction number is fixed by the RFC: compare the
  // octets with the tid set to Example 2's 1993.
  const view3 = listing('example2-view3');
  const ours = encodeBag([{ ...ack!, tid: { tn: 1993, ihn: ack!.tid.ihn } }]);
  t.equal(ours.subarray(6).toString('hex'), view3.toString('hex'), 'view 3 octets');
  t.equal(unit.bag.subarray(6, 12).toString('hex'), view3.subarray(0, 6).toString('hex'), 'on the wire: the message header of view 3');
  t.equal(unit.bag.subarray(6 + 6 + 14).toString('hex'), view3.subarray(6 + 14).toString('hex'), 'on the wire: view 3 after the tid');

  // Spooled, recorded and delivered once to the Maildir of DCrocker@rand-unix (filed lower-case).
  const files = await waitFor(() => {
    const f = maildirFiles(join(dir, 'mailboxes'), 'rand-unix', 'dcrocker');
    return f.length ? f : undefined;
  }, 10000, 'maildir delivery');
  t.equal(files.length, 1);
  const text = files[0]!.bytes.toString('utf8');
  t.match(text, /^Received: from ihn 167772404 \(\[127\.0\.0\.1\]\)/, 'a Received: line saying IMP');
  t.match(text, /with IMP id /);
  t.match(text, /Subject: Meeting Thursday/);
  t.match(text, /Please mark your calendar/);
  const qid = /with IMP id ([0-9A-Z]+)/.exec(text)![1]!;
  t.same(gw.store.queue.impOrigin(qid), { tid: { tn: 37, ihn: ORIGIN_IHN }, stamp: [ORIGIN_IHN, RELAY_IHN], peer: '127.0.0.1' }, 'tid and stamp recorded');
  const metrics = await gw.metrics.registry.metrics();
  t.match(metrics, /mailbag_imp_bags_received_total 1/);
  t.match(metrics, /mailbag_imp_replies_total\{operation="DELIVER",answer="yes",error_class="0"\} 1/);
});

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

t.test('a routing loop: our ihn in the stamp is answered no, and nothing is spooled', async (t) => {
  const { gw, port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  await c.send(encodeShippingUnit(encodeBag([deliver(5, 'alice', { stamp: [ORIGIN_IHN, DEST_IHN, RELAY_IHN] })])));
  const [ack] = await c.replies(1);
  const r = readReply(ack!);
  t.equal(r.operation, 'ACKNOWLEDGE');
  t.same(r.tid, { tn: 5, ihn: ORIGIN_IHN });
  t.equal(r.answer, false);
  t.match(r.reasons[0], /routing loop/);
  t.same(r.trail, [ORIGIN_IHN, DEST_IHN, RELAY_IHN, DEST_IHN]);
  t.same(gw.store.queue.list(), [], 'nothing queued');
});

t.test('a bag of several DELIVERs: each answered in order; a bad one gets its own class 3 reply and the rest are delivered', async (t) => {
  const { dir, port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  const good1 = encodeBag([deliver(1, 'alice')]).subarray(6);
  const good3 = encodeBag([deliver(3, 'bob')]).subarray(6);
  // Message 2: a well-framed LIST whose command type is 9 (not 1..4).
  const bad = encodeBag([deliver(2, 'carol')]).subarray(6);
  const badCopy = Buffer.from(bad);
  const typeAt = badCopy.indexOf(Buffer.from([3, 0, 1, 6, 0, 0, 7]));
  t.ok(typeAt > 0, 'found the type INDEX before the operation TEXT');
  badCopy[typeAt + 2] = 9;
  const body = Buffer.concat([good1, badCopy, good3]);
  const bag = Buffer.concat([Buffer.from([7]), u24(body.length + 2), Buffer.from([0, 3]), body]);
  await c.send(encodeShippingUnit(bag));
  const replies = (await c.replies(3)).map(readReply);
  t.same(replies.map((r) => [r.tid.tn, r.answer]), [[1, true], [2, false], [3, true]]);
  t.equal(replies[1]!.error.errorClass, 3);
  t.match(replies[1]!.error.errorString, /^Syntax error, command unrecognized: message\[1\]\.command\.type: command type 9 is not 1\.\.4/);
  t.same(replies[1]!.tid, { tn: 2, ihn: ORIGIN_IHN }, 'the bad message is named by its tid');
  // the two deliveries run in parallel: either may land first
  await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'bob').length === 1, 10000, 'bob');
  await waitFor(() => maildirFiles(join(dir, 'mailboxes'), 'example.test', 'alice').length === 1, 10000, 'alice');
  t.equal(maildirFiles(join(dir, 'mailboxes'), 'example.test', 'carol').length, 0, 'the bad message is not delivered');
});

t.test('PROBE: yes with the address PROPLIST for a local mailbox, no with a reason otherwise', async (t) => {
  const { port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  const probe = (tn: number, host: string, user: string): ImpMessage => ({
    tid: { tn, ihn: ORIGIN_IHN },
    command: probeCommand({ mailbox: proplist({ HOST: host, USER: user }), stamp: [ORIGIN_IHN] }),
  });
  await c.send(encodeShippingUnit(encodeBag([probe(1, 'example.test', 'alice'), probe(2, 'elsewhere.test', 'bob'), probe(3, 'example.test', '../etc')])));
  const replies = await c.replies(3);
  const [yes, otherHost, badUser] = replies.map(readReply);
  t.equal(replies[0]!.command.operation, 'RESPONSE');
  t.equal(replies[0]!.command.type, 2);
  t.equal(yes!.answer, true);
  t.equal(printNotation(yes!.address!).replace(/\s+/g, ' ').trim(), 'PROPLIST( HOST: example.test, USER: alice )');
  t.same(yes!.trail, [ORIGIN_IHN, DEST_IHN]);
  t.same([otherHost!.answer, otherHost!.reasons], [false, ['no such host']]);
  t.same([badUser!.answer, badUser!.reasons], [false, ["Mailbox doesn't exist"]]);
});

t.test('CANCEL: a queued message of that tid is withdrawn (CANCELED yes); unknown or finished: no', async (t) => {
  const { dir } = tempDir('imp-cancel-hop');
  // Route example.test to a next hop that refuses connections, so the message stays queued.
  const { gw, port } = await gateway(t, {}, {
    routes: [{ domain: 'example.test', nexthop: 'smtp://127.0.0.1:1' }],
    queue: { retryInitial: 60000, retryMax: 60000, attemptTimeout: 5000, shutdownGrace: 2000 },
  });
  void dir;
  const c = await impClient(port);
  t.teardown(() => c.close());
  await c.send(encodeShippingUnit(encodeBag([deliver(40, 'alice')])));
  t.equal(readReply((await c.replies(1))[0]!).answer, true);
  const [row] = gw.store.queue.impMessagesByTid({ tn: 40, ihn: ORIGIN_IHN });
  t.ok(row, 'recorded by tid');
  await waitFor(() => gw.store.queue.attempts(row!.qid).length > 0 && gw.queue.inFlight === 0, 10000, 'the first attempt failed');
  const spoolPath = gw.store.queue.message(row!.qid)!.spool_path;
  const cancel = (tn: number, target: number, ihn = ORIGIN_IHN): ImpMessage => ({
    tid: { tn, ihn },
    command: cancelCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ihn], tid: { tn: target, ihn: ORIGIN_IHN } }),
  });
  await c.send(encodeShippingUnit(encodeBag([cancel(41, 40, 99), cancel(42, 40), cancel(43, 40), cancel(44, 777)])));
  const replies = await c.replies(4);
  t.same(replies.map((m) => [m.command.operation, m.command.type]), Array(4).fill(['CANCELED', 4]));
  t.same(replies.map((m) => readReply(m).answer), [false, true, false, false], 'only the originating MPM cancels; once; unknown tid: no');
  t.same(readReply(replies[1]!).tid, { tn: 40, ihn: ORIGIN_IHN });
  t.equal(gw.store.queue.message(row!.qid)!.state, 'done');
  t.same(gw.store.queue.recipients(row!.qid).map((r) => r.state), ['deleted']);
  const { existsSync } = await import('node:fs');
  t.notOk(existsSync(spoolPath), 'spool file removed');
});

t.test('an operation this MPM does not implement: class 2 "Command not implemented", the rest processed', async (t) => {
  const { port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  const other: ImpMessage = { ...deliver(7, 'alice'), command: { ...deliverCommand({ mailbox: proplist({ USER: 'x' }), stamp: [ORIGIN_IHN] }), operation: 'Forward-Later' } };
  delete other.document;
  await c.send(encodeShippingUnit(encodeBag([other, deliver(8, 'alice')]), { compress: true }));
  const unit = await c.unit();
  t.equal(unit.compression, 1, 'a compressed request gets compressed replies');
  const [r1, r2] = decodeBag(unit.bag);
  t.equal(r1!.command.operation, 'Forward-Later');
  t.equal(r1!.command.type, 2);
  const rr = readReply(r1!);
  t.same([rr.tid, rr.answer, rr.error.errorClass, rr.error.errorString], [{ tn: 7, ihn: ORIGIN_IHN }, false, 2, 'Command not implemented']);
  t.equal(readReply(r2!).answer, true);
});
