// The PoD publisher (/v1/stream): the document's handshake, its error table, live
// delivery of mailbag's own events as mail flows, archive windows, resume after a drop.
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startGateway, type Gateway } from '../src/gateway/gateway.js';
import { loadOrCreateSecret } from '../src/gateway/pod-secret.js';
import { signToken } from '../src/pod/jwt.js';
import { ingestPayload } from '../src/pod/ingest.js';
import { schemaProblem } from '../src/pod/validate.js';
import { formatPodTime } from '../src/pod/time.js';
import { tempDir, testConfig, waitFor } from './helpers/gateway.js';
import { haveOpenssl, selfSignedCertificate } from './helpers/certificate.js';
import { rawRequest } from './helpers/raw-http.js';

type Ev = Record<string, unknown> & { sm?: Record<string, unknown>; filter?: Record<string, unknown> };

const ATTACHMENT = Buffer.from('%PDF-1.4 not really a pdf, but bytes to hash\n'.repeat(20));

function rawMessage(n: number): Buffer {
  return Buffer.from(
    [
      'From: Ann Sender <ann@sender.test>',
      'To: Alice <alice@example.test>',
      'Cc: carol@example.test',
      `Subject: publisher test ${n}`,
      `Message-ID: <pub-${n}@sender.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `hello ${n}`,
      '--b1',
      'Content-Type: application/pdf; name="report.pdf"',
      'Content-Disposition: attachment; filename="report.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      ATTACHMENT.toString('base64').replace(/.{76}/g, '$&\r\n'),
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

interface Fixture {
  gw: Gateway;
  port: number;
  secret: Buffer;
  shift: { ms: number };
  token(cid?: string, expiresInSec?: number): string;
  send(n: number): Promise<string>;
}

async function start(t: Test): Promise<Fixture> {
  const { dir, cleanup } = tempDir('pod-pub');
  const secretFile = join(dir, 'var', 'pod.secret');
  const shift = { ms: 0 };
  const config = testConfig(dir, {
    pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'mailbag-test', pollInterval: 30 } },
  });
  const gw = await startGateway(config, { pollMs: 50, clock: () => Date.now() + shift.ms });
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const secret = loadOrCreateSecret(secretFile);
  return {
    gw,
    port: gw.podPublisherAddress()!.port,
    secret,
    shift,
    token: (cid = 'mailbag-test', expiresInSec = 3600) => signToken(secret, { cid, expiresInSec }, Date.now() + shift.ms),
    async send(n) {
      const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
      const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test', 'carol@example.test'] }, raw: rawMessage(n) });
      client.close();
      return /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;
    },
  };
}

/** The document's curl example as raw bytes: its headers, pointed at the local publisher. */
function curlExample(opts: { path: string; token?: string | undefined; method?: string; deflate?: boolean; upgrade?: boolean }): string {
  const lines = [
    `${opts.method ?? 'GET'} ${opts.path} HTTP/1.1`,
    'Host: logstream.proofpoint.com:443',
    ...(opts.upgrade === false ? [] : ['Connection: Upgrade', 'Upgrade: websocket']),
    ...(opts.deflate ? ['Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover'] : []),
    ...(opts.token !== undefined ? [`Authorization: ${opts.token}`] : []),
    'Sec-WebSocket-Key: SGVsbG8sIHdvcmxkIQ==',
    'Sec-WebSocket-Version: 13',
  ];
  return lines.join('\r\n') + '\r\n\r\n';
}

function publisherHealth(gw: Gateway): { ok?: boolean; sessions?: number } | undefined {
  return (gw.health().components as Record<string, { ok?: boolean; sessions?: number }>).podPublisher;
}

interface Client {
  ws: WebSocket;
  events: Ev[];
  closed: Promise<{ code: number }>;
}

function openStream(port: number, token: string, query: string): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?${query}`, {
    headers: { Authorization: `Bearer ${token}` },
    perMessageDeflate: { clientNoContextTakeover: true, serverNoContextTakeover: true },
  });
  const events: Ev[] = [];
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString('utf8')) as Ev));
  const closed = new Promise<{ code: number }>((resolve) => ws.on('close', (code) => resolve({ code })));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const SECRET_HANDSHAKE_ACCEPT = createHash('sha1').update('SGVsbG8sIHdvcmxkIQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');

t.test("the document's curl handshake gets 101 Switching Protocols", async (t) => {
  const f = await start(t);
  const path = '/v1/stream?cid=mailbag-test&type=message&sinceTime=2018-08-31T00:00:00-0800';
  const plain = await rawRequest(f.port, curlExample({ path, token: `Bearer ${f.token()}` }));
  t.equal(plain.statusLine, 'HTTP/1.1 101 Switching Protocols');
  t.match(plain.headers, `Sec-WebSocket-Accept: ${SECRET_HANDSHAKE_ACCEPT}`);
  const deflate = await rawRequest(f.port, curlExample({ path, token: `Bearer ${f.token()}`, deflate: true }));
  t.equal(deflate.statusLine, 'HTTP/1.1 101 Switching Protocols');
  const ext = /Sec-WebSocket-Extensions: ([^\r\n]*)/.exec(deflate.headers)?.[1] ?? '';
  t.same(ext.split(/;\s*/).sort(), ['client_no_context_takeover', 'permessage-deflate', 'server_no_context_takeover'], 'deflate with both no-context-takeover options');
  t.same(publisherHealth(f.gw)?.ok, true, '/healthz reports the publisher');
});

t.test('each error of the table gets its status', async (t) => {
  const f = await start(t);
  const good = f.token();
  const q = '/v1/stream?cid=mailbag-test&type=message';
  const cases: Array<[string, number, Parameters<typeof curlExample>[0]]> = [
    ['missing cid', 400, { path: '/v1/stream?type=message', token: `Bearer ${good}` }],
    ['empty cid', 400, { path: '/v1/stream?cid=&type=message', token: `Bearer ${good}` }],
    ['missing type', 400, { path: '/v1/stream?cid=mailbag-test', token: `Bearer ${good}` }],
    ['empty type', 400, { path: '/v1/stream?cid=mailbag-test&type=', token: `Bearer ${good}` }],
    ['invalid sinceTime', 400, { path: `${q}&sinceTime=yesterday`, token: `Bearer ${good}` }],
    ['invalid toTime', 400, { path: `${q}&sinceTime=2026-01-01T00:00:00-0800&toTime=never`, token: `Bearer ${good}` }],
    ['toTime before sinceTime', 400, { path: `${q}&sinceTime=2026-01-02T00:00:00-0800&toTime=2026-01-01T00:00:00-0800`, token: `Bearer ${good}` }],
    ['type given twice', 400, { path: `${q}&type=maillog`, token: `Bearer ${good}` }],
    ['cid given twice', 400, { path: `${q}&cid=mailbag-test`, token: `Bearer ${good}` }],
    ['sinceTime given twice', 400, { path: `${q}&sinceTime=2026-01-01T00:00:00-0800&sinceTime=2026-01-02T00:00:00-0800`, token: `Bearer ${good}` }],
    ['toTime given twice', 400, { path: `${q}&sinceTime=2026-01-01T00:00:00-0800&toTime=2026-01-02T00:00:00-0800&toTime=2026-01-03T00:00:00-0800`, token: `Bearer ${good}` }],
    ['missing Authorization header', 401, { path: q }],
    ['empty Authorization header', 401, { path: q, token: '' }],
    ['invalid type of access token', 401, { path: q, token: `Basic ${good}` }],
    ['empty access token', 401, { path: q, token: 'Bearer ' }],
    ['invalid access token', 401, { path: q, token: `Bearer ${good.slice(0, -4)}AAAA` }],
    ['token signed with another secret', 401, { path: q, token: `Bearer ${signToken(Buffer.from('another-secret-entirely'), { cid: 'mailbag-test', expiresInSec: 60 })}` }],
    ['expired access token', 401, { path: q, token: `Bearer ${signToken(f.secret, { cid: 'mailbag-test', expiresInSec: 60 }, Date.now() - 120_000)}` }],
    ['invalid clusterID', 401, { path: '/v1/stream?cid=someone-else&type=message', token: `Bearer ${good}` }],
    ['token for another clusterID', 401, { path: q, token: `Bearer ${f.token('someone-else')}` }],
    ['invalid URL', 404, { path: '/v2/stream?cid=mailbag-test&type=message', token: `Bearer ${good}` }],
    ['plain HTTP (not a WebSocket)', 404, { path: q, token: `Bearer ${good}`, upgrade: false }],
    ['POST with an upgrade', 405, { path: q, token: `Bearer ${good}`, method: 'POST' }],
    ['plain POST', 405, { path: q, token: `Bearer ${good}`, method: 'POST', upgrade: false }],
  ];
  for (const [what, status, opts] of cases) {
    const r = await rawRequest(f.port, curlExample(opts));
    t.equal(r.status, status, `${what}: ${r.statusLine}`);
  }
  const first = await openStream(f.port, good, 'cid=mailbag-test&type=message');
  const second = await rawRequest(f.port, curlExample({ path: q, token: `Bearer ${good}` }));
  t.equal(second.statusLine, 'HTTP/1.1 409 Exceeded maximum number of sessions per token', 'a second session on one token');
  const other = await openStream(f.port, f.token(), 'cid=mailbag-test&type=message');
  t.pass('another token opens its own session meanwhile');
  first.ws.close();
  other.ws.close();
  await first.closed;
  await waitFor(() => publisherHealth(f.gw)?.sessions === 0, 5000, 'sessions closed');
  const again = await openStream(f.port, good, 'cid=mailbag-test&type=message');
  t.pass('the token works again once its session is closed');
  again.ws.close();
  await again.closed;
});

function assertValid(t: Test, kind: 'message' | 'maillog', ev: Ev): void {
  t.equal(schemaProblem(kind, ev), undefined, `${kind} event ${String(ev.guid ?? ev.id)} validates`);
  const round = ingestPayload(JSON.stringify(ev), { kind });
  t.ok(round.ok, `${kind} event ${String(ev.guid ?? ev.id)} ingests: ${round.ok ? '' : round.reason}`);
}

t.test('live: events as mail flows through the gateway, valid in the schemas', async (t) => {
  const f = await start(t);
  const messages = await openStream(f.port, f.token(), 'cid=mailbag-test&type=message');
  const maillog = await openStream(f.port, f.token(), 'cid=mailbag-test&type=maillog');
  const qid = await f.send(1);
  await waitFor(() => messages.events.length >= 1, 10_000, 'message event');
  const toRcpts = () => maillog.events.filter((e) => /: to=/.test(String(e.data))).flatMap((e) => (e.sm!.to as string[]) ?? []);
  await waitFor(() => toRcpts().length >= 2, 10_000, 'to= lines for both recipients');
  t.same(toRcpts().sort(), ['<alice@example.test>', '<carol@example.test>'], 'every delivery is logged');
  const m = messages.events[0]!;
  assertValid(t, 'message', m);
  t.equal(m.guid, qid);
  const filter = m.filter!;
  t.equal(filter.qid, qid);
  t.equal(filter.routeDirection, 'inbound');
  const conn = m.connection as Record<string, unknown>;
  t.equal(conn.ip, '127.0.0.1');
  t.equal(conn.protocol, 'ESMTP');
  t.type(conn.sid, 'string');
  t.same(m.envelope, { from: 'ann@sender.test', rcpts: ['alice@example.test', 'carol@example.test'] });
  const msg = m.msg as { header: Record<string, string[]>; parsedAddresses: Record<string, string[]>; sizeBytes: number };
  t.same(msg.header['message-id'], ['<pub-1@sender.test>']);
  t.same(msg.parsedAddresses.to, ['alice@example.test']);
  t.same(msg.parsedAddresses.cc, ['carol@example.test']);
  const parts = m.msgParts as Array<Record<string, unknown>>;
  t.equal(parts.length, 2);
  const pdf = parts.find((p) => p.detectedName === 'report.pdf')!;
  t.equal(pdf.md5, createHash('md5').update(ATTACHMENT).digest('hex'), 'md5 of the decoded attachment');
  t.equal(pdf.sha256, createHash('sha256').update(ATTACHMENT).digest('hex'));
  t.equal(pdf.detectedSizeBytes, ATTACHMENT.length);
  t.equal(pdf.detectedMime, 'application/pdf');
  t.equal(pdf.disposition, 'attachment');
  t.equal(pdf.detectedExt, 'pdf');
  const pps = m.pps as Record<string, unknown>;
  t.equal(pps.cid, 'mailbag-test');
  t.equal(pps.agent, 'mx.test.invalid');

  const from = maillog.events.find((e) => /: from=/.test(String(e.data)))!;
  const to = maillog.events.find((e) => /: to=/.test(String(e.data)))!;
  t.ok(maillog.events.indexOf(from) < maillog.events.indexOf(to), 'from= before to=');
  for (const e of maillog.events) assertValid(t, 'maillog', e);
  const fromIn = ingestPayload(JSON.stringify(from), { kind: 'maillog' });
  const toIn = ingestPayload(JSON.stringify(to), { kind: 'maillog' });
  if (fromIn.ok && toIn.ok && fromIn.event.kind === 'maillog' && toIn.event.kind === 'maillog') {
    t.match(fromIn.event.fields, { qid, from: 'ann@sender.test', nrcpts: 2, msgid: '<pub-1@sender.test>' });
    t.match(toIn.event.fields, { qid, mailer: 'local', dsn: '2.0.0' });
    t.match(String(toIn.event.fields.stat), /^Sent/);
    t.ok(toIn.event.fields.to?.length, 'to= names recipients');
    t.match(toIn.event.fields, { delay: /^\d\d:\d\d:\d\d$/, xdelay: /^\d\d:\d\d:\d\d$/ });
  } else t.fail('maillog events ingest');
  messages.ws.close();
  maillog.ws.close();
  await Promise.all([messages.closed, maillog.closed]);
});

const HOUR = 3_600_000;
const podTime = (ms: number): string => encodeURIComponent(formatPodTime(ms * 1000, -480));

t.test('archive: hour-rounded windows from the store, closed when done', async (t) => {
  const f = await start(t);
  const qid = await f.send(1);
  const p = f.gw.store.podPublisher;
  await waitFor(() => p.attemptsAfter(0, 10).length >= 1 && p.factsAfter(0, 10).length === 1, 10_000, 'delivery and facts');
  const recordedAt = p.factsAfter(0, 10)[0]!.recorded_at;
  const live = await openStream(f.port, f.token(), 'cid=mailbag-test&type=message');
  // three hours on: the message is archive material
  f.shift.ms = 3 * HOUR;
  // since rounds down and to rounds up to whole hours: a 1 ms window after the event still holds it
  const q = `cid=mailbag-test&sinceTime=${podTime(recordedAt + 1)}&toTime=${podTime(recordedAt + 2)}`;
  const messages = await openStream(f.port, f.token(), `${q}&type=message`);
  t.same(await messages.closed, { code: 1000 }, 'the server closes the archive session when the window is done');
  t.same(messages.events.map((e) => e.guid), [qid], 'the message event of the hour');
  assertValid(t, 'message', messages.events[0]!);
  const maillog = await openStream(f.port, f.token(), `${q}&type=maillog`);
  t.same(await maillog.closed, { code: 1000 });
  const windowStart = Math.floor((recordedAt + 1) / HOUR) * HOUR;
  const end = Math.ceil((recordedAt + 2) / HOUR) * HOUR;
  const inWindow = (ms: number) => ms >= windowStart && ms < end;
  const fromLines = maillog.events.filter((e) => /: from=/.test(String(e.data)));
  const toLines = maillog.events.filter((e) => /: to=/.test(String(e.data)));
  const received = f.gw.store.queue.message(qid)?.received_at ?? 0;
  t.equal(fromLines.length, inWindow(received) ? 1 : 0, 'the from= line when its hour is in the window');
  const attempts = p.attemptsAfter(0, 10).filter((a) => inWindow(a.started_at + a.duration_ms));
  const expectedRcpts = attempts.flatMap((a) => (JSON.parse(a.recipients) as { rcpt: string }[]).map((r) => `<${r.rcpt}>`)).sort();
  t.same(toLines.flatMap((e) => e.sm!.to as string[]).sort(), expectedRcpts, 'to= lines for the attempts that ended in the window');
  for (const e of maillog.events) assertValid(t, 'maillog', e);
  // an earlier hour holds nothing: the session opens and closes empty
  const empty = await openStream(f.port, f.token(), `cid=mailbag-test&type=message&sinceTime=${podTime(windowStart - 2 * HOUR)}&toTime=${podTime(windowStart - HOUR)}`);
  t.same(await empty.closed, { code: 1000 });
  t.same(empty.events, [], 'no events before the message');
  t.same(live.events.length, 0, 'the live session opened after the message got none of it');
  live.ws.close();
  await live.closed;
});

t.test('resume: a reconnect within the hour replays from the drop; after longer, from the last hour', async (t) => {
  const f = await start(t);
  const p = f.gw.store.podPublisher;
  const token = f.token('mailbag-test', 6 * 3600);
  const first = await openStream(f.port, token, 'cid=mailbag-test&type=message');
  const q1 = await f.send(1);
  await waitFor(() => first.events.length === 1, 10_000, 'event 1');
  t.equal(first.events[0]!.guid, q1);
  first.ws.terminate(); // a drop, not a goodbye
  await first.closed;
  await waitFor(() => publisherHealth(f.gw)?.sessions === 0, 5000, 'the session is gone');
  const q2 = await f.send(2);
  await waitFor(() => p.factsAfter(0, 10).length === 2, 10_000, 'facts of message 2');
  const fresh = await openStream(f.port, f.token(), 'cid=mailbag-test&type=message');
  const second = await openStream(f.port, token, 'cid=mailbag-test&type=message');
  await waitFor(() => second.events.length === 1, 10_000, 'event 2 replayed');
  t.same(second.events.map((e) => e.guid), [q2], 'from the drop: message 2, not message 1 again');
  second.ws.terminate();
  await second.closed;
  const q3 = await f.send(3);
  await waitFor(() => fresh.events.length === 1, 10_000, 'event 3 on the new token');
  t.same(fresh.events.map((e) => e.guid), [q3], 'a new token starts at now');
  await waitFor(() => publisherHealth(f.gw)?.sessions === 1, 5000, 'the dropped session is gone');
  // two hours later: the gap is past the resume window; the stream starts an hour back
  f.shift.ms = 2 * HOUR;
  const third = await openStream(f.port, token, 'cid=mailbag-test&type=message');
  const q4 = await f.send(4);
  await waitFor(() => third.events.some((e) => e.guid === q4), 10_000, 'event 4');
  t.same(third.events.map((e) => e.guid), [q4], 'message 3 (over an hour old) is left to an archive request');
  third.ws.close();
  fresh.ws.close();
  await Promise.all([third.closed, fresh.closed]);
});

t.test('a message accepted while the publisher was off still gets its event (without parts once its spool file is gone)', async (t) => {
  const { dir, cleanup } = tempDir('pod-pub-off');
  t.teardown(cleanup);
  const secretFile = join(dir, 'var', 'pod.secret');
  const off = await startGateway(testConfig(dir), { pollMs: 50 });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: off.smtpAddress().port, secure: false, ignoreTLS: true });
  const info = await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: rawMessage(9) });
  client.close();
  const qid = /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;
  await waitFor(() => off.store.queue.message(qid)?.state === 'done', 10_000, 'delivered');
  await off.stop();
  const shift = { ms: 0 };
  const on = await startGateway(
    testConfig(dir, { pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'mailbag-test', pollInterval: 30 } } }),
    { pollMs: 50, clock: () => Date.now() + shift.ms },
  );
  t.teardown(() => on.stop());
  t.equal(on.store.podPublisher.factsAfter(0, 10).length, 1, 'recorded at start');
  shift.ms = 2 * HOUR;
  const token = signToken(loadOrCreateSecret(secretFile), { cid: 'mailbag-test', expiresInSec: 60 }, Date.now() + shift.ms);
  const archive = await openStream(on.podPublisherAddress()!.port, token, `cid=mailbag-test&type=message&sinceTime=${podTime(Date.now() - HOUR)}`);
  await archive.closed;
  t.same(archive.events.map((e) => e.guid), [qid]);
  t.notOk('msgParts' in archive.events[0]!, 'no parts: the spool file was gone');
  assertValid(t, 'message', archive.events[0]!);
});

t.test('wss:// with the configured key and certificate; STARTTLS shows in connection.tls', { skip: haveOpenssl() ? false : 'openssl not installed' }, async (t) => {
  const { dir, cleanup } = tempDir('pod-pub-tls');
  const { key, cert } = selfSignedCertificate(dir, 'mx.test.invalid');
  const secretFile = join(dir, 'var', 'pod.secret');
  const gw = await startGateway(
    testConfig(dir, {
      smtp: { tls: { key, cert } },
      pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, tls: { key, cert }, secretFile, cid: 'mailbag-test', pollInterval: 30 } },
    }),
    { pollMs: 50 },
  );
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const token = signToken(loadOrCreateSecret(secretFile), { cid: 'mailbag-test', expiresInSec: 60 });
  const ws = new WebSocket(`wss://127.0.0.1:${gw.podPublisherAddress()!.port}/v1/stream?cid=mailbag-test&type=message`, {
    headers: { Authorization: `Bearer ${token}` },
    rejectUnauthorized: false,
  });
  const events: Ev[] = [];
  ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString('utf8')) as Ev));
  const closed = new Promise((resolve) => ws.on('close', resolve));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false } });
  await client.sendMail({ envelope: { from: 'ann@sender.test', to: ['alice@example.test'] }, raw: rawMessage(5) });
  client.close();
  await waitFor(() => events.length === 1, 10_000, 'message event over wss');
  const conn = events[0]!.connection as { protocol: string; tls?: { inbound?: { version?: string; cipher?: string } } };
  t.equal(conn.protocol, 'ESMTPS');
  t.match(conn.tls?.inbound?.version, /^TLSv1\.[23]$/);
  t.type(conn.tls?.inbound?.cipher, 'string');
  assertValid(t, 'message', events[0]!);
  ws.close();
  await closed;
});
