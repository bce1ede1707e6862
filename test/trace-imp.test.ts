// `mailbag trace` across IMP hops, with three real gateways (RFC 753 Example 2's shape):
// SMTP in at A, IMP to B, IMP to C, Maildir there. Each gateway's trace shows the hops it
// saw: the DELIVER it received (peer, tid, stamp, the sender's qid) and the DELIVER it
// shipped (peer, tid, bag, the ACKNOWLEDGE's answer, reasons and trail). A message C
// refuses comes back to B as ACKNOWLEDGE no; B's bounce links back to it, and it to A's qid.
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import t from 'tap';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { cli } from './helpers/cli.js';
import { maildirFiles, tempDir, testConfig, waitFor, writeTestConfig } from './helpers/gateway.js';

const ORIGINATING = 167772404;
const RELAY = 167772246;
const DESTINATION = 167772359;

interface Entry {
  hop: string;
  kind: string;
  id: string;
  title: string;
  atUs: number;
  data: Record<string, unknown>;
}
interface Json {
  by: string;
  matches: { mailbagQids: string[]; origins: { qid: string; originQid: string; kind: string }[]; timeline: Entry[] }[];
}

const fits = { maxMessageBytes: '1MiB', trustedNetworks: ['127.0.0.1/32'] };

async function send(gw: Gateway, to: string, subject: string): Promise<string> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  try {
    const raw = `From: Jon Postel <Postel@isib.test>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@isib.test>\r\n\r\nPlease mark your calendar.\r\n`;
    const info = await client.sendMail({ envelope: { from: 'Postel@isib.test', to: [to] }, raw });
    return /queued as (\w+)/.exec(info.response)![1]!;
  } finally {
    client.close();
  }
}

async function finished(gw: Gateway, qid: string): Promise<void> {
  await waitFor(() => gw.store.queue.message(qid)?.state === 'done', 30_000, `${qid} done`);
}

async function traceJson(cfg: string, key: string): Promise<Json['matches'][number]> {
  const r = await cli(['trace', key, '--json', '--config', cfg]);
  if (r.code !== 0) throw new Error(`trace ${key}: ${r.stderr}`);
  const j = JSON.parse(r.stdout.toString()) as Json;
  if (j.matches.length !== 1) throw new Error(`trace ${key}: ${j.matches.length} matches`);
  return j.matches[0]!;
}

const impEntries = (m: Json['matches'][number], direction: 'in' | 'out') => m.timeline.filter((e) => e.kind === 'imp' && e.data.direction === direction);

t.test('trace shows the IMP hops on each gateway, and forwards and bounces link back to the original qid', { timeout: 120_000 }, async (t) => {
  const dirs = ['a', 'b', 'c'].map((n) => tempDir(`trace-imp-${n}`));
  t.teardown(() => dirs.forEach((d) => d.cleanup()));
  const [da, db, dc] = dirs.map((d) => d.dir) as [string, string, string];
  const cOverrides = { smtp: { ...fits, localDomains: ['rand-unix.test'] }, routes: [{ domain: 'rand-unix.test', nexthop: `maildir:${join(dc, 'mailboxes')}` }] };
  const c = await startGateway(testConfig(dc, { ...cOverrides, imp: { ihn: DESTINATION, listen: { host: '127.0.0.1', port: 0 } } }), { pollMs: 30 });
  t.teardown(() => c.stop());
  const cPeer = `imp://127.0.0.1:${c.impAddress()!.port}`;
  const b = await startGateway(
    testConfig(db, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: RELAY, listen: { host: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.1/32'] },
      routes: [
        { domain: 'rand-unix.test', nexthop: cPeer },
        { domain: 'nowhere.test', nexthop: cPeer },
        { domain: 'isib.test', nexthop: `maildir:${join(db, 'mailboxes')}` },
      ],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => b.stop());
  const bPeer = `imp://127.0.0.1:${b.impAddress()!.port}`;
  const a = await startGateway(
    testConfig(da, {
      smtp: { ...fits, localDomains: [] },
      imp: { ihn: ORIGINATING },
      routes: [
        { domain: 'rand-unix.test', nexthop: bPeer },
        { domain: 'nowhere.test', nexthop: bPeer },
      ],
    }),
    { pollMs: 30 },
  );
  t.teardown(() => a.stop());
  // the CLI reads each gateway's store through a config naming it
  const [cfgA, cfgB, cfgC] = [da, db, dc].map((d) => writeTestConfig(d)) as [string, string, string];

  const qidA = await send(a, 'DCrocker@rand-unix.test', 'meeting');
  await finished(a, qidA);
  const atB = await waitFor(() => b.store.queue.impMessagesByTid({ tn: 0, ihn: ORIGINATING })[0], 10_000, 'B has the tid');
  await finished(b, atB.qid);
  const atC = await waitFor(() => c.store.queue.impMessagesByTid({ tn: 0, ihn: ORIGINATING })[0], 10_000, 'C has the tid');
  await finished(c, atC.qid);
  await waitFor(() => maildirFiles(join(dc, 'mailboxes'), 'rand-unix.test', 'DCrocker').length + maildirFiles(join(dc, 'mailboxes'), 'rand-unix.test', 'dcrocker').length, 10_000, 'Maildir delivery');

  t.test('A: the DELIVER shipped to B, the ACKNOWLEDGE with the trail', async (t) => {
    const m = await traceJson(cfgA, qidA);
    const kinds = m.timeline.map((e) => `${e.hop}:${e.kind}`);
    t.same(kinds, ['mailbag:received', 'mailbag:attempt', 'mailbag:imp'], 'receipt, the attempt, then its IMP hop');
    t.same(impEntries(m, 'in'), [], 'A received it over SMTP');
    const out = impEntries(m, 'out')[0]!;
    t.match(out.title, `IMP out to ${bPeer}: ACKNOWLEDGE yes`);
    t.match(out.data, {
      peer: bPeer,
      bag: { id: /^[0-9a-f]{8}$/, messages: 1, octets: Number, compressed: false },
      deliveries: [{ rcpt: 'DCrocker@rand-unix.test', tid: { tn: 0, ihn: ORIGINATING }, acknowledge: { answer: true, reasons: ['OK'], howDelivered: ['FORWARD'], trail: [ORIGINATING, RELAY] } }],
    });
    t.ok((out.data.bag as { octets: number }).octets > 100, 'the bag octets on the wire');
    const attempt = m.timeline.find((e) => e.kind === 'attempt')!;
    t.ok(out.atUs >= attempt.atUs, 'shipped after the attempt started');
  });

  t.test('B: the DELIVER from A (tid, stamp, A\'s qid) and the one shipped to C (trail of all three)', async (t) => {
    const m = await traceJson(cfgB, atB.qid);
    t.same(m.origins, [{ qid: atB.qid, originQid: qidA, kind: 'imp' }], 'the forward links back to A\'s qid');
    const kinds = m.timeline.map((e) => `${e.hop}:${e.kind}`);
    t.same(kinds, ['mailbag:received', 'mailbag:imp', 'mailbag:attempt', 'mailbag:imp']);
    t.match(m.timeline[0]!.title, 'received over IMP from 127.0.0.1');
    const into = impEntries(m, 'in')[0]!;
    t.match(into.data, { peer: '127.0.0.1', tid: { tn: 0, ihn: ORIGINATING }, stamp: [ORIGINATING], previousQid: qidA });
    const out = impEntries(m, 'out')[0]!;
    t.match(out.data, {
      peer: cPeer,
      deliveries: [{ tid: { tn: 0, ihn: ORIGINATING }, acknowledge: { answer: true, howDelivered: ['ACCEPT'], trail: [ORIGINATING, RELAY, DESTINATION] } }],
    });
    // B's store has no row of A's message: A's qid finds B's copy through the link
    const byA = await traceJson(cfgB, qidA);
    t.same(byA.mailbagQids.sort(), [atB.qid, qidA].sort(), 'traced on B by A\'s qid');
    t.equal(impEntries(byA, 'in').length, 1);

    const text = await cli(['trace', atB.qid, '--config', cfgB]);
    const lines = text.stdout.toString();
    t.same(lines.split('\n').filter((l) => l.length > 80), [], 'fits 80 columns');
    t.match(lines, new RegExp(`origin +${atB.qid} came over IMP from ${qidA}`));
    t.match(lines, `IMP in from 127.0.0.1: DELIVER tid 0.${ORIGINATING}`);
    t.match(lines, `stamp ${ORIGINATING}`);
    t.match(lines, `sent as ${qidA} by the mailbag before this one`);
    t.match(lines, `IMP out to ${cPeer}: ACKNOWLEDGE yes`);
    t.match(lines, new RegExp(`<DCrocker@rand-unix.test> tid 0.${ORIGINATING}\n +answer yes \\(OK; ACCEPT\\)\n +trail ${ORIGINATING}, ${RELAY}, ${DESTINATION}\n`));
  });

  t.test('C: the DELIVER from B with the stamp of A and B, and the Maildir delivery', async (t) => {
    const m = await traceJson(cfgC, atC.qid);
    t.match(impEntries(m, 'in')[0]!.data, { tid: { tn: 0, ihn: ORIGINATING }, stamp: [ORIGINATING, RELAY], previousQid: atB.qid });
    t.same(impEntries(m, 'out'), []);
    t.match(m.timeline.find((e) => e.kind === 'attempt')!.title, /^attempt maildir:/);
  });

  t.test('an ACKNOWLEDGE no: the hop shows it, the bounce links back to the message and A\'s qid', async (t) => {
    const qid2 = await send(a, 'nobody@nowhere.test', 'lost');
    await finished(a, qid2);
    const atB2 = await waitFor(() => b.store.correlation.derived(qid2)[0], 10_000, 'B has the second message');
    await finished(b, atB2.qid);
    const bounce = await waitFor(() => b.store.correlation.derived(atB2.qid).find((d) => d.kind === 'bounce'), 10_000, 'the bounce');
    const m = await traceJson(cfgB, bounce.qid);
    t.same(m.mailbagQids.sort(), [qid2, atB2.qid, bounce.qid].sort(), 'the bounce, the forward and A\'s qid in one match');
    t.same(
      m.origins.sort((x, y) => x.kind.localeCompare(y.kind)),
      [
        { qid: bounce.qid, originQid: atB2.qid, kind: 'bounce' },
        { qid: atB2.qid, originQid: qid2, kind: 'imp' },
      ],
    );
    const out = impEntries(m, 'out')[0]!;
    t.match(out.title, `IMP out to ${cPeer}: ACKNOWLEDGE no`);
    t.match(out.data, { deliveries: [{ rcpt: 'nobody@nowhere.test', acknowledge: { answer: false, reasons: ['no such host'], trail: [ORIGINATING, RELAY, DESTINATION] } }] });
    const kinds = m.timeline.map((e) => `${e.id === bounce.qid ? 'bounce' : 'forward'}:${e.kind}`);
    t.ok(kinds.indexOf('forward:imp') < kinds.indexOf('bounce:generated'), 'the ACKNOWLEDGE no before its bounce');
  });
});
