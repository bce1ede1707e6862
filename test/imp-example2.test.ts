// RFC 753 Example 2 replayed with three mailbag instances in one process, each its own
// MPM with its own ihn: SMTP in at the originating MPM, IMP to the relay, IMP to the
// destination, Maildir there. The DELIVER keeps its tid all the way and each MPM adds its
// ihn to the stamp (views 1 and 2); the destination's ACKNOWLEDGE carries the trail of
// all three ihns back to the relay (view 3), which passes it back to the originating MPM
// with its ihn added to the stamp (view 4). Then a routing loop between two
// misconfigured instances: detected by the stamp, answered no, bounced, not looped.
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { decodeBag, encodeElement, parseNotation, type Element, type IndexElement, type ListElement } from '../src/imp/index.js';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { maildirFiles, tempDir, testConfig, waitFor } from './helpers/gateway.js';
import { freePort } from './helpers/free-port.js';

const ORIGINATING = 167772404;
const RELAY = 167772246;
const DESTINATION = 167772359;

const EXAMPLE_1 = Buffer.from(
  [
    'Date: Thu, 29 Mar 1979 11:46:00 -0800',
    'From: Jon Postel <Postel@isib.test>',
    'Subject: Meeting Thursday',
    'To: Dave Crocker <DCrocker@rand-unix.test>',
    'Cc: Mamie',
    '',
    'Dave:',
    '',
    'Please mark your calendar for our meeting Thursday at 3 pm.',
    '',
    '--jon.',
    '',
  ].join('\r\n'),
);

async function send(gw: Gateway, from: string, to: string, raw: Buffer): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail({ envelope: { from, to: [to] }, raw });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

async function final(gw: Gateway, qid: string) {
  return waitFor(() => {
    const rows = gw.store.queue.recipients(qid);
    return rows.length && rows.every((r) => r.state === 'delivered' || r.state === 'failed') ? rows : undefined;
  }, 30_000, `${qid} final`);
}

const fixtures = join(import.meta.dirname, 'imp', 'fixtures');

const fits = { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'] };

/** A TCP relay that keeps what the client sent on each connection (half-closes pass through). */
async function tap(): Promise<{ port: number; target: number; sent: Buffer[][]; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const t = {
    port: 0,
    target: 0,
    sent: [] as Buffer[][],
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const chunks: Buffer[] = [];
    t.sent.push(chunks);
    const up = connect({ host: '127.0.0.1', port: t.target, allowHalfOpen: true });
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (c: Buffer) => chunks.push(c));
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.port = (server.address() as AddressInfo).port;
  return t;
}

/** The three MPMs of Example 2 (the relay reaches the originating MPM through `toOriginating`). */
async function example2(
  t: Test,
  o: { destinationRoutes?: { domain: string; nexthop: string }[]; domain?: string; toOriginating: number; originatingPort?: number; dirs?: [string, string, string] },
) {
  const dirs = o.dirs ?? (['a', 'b', 'c'].map((n) => {
    const d = tempDir(`example2-${n}`);
    t.teardown(() => d.cleanup());
    return d.dir;
  }) as [string, string, string]);
  const [da, db, dc] = dirs;
  const domain = o.domain ?? 'rand-unix.test';
  const mailboxes = join(dc, 'mailboxes');
  const destination = await startGateway(
    testConfig(dc, {
      smtp: { ...fits, localDomains: ['rand-unix.test'] },
      imp: { ihn: DESTINATION, listen: { host: '127.0.0.1', port: 0 } },
      routes: o.destinationRoutes ?? [{ domain: 'rand-unix.test', nexthop: `maildir:${mailboxes}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => destination.stop());
  const relayConfig = testConfig(db, {
    smtp: { ...fits, localDomains: [] },
    imp: {
      ihn: RELAY,
      listen: { host: '127.0.0.1', port: 0 },
      trustedPeers: ['127.0.0.1/32'],
      mpms: [{ ihn: ORIGINATING, address: `imp://127.0.0.1:${o.toOriginating}` }],
    },
    routes: [{ domain, nexthop: `imp://127.0.0.1:${destination.impAddress()!.port}` }],
  });
  const relay = await startGateway(relayConfig, { pollMs: 30 });
  t.teardown(() => relay.stop());
  const originatingConfig = testConfig(da, {
    smtp: { ...fits, localDomains: ['isib.test'] },
    imp: { ihn: ORIGINATING, listen: { host: '127.0.0.1', port: o.originatingPort ?? 0 } },
    routes: [
      { domain, nexthop: `imp://127.0.0.1:${relay.impAddress()!.port}` },
      { domain: 'isib.test', nexthop: `maildir:${join(da, 'mailboxes')}` },
    ],
  });
  const originating = await startGateway(originatingConfig, { pollMs: 30 });
  t.teardown(() => originating.stop());
  return { destination, relay, relayConfig, originating, originatingConfig, mailboxes, dirs };
}

const TID = { tn: 0, ihn: ORIGINATING };

t.test('Example 2: originating -> relay -> destination and the ACKNOWLEDGE back, all four views', { timeout: 90_000 }, async (t) => {
  const toOriginating = await tap();
  t.teardown(() => toOriginating.close());
  const { destination, relay, originating, mailboxes } = await example2(t, { toOriginating: toOriginating.port });
  toOriginating.target = originating.impAddress()!.port;

  const qid = await send(originating, 'Postel@isib.test', 'DCrocker@rand-unix.test', EXAMPLE_1);
  // Per hop: the relay answers FORWARD once the message is durable there.
  await waitFor(() => originating.store.impReplies.awaiting(TID), 10_000, 'the relay took it for forwarding');
  const awaiting = originating.store.impReplies.awaiting(TID)!;
  t.equal(awaiting.hopReply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; FORWARD) trail ${ORIGINATING},${RELAY}`, 'view 1 answered by the relay, per hop');

  // Views 1 and 2: the same tid at both hops, the stamp growing by one ihn per MPM.
  const atRelay = await waitFor(() => relay.store.queue.impMessagesByTid(TID)[0], 10_000, 'the relay has the tid');
  t.same(atRelay.stamp, [ORIGINATING], 'view 1: the stamp as the originating MPM sent it');
  const [relayed] = await final(relay, atRelay.qid);
  t.equal(relayed!.state, 'delivered');
  // View 3: the destination's ACKNOWLEDGE, trail = stamp of view 2 plus the destination's ihn.
  t.equal(relayed!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail ${ORIGINATING},${RELAY},${DESTINATION}`, 'view 3: the trail of all three MPMs');
  const atDestination = await waitFor(() => destination.store.queue.impMessagesByTid(TID)[0], 10_000, 'the destination has the tid');
  t.same(atDestination.stamp, [ORIGINATING, RELAY], 'view 2: the relay added its ihn, otherwise unchanged');

  // View 4: the relay passes the destination's ACKNOWLEDGE back; the originating MPM records it.
  const [atOrigin] = await waitFor(() => {
    const rows = originating.store.queue.recipients(qid);
    return rows[0]?.last_reply?.includes('ACCEPT') ? rows : undefined;
  }, 30_000, 'the end-to-end ACKNOWLEDGE at the originating MPM');
  t.equal(atOrigin!.state, 'delivered');
  t.equal(atOrigin!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail ${ORIGINATING},${RELAY},${DESTINATION}`, 'view 4: the destination\'s answer, recorded by tid');
  t.equal(originating.store.impReplies.awaiting(TID)!.answer, true);
  // The relay counts the reply taken once the originating MPM closed the connection, after recording it.
  await waitFor(() => relay.store.impReplies.repliesByTid(TID)[0]?.state === 'sent', 10_000, 'the pass-through recorded');
  t.same(relay.store.impReplies.repliesByTid(TID).map((r) => [r.targetIhn, r.qid, r.state]), [[ORIGINATING, atRelay.qid, 'sent']], 'the relay records the pass-through');

  // Byte for byte against RFC 753's view 4, with this run's two tns in place of 1993 and 37.
  const wire = Buffer.concat(toOriginating.sent.find((c) => c.length) ?? []);
  t.equal(wire[0], 0, 'an uncompressed shipping unit');
  const [view4] = decodeBag(wire.subarray(1));
  t.ok(view4, 'one reply in the bag');
  const expected = parseNotation(readFileSync(join(fixtures, 'rfc753-example2-view4.txt'), 'utf8')) as ListElement;
  const items = (e: Element) => (e as ListElement).items;
  (items(items(expected)[0]!)[0] as IndexElement).value = view4!.tid.tn;
  const args = items(items(items(expected)[1]!)[1]!)[4]!;
  (items(items(args)[0]!)[0] as IndexElement).value = TID.tn;
  t.equal(wire.subarray(1 + 6).toString('hex'), encodeElement(expected).toString('hex'), 'view 4 as the RFC shows it: tid, mailbox, stamp (destination, relay), trail of all three, answer, reason, how-delivered, error-list');
  t.equal(view4!.tid.ihn, DESTINATION, "the reply keeps the destination's tid");
  // the counter lives on the SMTP thread: the queue thread's message about it may come after the store shows 'sent'
  const passed = /mailbag_imp_replies_passed_back_total\{result="passed"\} 1\n/;
  await waitFor(async () => passed.test(await relay.metrics.registry.metrics()), 10_000, 'the pass-through counted');
  t.match(await relay.metrics.registry.metrics(), passed);
  t.match(await originating.metrics.registry.metrics(), /mailbag_imp_end_to_end_total\{answer="yes"\} 1\n/);

  const delivered = await waitFor(() => maildirFiles(mailboxes, 'rand-unix.test', 'DCrocker')[0] ?? maildirFiles(mailboxes, 'rand-unix.test', 'dcrocker')[0], 30_000, 'the Maildir delivery');
  const text = delivered.bytes.toString('latin1');
  t.equal((text.match(/ with IMP id /g) ?? []).length, 2, 'a Received line for each IMP hop');
  t.ok(text.lastIndexOf(' with IMP id ') < text.indexOf(' with ESMTP id '), 'above the SMTP hop at the originating MPM');
  t.ok(delivered.bytes.includes(EXAMPLE_1.subarray(0, 40)) && text.endsWith('--jon.\r\n'), 'the message of Example 1 arrives whole');
});

t.test("the destination's no reaches the originating MPM, which bounces the SMTP-originated message", { timeout: 90_000 }, async (t) => {
  const to = await tap();
  t.teardown(() => to.close());
  // The destination has no route for nowhere.test: ACKNOWLEDGE no, "no such host".
  const { relay, originating, dirs } = await example2(t, { toOriginating: to.port, domain: 'nowhere.test', destinationRoutes: [] });
  to.target = originating.impAddress()!.port;
  const qid = await send(originating, 'Postel@isib.test', 'DCrocker@nowhere.test', EXAMPLE_1);
  const [atOrigin] = await waitFor(() => {
    const rows = originating.store.queue.recipients(qid);
    return rows[0]?.state === 'failed' ? rows : undefined;
  }, 30_000, 'the end-to-end no at the originating MPM');
  t.equal(atOrigin!.last_reply, `550 5.1.2 IMP ACKNOWLEDGE no: no such host trail ${ORIGINATING},${RELAY},${DESTINATION}`);
  const dsn = await waitFor(() => maildirFiles(join(dirs[0], 'mailboxes'), 'isib.test', 'Postel')[0] ?? maildirFiles(join(dirs[0], 'mailboxes'), 'isib.test', 'postel')[0], 30_000, 'the bounce');
  const report = dsn.bytes.toString('latin1');
  t.match(report, /Status: 5\.1\.2/);
  t.match(report, /Diagnostic-Code: smtp; 550 5\.1\.2 IMP ACKNOWLEDGE no: no such host/);
  t.match(report, /Subject: Meeting Thursday/, 'the original headers are returned');
  // The answer may come back after the relay's own FORWARD (the originating MPM bounces
  // and records the bounce with it) or before it, under load (it becomes the hop's outcome
  // and the queue bounces): either way the answer is recorded and there is one bounce.
  const awaiting = originating.store.impReplies.awaiting(TID)!;
  t.equal(awaiting.answer, false, 'the end-to-end no is recorded at the originating MPM');

  const atRelay = relay.store.queue.impMessagesByTid(TID)[0]!;
  const [relayed] = await final(relay, atRelay.qid);
  t.equal(relayed!.state, 'failed', 'the relay records the failure');
  t.match(relayed!.last_reply, /^550 5\.1\.2 IMP ACKNOWLEDGE no: no such host/);
  // A bounce is queued before the failure is recorded: had the relay bounced, its qid would be newer.
  t.equal(relay.store.queue.maxQid(), atRelay.qid, 'and leaves the bounce to the originating MPM (no DSN queued at the relay)');
  await originating.stop();
  t.equal(maildirFiles(join(dirs[0], 'mailboxes'), 'isib.test', 'Postel').length + maildirFiles(join(dirs[0], 'mailboxes'), 'isib.test', 'postel').length, 1, 'one bounce, not two');
});

t.test('a relay restart between hops loses no reply', { timeout: 90_000 }, async (t) => {
  const dirs = ['a', 'b', 'c'].map((n) => {
    const d = tempDir(`example2-restart-${n}`);
    t.teardown(() => d.cleanup());
    return d.dir;
  }) as [string, string, string];
  const originatingPort = await freePort();
  const first = await example2(t, { toOriginating: originatingPort, originatingPort, dirs });
  const { relay, originating } = first;
  const qid = await send(originating, 'Postel@isib.test', 'DCrocker@rand-unix.test', EXAMPLE_1);
  await waitFor(() => originating.store.impReplies.awaiting(TID), 10_000, 'the relay took it for forwarding');
  // The originating MPM goes away: the destination's answer reaches the relay, which
  // cannot pass it back yet and keeps it.
  await originating.stop();
  const queued = await waitFor(() => relay.store.impReplies.repliesByTid(TID).find((r) => r.attempts > 0), 30_000, 'a failed attempt to pass the reply back');
  t.equal(queued.state, 'queued');
  t.ok(queued.lastError, 'with the reason it is not passed back yet');
  await relay.stop();

  const relay2 = await startGateway(first.relayConfig, { pollMs: 30 });
  t.teardown(() => relay2.stop());
  const originating2 = await startGateway(first.originatingConfig, { pollMs: 30 });
  t.teardown(() => originating2.stop());
  const [atOrigin] = await waitFor(() => {
    const rows = originating2.store.queue.recipients(qid);
    return rows[0]?.last_reply?.includes('ACCEPT') ? rows : undefined;
  }, 30_000, 'the reply after the restarts');
  t.equal(atOrigin!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail ${ORIGINATING},${RELAY},${DESTINATION}`);
  await waitFor(() => relay2.store.impReplies.repliesByTid(TID)[0]?.state === 'sent', 10_000, 'the pass-through recorded');
  t.same(relay2.store.impReplies.repliesByTid(TID).map((r) => r.state), ['sent'], 'passed back once, after the restart');
});

t.test('a routing loop between two misconfigured MPMs is detected by the stamp and bounced', { timeout: 90_000 }, async (t) => {
  const [dx, dy] = ['x', 'y'].map((n) => tempDir(`imp-loop-${n}`));
  t.teardown(() => {
    dx!.cleanup();
    dy!.cleanup();
  });
  // Each routes loop.test to the other; the listen ports are known only once both listen,
  // so Y starts first pointing at a placeholder, then X, then Y again pointing at X.
  const yMail = join(dy!.dir, 'mailboxes');
  const yConfig = (xPort: number) =>
    testConfig(dy!.dir, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: 2, listen: { host: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.1/32'] },
      routes: [
        { domain: 'loop.test', nexthop: `imp://127.0.0.1:${xPort}` },
        { domain: 'sender.test', nexthop: `maildir:${yMail}` },
      ],
    });
  let y = await startGateway(yConfig(9), { pollMs: 30 });
  const yPort = y.impAddress()!.port;
  await y.stop();
  const x = await startGateway(
    testConfig(dx!.dir, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: 1, listen: { host: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.1/32'] },
      routes: [{ domain: 'loop.test', nexthop: `imp://127.0.0.1:${yPort}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => x.stop());
  const yc = yConfig(x.impAddress()!.port);
  yc.imp.listen = { host: '127.0.0.1', port: yPort };
  y = await startGateway(yc, { pollMs: 30 });
  t.teardown(() => y.stop());

  const qid = await send(x, 'ann@sender.test', 'user@loop.test', Buffer.from('From: ann@sender.test\r\nSubject: loop\r\n\r\nround and round\r\n'));
  const [atX] = await final(x, qid);
  t.equal(atX!.state, 'delivered', 'X handed it to Y (FORWARD)');
  const atY = await waitFor(() => y.store.queue.impMessagesByTid({ tn: 0, ihn: 1 })[0], 10_000, 'Y has it');
  t.same(atY.stamp, [1]);
  const [bounced] = await final(y, atY.qid);
  t.equal(bounced!.state, 'failed', 'Y shipped it back to X, which found its own ihn in the stamp');
  t.match(bounced!.last_reply, /^554 5\.4\.6 IMP ACKNOWLEDGE no: routing loop/);
  t.equal(x.store.queue.impMessagesByTid({ tn: 0, ihn: 1 }).length, 0, 'X never accepted its own message back');
  const dsn = await waitFor(() => maildirFiles(yMail, 'sender.test', 'ann')[0], 30_000, 'the bounce');
  t.match(dsn.bytes.toString('latin1'), /Status: 5\.4\.6/);
  t.match(dsn.bytes.toString('latin1'), /Diagnostic-Code: [^\r\n]*routing loop/);
});
