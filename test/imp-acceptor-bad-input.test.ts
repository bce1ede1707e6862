// Bad input on the IMP acceptor: truncated bags, random bytes, a bag of 10,000 tiny
// messages, a bag at the size limit, a peer sending one byte at a time. Each time the
// listener stays up and keeps serving another connection.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { Gateway } from '../src/gateway/gateway.js';
import {
  decodeBag,
  deliverCommand,
  encodeBag,
  encodeShippingUnit,
  probeCommand,
  proplist,
  readReply,
  textElement,
  type ImpMessage,
} from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { startImpGateway } from './helpers/imp-gateway.js';
import { waitFor } from './helpers/gateway.js';

const ORIGIN = 167772404;
const OURS = 167772359;

async function gateway(t: Test, imp: Record<string, unknown> = {}): Promise<{ gw: Gateway; port: number }> {
  const { gw, port } = await startImpGateway(t, { name: 'imp-bad-input', ihn: OURS, imp });
  return { gw, port };
}

const probe = (tn: number, user = 'alice'): ImpMessage => ({
  tid: { tn, ihn: ORIGIN },
  command: probeCommand({ mailbox: proplist({ HOST: 'example.test', USER: user }), stamp: [ORIGIN] }),
});

/** Another peer is still served: a PROBE on a fresh connection gets its RESPONSE yes. */
async function stillServing(t: Test, port: number): Promise<void> {
  const c = await impClient(port);
  await c.send(encodeShippingUnit(encodeBag([probe(1)])));
  const [r] = await c.replies(1);
  t.equal(readReply(r!).answer, true, 'another connection is served');
  c.close();
}

function lastError(unit: { bag: Buffer }): { errorClass: number; errorString: string; tid: { tn: number; ihn: number } } {
  const [m] = decodeBag(unit.bag);
  const r = readReply(m!);
  return { ...r.error, tid: r.tid };
}

t.test('a truncated bag (the peer ends mid-unit): a final class 3 error, the connection closed, others served', async (t) => {
  const { port } = await gateway(t);
  const c = await impClient(port);
  const whole = encodeShippingUnit(encodeBag([probe(5)]));
  await c.send(whole.subarray(0, whole.length - 7));
  c.socket.end();
  const err = lastError(await c.unit());
  t.equal(err.errorClass, 3);
  t.match(err.errorString, /ended inside a shipping unit/);
  t.same(err.tid, { tn: 0, ihn: 0 }, 'no transaction to name');
  await c.closed;
  await stillServing(t, port);
});

t.test('random bytes: a final error reply, the connection closed, others served', async (t) => {
  const { port } = await gateway(t);
  for (const first of [0x42, 0x00, 0x01]) {
    const c = await impClient(port);
    // A unit whose type octet is bad (0x42), or a bag header that is not a LIST (0 + garbage), or compressed garbage.
    const junk = Buffer.concat([Buffer.from([first]), Buffer.from([0x09, 0xff, 0xff, 0xff]), randomBytes(4096)]);
    await c.send(junk);
    const err = lastError(await c.unit());
    t.ok(err.errorClass === 3 || err.errorClass === 2, `class 2 or 3 for a stream starting ${first}: ${err.errorString}`);
    await c.closed;
  }
  await stillServing(t, port);
});

t.test('a bag of 10,000 tiny messages: all answered in order, in reply bags', async (t) => {
  const { port } = await gateway(t);
  const c = await impClient(port);
  t.teardown(() => c.close());
  const messages = Array.from({ length: 10000 }, (_, i) => probe(i, i % 2 ? 'alice' : 'bob'));
  await c.send(encodeShippingUnit(encodeBag(messages)));
  const replies = await c.replies(10000);
  t.equal(replies.length, 10000);
  t.ok(replies.every((m, i) => readReply(m).tid.tn === i && readReply(m).answer), 'each PROBE answered yes, in order');
  await stillServing(t, port);
});

t.test('more messages than imp.maxMessagesPerBag: the excess gets class 2 replies', async (t) => {
  const { port } = await gateway(t, { maxMessagesPerBag: 3 });
  const c = await impClient(port);
  t.teardown(() => c.close());
  await c.send(encodeShippingUnit(encodeBag([probe(1), probe(2), probe(3), probe(4), probe(5)])));
  const replies = (await c.replies(5)).map(readReply);
  t.same(replies.map((r) => [r.tid.tn, r.answer, r.error.errorClass]), [[1, true, 0], [2, true, 0], [3, true, 0], [4, false, 2], [5, false, 2]]);
  t.ok(replies[3]!.transient, 'class 2: the shipper may try again');
});

t.test('a bag at imp.maxBagBytes is processed; one octet more is refused (class 2) and the connection closed', async (t) => {
  const limit = 64 * 1024;
  const { gw, port } = await gateway(t, { maxBagBytes: limit });
  const deliverOf = (size: number): Buffer => {
    const msg = (pad: number): ImpMessage => ({
      tid: { tn: 9, ihn: ORIGIN },
      command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] }),
      document: { header: proplist({ SUBJECT: 'big' }), body: { type: 'list', items: [textElement('x'.repeat(pad))] } },
    });
    const base = encodeBag([msg(0)]).length;
    const bag = encodeBag([msg(size - base)]);
    t.equal(bag.length, size);
    return encodeShippingUnit(bag);
  };
  const c = await impClient(port);
  await c.send(deliverOf(limit));
  const [ack] = await c.replies(1);
  t.equal(readReply(ack!).answer, true, 'a bag of exactly the limit is accepted');
  await c.send(deliverOf(limit + 1));
  const err = lastError(await c.unit());
  t.equal(err.errorClass, 2);
  t.match(err.errorString, /exceeds/);
  await c.closed;
  await stillServing(t, port);
});

t.test('one byte at a time: the unit deadline frees the slot; other peers are served meanwhile', async (t) => {
  const { gw, port } = await gateway(t, { bagTimeout: '1s', maxConnections: 2 });
  const slow = await impClient(port);
  const unit = encodeShippingUnit(encodeBag([probe(3)]));
  let sent = 0;
  const drip = setInterval(() => {
    if (sent < unit.length - 1 && !slow.socket.destroyed) slow.socket.write(unit.subarray(sent, ++sent));
  }, 100);
  t.teardown(() => clearInterval(drip));
  // While it drips, another peer is served.
  await stillServing(t, port);
  const err = lastError(await slow.unit());
  t.equal(err.errorClass, 2);
  t.match(err.errorString, /not complete within 1000 ms/);
  await slow.closed;
  clearInterval(drip);
  // The slot is free again (once the acceptor has seen the close): with maxConnections 2, two new peers are served.
  const impHealth = () => (gw.health().components as Record<string, { ok: boolean; connections?: number }>).imp!;
  await waitFor(() => impHealth().connections === 0, 10_000, 'the acceptor to release the slot');
  t.equal(impHealth().ok, true, '/healthz: imp ok');
  await Promise.all([stillServing(t, port), stillServing(t, port)]);
});

t.test('connections beyond imp.maxConnectionsPerIp are closed at once; the others keep working', async (t) => {
  const { port } = await gateway(t, { maxConnectionsPerIp: 1 });
  const first = await impClient(port);
  t.teardown(() => first.close());
  const second = await impClient(port);
  await second.closed;
  await first.send(encodeShippingUnit(encodeBag([probe(1)])));
  t.equal(readReply((await first.replies(1))[0]!).answer, true);
});

t.test('a whole unit whose bag cannot be framed (a message overrunning the bag): final class 3 error naming the offset, close', async (t) => {
  const { port } = await gateway(t);
  const c = await impClient(port);
  const bag = Buffer.from(encodeBag([probe(1), probe(2)]));
  // The second message's LIST count now runs past the end of the bag.
  const second = 6 + 4 + ((bag[7]! << 16) | (bag[8]! << 8) | bag[9]!);
  bag[second + 1] = 0x10;
  await c.send(encodeShippingUnit(bag));
  const err = lastError(await c.unit());
  t.equal(err.errorClass, 3);
  t.match(err.errorString, /^Syntax error, command unrecognized: ERR_IMP_COUNT_OVERRUN at offset \d+ in message\[1\]/);
  await c.closed;
  await stillServing(t, port);
});

t.test('DELIVERs sharing one document: past imp.maxBagSpoolBytes they get class 2 replies and nothing is spooled for them', async (t) => {
  // One 20 KB document shared by tid across six DELIVERs: the bag is about 20 KB on the
  // wire, but each DELIVER is its own spool copy. 50 KB lets two copies in.
  const { gw, port } = await gateway(t, { maxBagSpoolBytes: 50_000 });
  const body = 'x'.repeat(78).concat('\r\n').repeat(250);
  const messages: ImpMessage[] = [1, 2, 3, 4, 5, 6].map((tn) => ({
    tid: { tn, ihn: ORIGIN },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: `user${tn}` }), stamp: [ORIGIN] }),
    document: { header: proplist({ SUBJECT: 'shared' }), body: { type: 'list', items: [textElement(body)] } },
  }));
  const bag = encodeBag(messages);
  t.ok(bag.length < 2 * body.length, 'the document is carried once');
  const c = await impClient(port);
  t.teardown(() => c.close());
  await c.send(encodeShippingUnit(bag));
  const replies = (await c.replies(6)).map(readReply);
  t.same(replies.map((r) => [r.tid.tn, r.answer, r.error.errorClass]), [[1, true, 0], [2, true, 0], [3, false, 2], [4, false, 2], [5, false, 2], [6, false, 2]]);
  t.match(replies[2]!.error.errorString, /^Resources unavailable: .*imp\.maxBagSpoolBytes|^Resources unavailable: .*50000/);
  t.ok(replies[2]!.transient, 'class 2: ship it again, in another bag');
  for (const tn of [1, 2]) t.equal(gw.store.queue.impMessagesByTid({ tn, ihn: ORIGIN }).length, 1, `message ${tn} spooled`);
  for (const tn of [3, 4, 5, 6]) t.same(gw.store.queue.impMessagesByTid({ tn, ihn: ORIGIN }), [], `nothing spooled for message ${tn}`);
  // The same messages in a bag of their own are taken: the limit is per bag.
  await c.send(encodeShippingUnit(encodeBag(messages.slice(2, 4))));
  t.same((await c.replies(2)).map((m) => readReply(m).answer), [true, true]);
});

t.test('a single DELIVER larger than imp.maxBagSpoolBytes is still taken (one per bag always is)', async (t) => {
  const { port } = await gateway(t, { maxBagSpoolBytes: 1000 });
  const c = await impClient(port);
  t.teardown(() => c.close());
  const big = (tn: number): ImpMessage => ({
    tid: { tn, ihn: ORIGIN },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] }),
    document: { header: proplist({ SUBJECT: 'big' }), body: { type: 'list', items: [textElement('y'.repeat(5000))] } },
  });
  await c.send(encodeShippingUnit(encodeBag([big(1), big(2)])));
  t.same((await c.replies(2)).map((m) => [readReply(m).answer, readReply(m).error.errorClass]), [[true, 0], [false, 2]]);
});
