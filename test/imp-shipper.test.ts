// The IMP shipper against a scripted peer: bags on the wire (sharing by tid, basic
// compression), ACKNOWLEDGE answers mapped to outcomes, connection loss, batching, tns.
import t, { type Test } from 'tap';
import { parseNextHop, type NextHop } from '../src/config/schema.js';
import { decompressBasic } from '../src/imp/compression.js';
import { ImpTransport } from '../src/imp/shipper/transport.js';
import { TnAllocator } from '../src/imp/shipper/tn-allocator.js';
import type { DeliveryResult, HopBusy } from '../src/delivery/transports/transport.js';
import { isHopBusy } from '../src/delivery/transports/transport.js';
import { bagToMime } from '../src/imp/mime/bag.js';
import { startImpPeer, type ImpPeer } from './helpers/imp-peer.js';
import { memoryRequest } from './helpers/next-hop.js';

const OUR_IHN = 167772404;
const MARKER = 'Please mark your calendar for our meeting Thursday at 3 pm.';
const BODY = Buffer.from(
  `From: Jon Postel <postel@isib.test>\r\nTo: many@example.test\r\nSubject: Meeting Thursday\r\nDate: Thu, 29 Mar 1979 11:46:00 -0800\r\n\r\nDave:\r\n\r\n${MARKER}\r\n${`${'-'.repeat(72)}\r\n`.repeat(20)}\r\n--jon.\r\n`,
);

function transport(t: Test, opts: { tns?: TnAllocator; compress?: boolean; idleTimeoutMs?: number } = {}) {
  const events: string[] = [];
  const tr = new ImpTransport({
    tns: opts.tns ?? new TnAllocator({ ihn: OUR_IHN }),
    compress: opts.compress ?? false,
    maxBagBytes: 16_777_219,
    maxBagMessages: 1000,
    maxConnections: 2,
    connectTimeoutMs: 5000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 5000,
    events: {
      shipped: (e) => events.push(`shipped ${e.messages}`),
      acknowledged: (e) => events.push(`ack ${e.answer}`),
    },
  });
  t.teardown(() => tr.close());
  return { tr, events };
}

function impHop(url: string, compress?: boolean): NextHop {
  const hop = parseNextHop(url);
  if (typeof hop === 'string' || hop.kind !== 'imp') throw new Error(hop as string);
  if (compress !== undefined) hop.compress = compress;
  return hop;
}

function attempted(r: DeliveryResult | HopBusy): DeliveryResult {
  if (isHopBusy(r)) throw new Error('unexpected busy');
  return r;
}

async function peer(t: Test): Promise<ImpPeer> {
  const p = await startImpPeer();
  t.teardown(() => p.close());
  return p;
}

/** Non-overlapping occurrences of `needle` in `hay`. */
function count(hay: Buffer, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

const fifty = Array.from({ length: 50 }, (_, i) => `user${i}@example.test`);

t.test('a 50-recipient message is one bag with the document once, shared by tid', async (t) => {
  const p = await peer(t);
  const { tr } = transport(t);
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(fifty, BODY)));
  t.equal(res.recipients.length, 50);
  t.ok(res.recipients.every((r) => r.outcome === 'delivered'), 'every recipient acknowledged yes');
  t.match(res.recipients[0]!.reply, /^250 2\.0\.0 IMP ACKNOWLEDGE yes \(OK; ACCEPT\) trail 167772404,167772359$/);
  t.equal(p.connections, 1, 'one connection');
  t.equal(p.bags.length, 1, 'one bag');
  const bag = p.bags[0]!;
  t.equal(bag.wire[0], 0, 'compression type 0: not compressed');
  t.equal(bag.wire.length, bag.unit.bag.length + 1, 'the wire holds the type octet and the bag');
  t.equal(count(bag.wire, MARKER), 1, 'the body text is on the wire once');
  t.equal(count(bag.wire, 'Meeting Thursday'), 2, 'the header once (presentation SUBJECT and raw Subject)');
  t.equal(bag.messages.length, 50);
  const first = bag.messages[0]!;
  t.same(first.shared ?? {}, {}, 'the first message carries its document');
  for (const m of bag.messages.slice(1)) {
    t.same(m.shared, { header: first.tid, body: first.tid }, `tn ${m.tid.tn} shares header and body with tn ${first.tid.tn}`);
  }
  t.same(bag.messages.map((m) => m.tid.tn), Array.from({ length: 50 }, (_, i) => i), 'tns sequential from 0');
  t.ok(bag.messages.every((m) => m.tid.ihn === OUR_IHN), 'our ihn in every tid');
  t.same(first.command.stamp, [OUR_IHN], 'the stamp holds our ihn');
  t.same(bag.messages.map((m) => m.command.operation), Array(50).fill('DELIVER'));
  // The peer gets the message back byte for byte, for every recipient.
  const mime = bagToMime(Buffer.from(bag.unit.bag));
  t.same(mime.map((m) => m.recipient), fifty);
  t.ok(mime.every((m) => m.raw.equals(BODY) && m.envelopeFrom === 'ann@sender.test'), 'identical message and envelope sender');
});

t.test('basic compression on the wire when the route asks for it (and imp.compress as default)', async (t) => {
  const p = await peer(t);
  const plain = transport(t);
  attempted(await plain.tr.deliver(impHop(p.url), memoryRequest(fifty, BODY)));
  const route = transport(t);
  attempted(await route.tr.deliver(impHop(p.url, true), memoryRequest(fifty, BODY)));
  const byDefault = transport(t, { compress: true });
  attempted(await byDefault.tr.deliver(impHop(p.url), memoryRequest(fifty, BODY)));
  const off = transport(t, { compress: true });
  attempted(await off.tr.deliver(impHop(p.url, false), memoryRequest(fifty, BODY)));
  t.equal(p.bags.length, 4);
  const [raw, compressed, dflt, overridden] = p.bags as [typeof p.bags[0], typeof p.bags[0], typeof p.bags[0], typeof p.bags[0]];
  t.equal(raw.wire[0], 0);
  t.equal(compressed.wire[0], 1, 'compression type 1: basic');
  t.equal(dflt.wire[0], 1, 'imp.compress applies to a route that does not say');
  t.equal(overridden.wire[0], 0, 'a route saying compress: false wins over imp.compress');
  t.ok(compressed.wire.length < raw.wire.length, `compressed ${compressed.wire.length} < plain ${raw.wire.length} octets`);
  t.same(decompressBasic(compressed.wire.subarray(1)), raw.unit.bag, 'the same bag once decompressed');
  t.equal(count(Buffer.from(compressed.unit.bag), MARKER), 1, 'the document once in the compressed bag too');
});

t.test('answer no: failed with its reason; yes: delivered; error class 2/4: deferred', async (t) => {
  const p = await peer(t);
  p.fallback = (_msg, rcpt) =>
    rcpt.startsWith('nobody')
      ? { answer: false, reasons: ['no such user'] }
      : rcpt.startsWith('busy')
        ? { answer: false, reasons: ['server error'], error: { errorClass: 4, errorString: 'Server error, try again later' } }
        : { answer: true, reasons: ['OK'] };
  const { tr, events } = transport(t);
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(['ok@example.test', 'nobody@example.test', 'busy@example.test'], BODY)));
  const by = Object.fromEntries(res.recipients.map((r) => [r.rcpt, r]));
  t.equal(by['ok@example.test']!.outcome, 'delivered');
  t.equal(by['nobody@example.test']!.outcome, 'failed');
  t.equal(by['nobody@example.test']!.reply, '550 5.1.1 IMP ACKNOWLEDGE no: no such user trail 167772404,167772359');
  t.equal(by['busy@example.test']!.outcome, 'deferred');
  t.match(by['busy@example.test']!.reply, /^451 4\.3\.0 IMP ACKNOWLEDGE no: server error \[error 4: Server error, try again later\]/);
  t.match(res.reply, /^451 4\.3\.0 imp:\/\/127\.0\.0\.1:\d+: 1 of 3 delivered, 1 deferred, 1 failed/);
  t.same(events.sort(), ['ack no', 'ack no', 'ack yes', 'shipped 3']);
});

t.test('connection dropped before the ACKNOWLEDGEs: deferred, and the next attempt ships again', async (t) => {
  const p = await peer(t);
  p.scripts.push('drop');
  const tns = new TnAllocator({ ihn: OUR_IHN });
  const { tr, events } = transport(t, { tns });
  const first = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test'], BODY)));
  t.same(first.recipients.map((r) => r.outcome), ['deferred', 'deferred']);
  t.match(first.recipients[0]!.reply, /^451 4\.4\.2 IMP peer 127\.0\.0\.1:\d+ closed the connection before acknowledging$/);
  t.equal(tns.awaiting, 0, 'the lost bag no longer holds its tns');
  const second = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test'], BODY)));
  t.same(second.recipients.map((r) => r.outcome), ['delivered', 'delivered']);
  t.equal(p.bags.length, 2, 're-shipped');
  t.same(p.bags[1]!.messages.map((m) => m.tid.tn), [2, 3], 'fresh tns, in sequence');
  t.same(events, ['shipped 2', 'ack none', 'ack none', 'shipped 2', 'ack yes', 'ack yes']);
});

t.test('a partly answered bag: answered recipients keep their answer, the silent ones are deferred', async (t) => {
  const p = await peer(t);
  p.scripts.push((_m, rcpt) => (rcpt.startsWith('a') ? { answer: true } : 'silent'));
  const { tr } = transport(t, { idleTimeoutMs: 300 });
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test'], BODY)));
  t.same(res.recipients.map((r) => r.outcome), ['delivered', 'deferred']);
  t.match(res.recipients[1]!.reply, /^451 4\.4\.2 IMP peer .* sent no ACKNOWLEDGE for 300 ms$/);
});

t.test('no peer listening: deferred with the connection error', async (t) => {
  const p = await startImpPeer();
  const url = p.url;
  await p.close();
  const { tr } = transport(t);
  const res = attempted(await tr.deliver(impHop(url), memoryRequest(['a@example.test'], BODY)));
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /^451 4\.4\.1 IMP 127\.0\.0\.1:\d+: ECONNREFUSED/);
});

t.test('requests in flight together share one bag (Foreign Net Router batching)', async (t) => {
  const p = await peer(t);
  const { tr } = transport(t);
  const other = Buffer.from('From: b@sender.test\r\nSubject: other\r\n\r\nanother message\r\n');
  const [r1, r2] = await Promise.all([
    tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test'], BODY)),
    tr.deliver(impHop(p.url), memoryRequest(['c@example.test'], other)),
  ]);
  t.same(attempted(r1).recipients.map((r) => r.outcome), ['delivered', 'delivered']);
  t.same(attempted(r2).recipients.map((r) => r.outcome), ['delivered']);
  t.equal(p.bags.length, 1, 'one bag for both messages');
  const mime = bagToMime(Buffer.from(p.bags[0]!.unit.bag));
  t.same(mime.map((m) => m.recipient), ['a@example.test', 'b@example.test', 'c@example.test']);
  t.ok(mime[2]!.raw.equals(other), 'each message keeps its own document');
  t.same(p.bags[0]!.messages[1]!.shared, { header: p.bags[0]!.messages[0]!.tid, body: p.bags[0]!.messages[0]!.tid });
  t.same(p.bags[0]!.messages[2]!.shared ?? {}, {}, 'the other message is not shared with the first');
});

t.test('tns wrap around from 65535 to 0 on the wire, skipping one still awaiting its reply', async (t) => {
  const p = await peer(t);
  const tns = new TnAllocator({ ihn: OUR_IHN, start: 65534 });
  const held = tns.allocate()!; // 65534 awaits a reply elsewhere
  t.equal(held.tn, 65534);
  // Next in sequence would be 65535, 0, 1: all free.
  const { tr } = transport(t, { tns });
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test', 'c@example.test'], BODY)));
  t.ok(res.recipients.every((r) => r.outcome === 'delivered'));
  t.same(p.bags[0]!.messages.map((m) => m.tid.tn), [65535, 0, 1]);
  t.ok(tns.isAwaiting(65534), 'the held tn is untouched');
  t.equal(tns.awaiting, 1, 'the answered ones are free again');
});

t.test('a message too large for imp.maxBagBytes fails at once, nothing is shipped', async (t) => {
  const p = await peer(t);
  const tr = new ImpTransport({ tns: new TnAllocator({ ihn: OUR_IHN }), compress: false, maxBagBytes: 1000, maxBagMessages: 10, maxConnections: 1, connectTimeoutMs: 1000, idleTimeoutMs: 1000 });
  t.teardown(() => tr.close());
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test'], BODY)));
  t.equal(res.recipients[0]!.outcome, 'failed');
  t.match(res.recipients[0]!.reply, /^552 5\.3\.4 message needs a \d+-octet IMP bag; imp\.maxBagBytes is 1000$/);
  t.equal(p.connections, 0);
});

t.test('the attempt deadline aborts a request waiting for its ACKNOWLEDGE: deferred', async (t) => {
  const p = await peer(t);
  p.scripts.push(() => 'silent');
  const { tr } = transport(t);
  const ac = new AbortController();
  const req = { ...memoryRequest(['a@example.test'], BODY), signal: ac.signal };
  const pending = tr.deliver(impHop(p.url), req);
  await p.received(1);
  ac.abort();
  const res = attempted(await pending);
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /^451 4\.4\.7 attempt deadline passed/);
});

t.test('a peer with every connection carrying an unanswered bag is busy: new requests are not taken', async (t) => {
  const p = await peer(t);
  p.scripts.push(() => 'silent');
  const tr = new ImpTransport({ tns: new TnAllocator({ ihn: OUR_IHN }), compress: false, maxBagBytes: 16_777_219, maxBagMessages: 10, maxConnections: 1, connectTimeoutMs: 5000, idleTimeoutMs: 5000, handoverMs: 0 });
  t.teardown(() => tr.close());
  const ac = new AbortController();
  const hanging = tr.deliver(impHop(p.url), { ...memoryRequest(['a@example.test'], BODY), signal: ac.signal });
  await p.received(1);
  const second = await tr.deliver(impHop(p.url), memoryRequest(['b@example.test'], BODY));
  t.ok(isHopBusy(second), 'not attempted');
  t.match((second as HopBusy).reply, /^451 4\.4\.5 IMP peer imp:\/\/127\.0\.0\.1:\d+ has 1 bag\(s\) in flight and no reply for a while; not attempted$/);
  t.same((second as HopBusy).recipients, ['b@example.test']);
  ac.abort();
  t.equal(attempted(await hanging).recipients[0]!.outcome, 'deferred');
  // The hung bag's connection stays until its silence times out; a peer that answers is not busy.
  const fresh = new ImpTransport({ tns: new TnAllocator({ ihn: OUR_IHN }), compress: false, maxBagBytes: 16_777_219, maxBagMessages: 10, maxConnections: 1, connectTimeoutMs: 5000, idleTimeoutMs: 5000 });
  t.teardown(() => fresh.close());
  const [r1, r2] = await Promise.all([fresh.deliver(impHop(p.url), memoryRequest(['c@example.test'], BODY)), fresh.deliver(impHop(p.url), memoryRequest(['d@example.test'], BODY))]);
  t.equal(attempted(r1).recipients[0]!.outcome, 'delivered');
  t.equal(attempted(r2).recipients[0]!.outcome, 'delivered');
});

t.test('a message that arrived over IMP is forwarded unchanged: its tid, the stamp plus our ihn (Example 2 views 1-3)', async (t) => {
  const p = await peer(t); // the destination MPM, ihn 167772359
  const RELAY = 167772246;
  const origin = { tid: { tn: 37, ihn: 167772404 }, stamp: [167772404] };
  const tns = new TnAllocator({ ihn: RELAY });
  const tr = new ImpTransport({
    tns, compress: false, maxBagBytes: 16_777_219, maxBagMessages: 10, maxConnections: 1, connectTimeoutMs: 5000, idleTimeoutMs: 5000,
    impOrigin: (qid) => (qid.startsWith('QIMP') ? origin : undefined),
  });
  t.teardown(() => tr.close());
  const forwarded = { ...memoryRequest(['dcrocker@rand-unix.test'], BODY), qid: 'QIMP0000000001' };
  const again = { ...memoryRequest(['dcrocker@rand-unix.test'], BODY), qid: 'QIMP0000000002' };
  const [r1, r2] = await Promise.all([tr.deliver(impHop(p.url), forwarded), tr.deliver(impHop(p.url), again)]);
  const m = p.bags[0]!.messages[0]!;
  t.same(m.tid, { tn: 37, ihn: 167772404 }, 'the originating MPM\'s tid, unchanged');
  t.same(m.command.stamp, [167772404, RELAY], 'the relay added its ihn to the stamp');
  t.equal(attempted(r1).recipients[0]!.reply, '250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail 167772404,167772246,167772359', 'the trail of all three MPMs');
  t.equal(attempted(r2).recipients[0]!.outcome, 'delivered');
  t.equal(p.bags.length, 2, 'two messages with one tid never share a bag (tids are unique within a bag)');
  t.equal(tns.awaiting, 0);
  t.equal(tns.next, 0, 'no tn of ours was used');
});

t.test('each recipient\'s outcome carries its hop: tid, bag, the ACKNOWLEDGE or none; nothing when never shipped', async (t) => {
  const p = await peer(t);
  p.scripts.push((_m, rcpt) => (rcpt.startsWith('a') ? { answer: true, reasons: ['OK'] } : rcpt.startsWith('b') ? { answer: false, reasons: ['no such user'] } : 'silent'));
  const { tr } = transport(t, { idleTimeoutMs: 300 });
  const res = attempted(await tr.deliver(impHop(p.url), memoryRequest(['a@example.test', 'b@example.test', 'c@example.test'], BODY)));
  const [a, b, c] = res.recipients.map((r) => r.imp);
  const wire = p.bags[0]!.wire;
  t.match(a, { peer: p.url, tid: { ihn: OUR_IHN }, bag: { id: /^[0-9a-f]{8}$/, messages: 3, octets: wire.length, compressed: false }, acknowledge: { answer: true, reasons: ['OK'], trail: [OUR_IHN, p.ihn] } });
  t.match(b, { acknowledge: { answer: false, reasons: ['no such user'], trail: [OUR_IHN, p.ihn] } });
  t.equal(c!.acknowledge, null, 'shipped, never answered');
  t.same(new Set([a, b, c].map((h) => h!.bag.id)).size, 1, 'one bag');
  t.same(
    [a, b, c].map((h) => h!.tid),
    p.bags[0]!.messages.map((m) => ({ tn: m.tid.tn, ihn: m.tid.ihn >>> 0 })),
    'the tids on the wire',
  );
  t.ok(a!.shippedAt <= Date.now());

  const down = await startImpPeer();
  await down.close();
  const refused = attempted(await tr.deliver(impHop(down.url), memoryRequest(['d@example.test'], BODY)));
  t.equal(refused.recipients[0]!.imp, undefined, 'the bag never left: no hop');
});
