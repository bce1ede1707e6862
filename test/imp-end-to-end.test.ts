// End-to-end ACKNOWLEDGEs piece by piece (docs/imp.md): which answers are end to end,
// the relay's view-4 reply, the shipper's hooks (a relay passes the destination's answer
// back and leaves the bounce to the originator; an originator remembers a FORWARD), the
// reply forwarder's "taken" rule, and a reply the store cannot record failing its bag.
import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import type { AcceptPath } from '../src/delivery/accept.js';
import { parseNextHop, type NextHop } from '../src/config/schema.js';
import type { DeliveryResult, HopBusy } from '../src/delivery/transports/transport.js';
import { isHopBusy } from '../src/delivery/transports/transport.js';
import {
  acknowledgeMessage,
  decodeBag,
  decodeBagEntries,
  encodeBag,
  isEndToEndAnswer,
  passedBackReply,
  replyAddressee,
  type ImpMessage,
} from '../src/imp/index.js';
import { ReplyForwarder, type QueuedReply } from '../src/imp/shipper/reply-forwarder.js';
import type { EndToEndHooks } from '../src/imp/shipper/peer.js';
import { ImpTransport } from '../src/imp/shipper/transport.js';
import { TnAllocator } from '../src/imp/shipper/tn-allocator.js';
import { BagProcessor } from '../src/mpm/bag-processor.js';
import { ImpRecipientPolicy } from '../src/mpm/recipient-policy.js';
import { Store } from '../src/store/store.js';
import { awaitingFinal, endToEndReplies } from './helpers/end-to-end-replies.js';
import { tempDir, waitFor } from './helpers/gateway.js';
import { startImpPeer, type PeerAnswer } from './helpers/imp-peer.js';
import { memoryRequest } from './helpers/next-hop.js';

const ORIGINATING = 167772404;
const RELAY = 167772246;
const DESTINATION = 167772359;
const BODY = Buffer.from('From: ann@sender.test\r\nSubject: Meeting Thursday\r\n\r\nDave:\r\n');

t.test('which ACKNOWLEDGEs are end to end', async (t) => {
  t.equal(isEndToEndAnswer({ answer: true, howDelivered: ['ACCEPT'], transient: false }), true, 'yes ACCEPT');
  t.equal(isEndToEndAnswer({ answer: true, howDelivered: ['GENDEL'], transient: false }), true, 'yes GENDEL');
  t.equal(isEndToEndAnswer({ answer: true, howDelivered: ['forward'], transient: false }), false, 'yes FORWARD only: per hop');
  t.equal(isEndToEndAnswer({ answer: true, howDelivered: ['FORWARD', 'ACCEPT'], transient: false }), true);
  t.equal(isEndToEndAnswer({ answer: false, howDelivered: [], transient: false }), true, 'a final no');
  t.equal(isEndToEndAnswer({ answer: false, howDelivered: [], transient: true }), false, 'class 2/4: try again later, per hop');
});

t.test('view 4: the relay adds its ihn to the stamp, nothing else changes', async (t) => {
  const view3 = acknowledgeMessage(
    { tid: { tn: 37, ihn: ORIGINATING }, stamp: [ORIGINATING, RELAY] },
    { ihn: DESTINATION, replyTid: { tn: 1993, ihn: DESTINATION } },
    { answer: true, reasons: ['OK'], howDelivered: ['ACCEPT'] },
  );
  const view4 = passedBackReply(view3, RELAY);
  t.same(view4.command.stamp, [DESTINATION, RELAY]);
  t.same(view3.command.stamp, [DESTINATION], 'the received reply is not modified');
  t.same(view4.tid, view3.tid);
  t.same({ ...view4.command, stamp: [] }, { ...view3.command, stamp: [] }, 'mailbox, type, operation, arguments (trail), error-list unchanged');
  t.equal(replyAddressee(view4, { tn: 37, ihn: 1 }), ORIGINATING, 'addressed by the mailbox IA');
  const noIa = { ...view4, command: { ...view4.command, mailbox: { type: 'proplist' as const, pairs: [] } } };
  t.equal(replyAddressee(noIa, { tn: 37, ihn: 7 }), 7, 'else the ihn of the tid answered');
});

function impHop(url: string): NextHop {
  const hop = parseNextHop(url);
  if (typeof hop === 'string' || hop.kind !== 'imp') throw new Error(String(hop));
  return hop;
}

function attempted(r: DeliveryResult | HopBusy): DeliveryResult {
  if (isHopBusy(r)) throw new Error('unexpected busy');
  return r;
}

async function shipOnce(t: Test, o: { ourIhn: number; forwarding: boolean; answer: PeerAnswer; passBack?: boolean }) {
  const peer = await startImpPeer({ ihn: DESTINATION });
  t.teardown(() => peer.close());
  peer.fallback = () => o.answer;
  const calls: { awaitFinal: Parameters<EndToEndHooks['awaitFinal']>[0][]; passBack: Parameters<EndToEndHooks['passBack']>[0][] } = { awaitFinal: [], passBack: [] };
  const tr = new ImpTransport({
    tns: new TnAllocator({ ihn: o.ourIhn }),
    compress: false,
    maxBagBytes: 16_777_219,
    maxBagMessages: 10,
    maxConnections: 1,
    connectTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    ...(o.forwarding ? { impOrigin: () => ({ tid: { tn: 37, ihn: ORIGINATING }, stamp: [ORIGINATING] }) } : {}),
    endToEnd: {
      ihn: o.ourIhn,
      awaitFinal: (e) => void calls.awaitFinal.push(e),
      passBack: (e) => {
        calls.passBack.push(e);
        return o.passBack ?? true;
      },
    },
  });
  t.teardown(() => tr.close());
  const res = attempted(await tr.deliver(impHop(peer.url), memoryRequest(['dcrocker@rand-unix.test'], BODY)));
  return { res, calls, rcpt: res.recipients[0]! };
}

t.test("a relay passes the destination's no back and leaves the bounce to the originator", async (t) => {
  const { rcpt, calls } = await shipOnce(t, { ourIhn: RELAY, forwarding: true, answer: { answer: false, reasons: ['no such user'] } });
  t.equal(rcpt.outcome, 'failed');
  t.match(rcpt.reply, /^550 5\.1\.1 IMP ACKNOWLEDGE no: no such user trail 167772404,167772246,167772359$/);
  t.equal(rcpt.reportedBy, `the originating MPM (ihn ${ORIGINATING})`, 'no bounce here');
  t.equal(calls.passBack.length, 1);
  const e = calls.passBack[0]!;
  t.equal(e.targetIhn, ORIGINATING);
  t.same(e.tid, { tn: 37, ihn: ORIGINATING });
  t.same(e.reply.command.stamp, [DESTINATION, RELAY], 'view 4: destination, then relay');
  t.same(calls.awaitFinal, []);
});

t.test('a relay that cannot reach the originator keeps the per-hop outcome (it bounces itself)', async (t) => {
  const { rcpt, calls } = await shipOnce(t, { ourIhn: RELAY, forwarding: true, answer: { answer: false, reasons: ['no such user'] }, passBack: false });
  t.equal(rcpt.outcome, 'failed');
  t.equal(rcpt.reportedBy, undefined);
  t.equal(calls.passBack.length, 1);
});

t.test('a relay passes nothing back for a per-hop FORWARD or a try-again-later', async (t) => {
  const fwd = await shipOnce(t, { ourIhn: RELAY, forwarding: true, answer: { answer: true, reasons: ['OK'], howDelivered: ['FORWARD'] } });
  t.equal(fwd.rcpt.outcome, 'delivered');
  t.same(fwd.calls.passBack, []);
  t.same(fwd.calls.awaitFinal, [], 'not ours: the originator awaits it, not the relay');
  const later = await shipOnce(t, { ourIhn: RELAY, forwarding: true, answer: { answer: false, reasons: ['busy'], error: { errorClass: 4, errorString: 'Server error, try again later' } } });
  t.equal(later.rcpt.outcome, 'deferred');
  t.same(later.calls.passBack, []);
});

t.test("the originator remembers a message a relay took for forwarding, not one the destination took", async (t) => {
  const fwd = await shipOnce(t, { ourIhn: ORIGINATING, forwarding: false, answer: { answer: true, reasons: ['OK'], howDelivered: ['FORWARD'] } });
  t.equal(fwd.rcpt.outcome, 'delivered');
  t.equal(fwd.calls.awaitFinal.length, 1);
  const a = fwd.calls.awaitFinal[0]!;
  t.equal(a.rcpt, 'dcrocker@rand-unix.test');
  t.equal(a.tid.ihn, ORIGINATING);
  t.equal(a.headers.toString(), 'From: ann@sender.test\r\nSubject: Meeting Thursday\r\n\r\n', 'the header section, for a later bounce');
  t.match(a.hopReply, /FORWARD\) trail 167772404,167772359$/);
  const accept = await shipOnce(t, { ourIhn: ORIGINATING, forwarding: false, answer: { answer: true, reasons: ['OK'] } });
  t.same(accept.calls.awaitFinal, []);
  t.same(accept.calls.passBack, []);
});

/** An outbox in memory, as the store keeps it. */
function memoryOutbox(replies: QueuedReply[]) {
  const state = new Map<number, { sent: boolean; errors: string[] }>(replies.map((r) => [r.id, { sent: false, errors: [] }]));
  return {
    state,
    dueReplies: () => replies.filter((r) => !state.get(r.id)!.sent && state.get(r.id)!.errors.length === 0),
    nextReplyDueAt: () => undefined,
    repliesSent: (ids: readonly number[]) => ids.forEach((id) => (state.get(id)!.sent = true)),
    repliesRetry: (ids: readonly number[], _at: number, error: string) => ids.forEach((id) => state.get(id)!.errors.push(error)),
  };
}

async function mpm(t: Test, onBag: (socket: Socket, bytes: Buffer) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => onBag(socket, Buffer.concat(chunks)));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function queued(): QueuedReply {
  const view4 = passedBackReply(
    acknowledgeMessage({ tid: { tn: 37, ihn: ORIGINATING }, stamp: [ORIGINATING, RELAY] }, { ihn: DESTINATION, replyTid: { tn: 1993, ihn: DESTINATION } }, { answer: true, reasons: ['OK'], howDelivered: ['ACCEPT'] }),
    RELAY,
  );
  return { id: 1, targetIhn: ORIGINATING, tid: { tn: 37, ihn: ORIGINATING }, message: encodeBag([view4], { sharing: 'none' }), attempts: 0 };
}

function forwarder(t: Test, outbox: ReturnType<typeof memoryOutbox>, port: number) {
  const f = new ReplyForwarder({
    outbox,
    resolve: (ihn) => (ihn === ORIGINATING ? { host: '127.0.0.1', port, url: `imp://127.0.0.1:${port}` } : undefined),
    connectTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    retryInitialMs: 10,
    retryMaxMs: 20,
    pollMs: 20,
  });
  t.teardown(() => f.close());
  f.start();
  return f;
}

t.test('the forwarder: a bag is taken when the MPM closes without a word', async (t) => {
  const bags: Buffer[] = [];
  const port = await mpm(t, (socket, bytes) => {
    bags.push(bytes);
    socket.end();
  });
  const outbox = memoryOutbox([queued()]);
  forwarder(t, outbox, port);
  await waitFor(() => outbox.state.get(1)!.sent, 5000, 'sent');
  t.equal(bags.length, 1);
  t.equal(bags[0]![0], 0, 'a shipping unit');
  const [msg] = decodeBag(bags[0]!.subarray(1));
  t.same(msg!.command.stamp, [DESTINATION, RELAY]);
});

t.test('the forwarder: an answer, a reset or a refused connection leaves the reply queued', async (t) => {
  const answering = await mpm(t, (socket) => socket.end(Buffer.from([0, 7, 0, 0, 2, 0, 0])));
  const a = memoryOutbox([queued()]);
  forwarder(t, a, answering);
  await waitFor(() => a.state.get(1)!.errors[0], 5000, 'retried');
  t.match(a.state.get(1)!.errors[0], /answered the replies/);
  t.equal(a.state.get(1)!.sent, false);

  // A connection reset (the MPM died mid-bag) is not a close without a word.
  const dropping = await mpm(t, (socket) => socket.resetAndDestroy());
  const b = memoryOutbox([queued()]);
  forwarder(t, b, dropping);
  await waitFor(() => b.state.get(1)!.errors[0], 5000, 'retried');
  t.match(b.state.get(1)!.errors[0], /ECONNRESET/);
  t.equal(b.state.get(1)!.sent, false);

  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const nobody = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const c = memoryOutbox([queued()]);
  forwarder(t, c, nobody);
  await waitFor(() => c.state.get(1)!.errors[0], 5000, 'retried');
  t.match(c.state.get(1)!.errors[0], /ECONNREFUSED/);
});

t.test('a reply the store cannot record fails its bag, so its sender keeps it', async (t) => {
  const { dir, cleanup } = tempDir('imp-e2e-processor');
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  let tn = 0;
  const processor = new BagProcessor({
    ihn: ORIGINATING,
    hostname: 'mx.test.invalid',
    accept: {} as AcceptPath,
    store,
    policy: new ImpRecipientPolicy([], [], []),
    maxMessagesPerBag: 100,
    maxBagSpoolBytes: 1 << 30,
    acceptConcurrency: 4,
    logger: pino({ level: 'silent' }),
    nextReplyTid: () => ({ tn: tn++, ihn: ORIGINATING }),
    replies: { handle: () => Promise.reject(Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' })) },
  });
  const view4: ImpMessage = decodeBag(queued().message)[0]!;
  await t.rejects(processor.process(decodeBagEntries(encodeBag([view4])), { address: '127.0.0.1' }), { code: 'SQLITE_FULL' });
  const ok = new BagProcessor({ ...(processor as unknown as { o: ConstructorParameters<typeof BagProcessor>[0] }).o, replies: { handle: async () => {} } });
  t.same(await ok.process(decodeBagEntries(encodeBag([view4])), { address: '127.0.0.1' }), [], 'a reply gets no reply');
});

t.test("the destination's answer before the hop's own: kept, and it becomes the recipient's outcome", async (t) => {
  const { store, replies } = endToEndReplies(t, { name: 'imp-e2e-early', ihn: ORIGINATING, reachable: () => false });
  const view4 = passedBackReply(
    acknowledgeMessage({ tid: { tn: 37, ihn: ORIGINATING }, stamp: [ORIGINATING, RELAY] }, { ihn: DESTINATION, replyTid: { tn: 1993, ihn: DESTINATION } }, { answer: false, reasons: ['no such user'], howDelivered: [] }),
    RELAY,
  );
  await replies.handle(view4, '127.0.0.1');
  t.equal(store.impReplies.awaiting({ tn: 37, ihn: ORIGINATING }), undefined, 'nothing awaited it yet');
  const early = store.impReplies.awaitFinal(
    awaitingFinal({
      tid: { tn: 37, ihn: ORIGINATING },
      qid: 'Q1',
      rcpt: 'dcrocker@rand-unix.test',
      hopReply: '250 2.0.0 IMP ACKNOWLEDGE yes (OK; FORWARD) trail 167772404,167772246',
    }),
  );
  t.same(early, { outcome: 'failed', reply: '550 5.1.1 IMP ACKNOWLEDGE no: no such user trail 167772404,167772246,167772359' }, 'the hop answer brings the kept answer out');
  t.equal(store.impReplies.awaiting({ tn: 37, ihn: ORIGINATING })!.answer, false, 'recorded as answered');
  await replies.handle(view4, '127.0.0.1');
  t.equal(store.impReplies.awaitFinal({ ...store.impReplies.awaiting({ tn: 37, ihn: ORIGINATING })!, tid: { tn: 38, ihn: ORIGINATING } }), undefined, 'kept once, for its own tid only');
});

t.test('a reply for another MPM arriving at the acceptor is stamped and queued for it; a looping one is not', async (t) => {
  const SECOND_RELAY = 167772300;
  const { store, replies } = endToEndReplies(t, { name: 'imp-e2e-relay-reply', ihn: SECOND_RELAY, reachable: (ihn) => ihn === ORIGINATING });
  const view4 = decodeBag(queued().message)[0]!;
  await replies.handle(view4, '127.0.0.1');
  const [row] = store.impReplies.dueReplies(Date.now() + 1, 10);
  t.equal(row?.targetIhn, ORIGINATING);
  t.same(decodeBag(row!.message)[0]!.command.stamp, [DESTINATION, RELAY, SECOND_RELAY], 'our ihn added to the stamp');
  await replies.handle(decodeBag(row!.message)[0]!, '127.0.0.1');
  t.equal(store.impReplies.dueReplies(Date.now() + 1, 10).length, 1, 'a reply already stamped by us is not queued again');
});
