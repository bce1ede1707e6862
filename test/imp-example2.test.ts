// RFC 753 Example 2 replayed with three mailbag instances in one process, each its own
// MPM with its own ihn: SMTP in at the originating MPM, IMP to the relay, IMP to the
// destination, Maildir there. The DELIVER keeps its tid all the way and each MPM adds its
// ihn to the stamp (views 1 and 2); the destination's ACKNOWLEDGE carries the trail of
// all three ihns back to the relay (view 3). Then a routing loop between two
// misconfigured instances: detected by the stamp, answered no, bounced, not looped.
import t from 'tap';
import nodemailer from 'nodemailer';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { maildirFiles, tempDir, testConfig, waitFor } from './helpers/gateway.js';

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

const fits = { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'] };

t.test('Example 2: originating -> relay -> destination, the trail of all three ihns', { timeout: 90_000 }, async (t) => {
  const dirs = ['a', 'b', 'c'].map((n) => tempDir(`example2-${n}`));
  t.teardown(() => dirs.forEach((d) => d.cleanup()));
  const [da, db, dc] = dirs.map((d) => d.dir) as [string, string, string];
  const mailboxes = join(dc, 'mailboxes');
  const destination = await startGateway(
    testConfig(dc, {
      smtp: { ...fits, localDomains: ['rand-unix.test'] },
      imp: { ihn: DESTINATION, listen: { host: '127.0.0.1', port: 0 } },
      routes: [{ domain: 'rand-unix.test', nexthop: `maildir:${mailboxes}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => destination.stop());
  const relay = await startGateway(
    testConfig(db, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: RELAY, listen: { host: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.1/32'] },
      routes: [{ domain: 'rand-unix.test', nexthop: `imp://127.0.0.1:${destination.impAddress()!.port}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => relay.stop());
  const originating = await startGateway(
    testConfig(da, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: ORIGINATING },
      routes: [{ domain: 'rand-unix.test', nexthop: `imp://127.0.0.1:${relay.impAddress()!.port}` }],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => originating.stop());

  const qid = await send(originating, 'Postel@isib.test', 'DCrocker@rand-unix.test', EXAMPLE_1);
  const [atOrigin] = await final(originating, qid);
  t.equal(atOrigin!.state, 'delivered');
  t.equal(atOrigin!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; FORWARD) trail ${ORIGINATING},${RELAY}`, 'view 1 answered by the relay');

  // Views 1 and 2: the same tid at both hops, the stamp growing by one ihn per MPM.
  const tid = { tn: 0, ihn: ORIGINATING };
  const atRelay = await waitFor(() => relay.store.queue.impMessagesByTid(tid)[0], 10_000, 'the relay has the tid');
  t.same(atRelay.stamp, [ORIGINATING], 'view 1: the stamp as the originating MPM sent it');
  const [relayed] = await final(relay, atRelay.qid);
  t.equal(relayed!.state, 'delivered');
  // View 3: the destination's ACKNOWLEDGE, trail = stamp of view 2 plus the destination's ihn.
  t.equal(relayed!.last_reply, `250 2.0.0 IMP ACKNOWLEDGE yes (OK; ACCEPT) trail ${ORIGINATING},${RELAY},${DESTINATION}`, 'view 3: the trail of all three MPMs');
  const atDestination = await waitFor(() => destination.store.queue.impMessagesByTid(tid)[0], 10_000, 'the destination has the tid');
  t.same(atDestination.stamp, [ORIGINATING, RELAY], 'view 2: the relay added its ihn, otherwise unchanged');

  const delivered = await waitFor(() => maildirFiles(mailboxes, 'rand-unix.test', 'DCrocker')[0] ?? maildirFiles(mailboxes, 'rand-unix.test', 'dcrocker')[0], 30_000, 'the Maildir delivery');
  const text = delivered.bytes.toString('latin1');
  t.equal((text.match(/ with IMP id /g) ?? []).length, 2, 'a Received line for each IMP hop');
  t.ok(text.lastIndexOf(' with IMP id ') < text.indexOf(' with ESMTP id '), 'above the SMTP hop at the originating MPM');
  t.ok(delivered.bytes.includes(EXAMPLE_1.subarray(0, 40)) && text.endsWith('--jon.\r\n'), 'the message of Example 1 arrives whole');
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
