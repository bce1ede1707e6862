// The SMTP/LMTP transport against real next hops on 127.0.0.1: LMTP per-recipient replies
// after DATA, per-route TLS, connect and greeting timeouts apart from the attempt timeout,
// and the per-next-hop limit that answers "busy" instead of waiting.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { parseNextHop, type NextHop, type TlsPolicy } from '../src/config/schema.js';
import { SmtpTransport, type SmtpTransportOptions } from '../src/delivery/transports/smtp.js';
import { isHopBusy, type DeliveryResult, type HopBusy } from '../src/delivery/transports/transport.js';
import { memoryRequest, smtpError, startHangingHop, startHop } from './helpers/next-hop.js';

const BODY = Buffer.from('From: ann@sender.test\r\nTo: bob@remote.test\r\nSubject: next hop\r\n\r\nbody\r\n');

function hop(url: string, tls?: TlsPolicy, tlsVerify?: boolean): NextHop {
  const h = parseNextHop(url, { tls: tls ?? 'opportunistic', tlsVerify: tlsVerify ?? tls === 'required' });
  if (typeof h === 'string') throw new Error(h);
  return h;
}

function transport(t: Test, kind: 'smtp' | 'lmtp', o: Partial<SmtpTransportOptions> = {}): SmtpTransport {
  const tr = new SmtpTransport(kind, { hostname: 'mx.test.invalid', timeoutMs: 60_000, ...o });
  t.teardown(() => tr.close());
  return tr;
}

function attempted(r: DeliveryResult | HopBusy): DeliveryResult {
  if (isHopBusy(r)) throw new Error(`unexpectedly busy: ${r.reply}`);
  return r;
}

t.test('LMTP: 250/450/550 after DATA map to delivered/deferred/failed, each with its own reply', async (t) => {
  const lmtp = await startHop({
    lmtp: true,
    lmtpReplies: (rcpts) =>
      rcpts.map((r) =>
        r.startsWith('full') ? smtpError(450, '4.2.2 mailbox full, try later') : r.startsWith('gone') ? smtpError(550, '5.1.1 no such mailbox') : `2.1.5 stored for ${r}`,
      ),
  });
  t.teardown(() => lmtp.close());
  const tr = transport(t, 'lmtp');
  const res = attempted(await tr.deliver(hop(`lmtp://127.0.0.1:${lmtp.port}`), memoryRequest(['ok@remote.test', 'full@remote.test', 'gone@remote.test', 'also@remote.test'], BODY)));
  t.same(
    res.recipients.map((r) => [r.rcpt, r.outcome]),
    [
      ['ok@remote.test', 'delivered'],
      ['full@remote.test', 'deferred'],
      ['gone@remote.test', 'failed'],
      ['also@remote.test', 'delivered'],
    ],
  );
  t.match(res.recipients[0]!.reply, /^250 .*stored for ok@remote\.test/, "a delivered recipient's reply is its own 250");
  t.match(res.recipients[1]!.reply, /^450 .*mailbox full/);
  t.match(res.recipients[2]!.reply, /^550 .*no such mailbox/);
  t.match(res.recipients[3]!.reply, /^250 .*stored for also@remote\.test/);
  t.match(res.reply, /^450 4\.2\.2 lmtp:.*: 2 of 4 delivered, 1 deferred, 1 failed/, 'the overall reply does not claim success');
  t.same(lmtp.messages.map((m) => m.to), [['ok@remote.test', 'also@remote.test']]);

  // the same connection takes the next message, every recipient accepted
  const next = attempted(await tr.deliver(hop(`lmtp://127.0.0.1:${lmtp.port}`), memoryRequest(['x@remote.test', 'y@remote.test'], BODY)));
  t.match(next.recipients[0]!.reply, /^250 .*stored for x@remote\.test/);
  t.match(next.recipients[1]!.reply, /^250 .*stored for y@remote\.test/);
  t.match(next.reply, /^250 /);
});

t.test('TLS per route', async (t) => {
  const withTls = await startHop({ starttls: true });
  const plain = await startHop({ starttls: false });
  t.teardown(async () => {
    await withTls.close();
    await plain.close();
  });
  const to = ['bob@remote.test'];

  t.test('none: plaintext even when STARTTLS is offered', async (t) => {
    const tr = transport(t, 'smtp');
    const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${withTls.port}`, 'none'), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'delivered');
    t.equal(withTls.messages.at(-1)!.secure, false);
  });

  t.test('opportunistic (default): STARTTLS when offered, an unverifiable certificate accepted', async (t) => {
    const tr = transport(t, 'smtp');
    const h = hop(`smtp://localhost:${withTls.port}`);
    t.equal(h.kind === 'smtp' && h.tlsVerify, false, 'no verification by default');
    const res = attempted(await tr.deliver(h, memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'delivered');
    t.equal(withTls.messages.at(-1)!.secure, true);
    const clear = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${plain.port}`), memoryRequest(to, BODY)));
    t.equal(clear.recipients[0]!.outcome, 'delivered', 'plaintext when not offered');
  });

  t.test('required against a next hop without STARTTLS: deferred with a clear 4xx', async (t) => {
    const tr = transport(t, 'smtp');
    const before = plain.messages.length;
    const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${plain.port}`, 'required', false), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'deferred');
    t.match(res.recipients[0]!.reply, /^451 4\.7\.4 TLS is required for smtp:\/\/127\.0\.0\.1:\d+, but it did not accept STARTTLS/);
    t.equal(plain.messages.length, before, 'nothing sent in plaintext');
  });

  t.test('required verifies the certificate by default: a self-signed one defers', async (t) => {
    const tr = transport(t, 'smtp');
    const before = withTls.messages.length;
    const res = attempted(await tr.deliver(hop(`smtp://localhost:${withTls.port}`, 'required'), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'deferred');
    t.match(res.recipients[0]!.reply, /^451 4\.7\.5 TLS with smtp:\/\/localhost:\d+ failed \(certificate verification on\): .*(self[- ]signed|certificate)/i);
    t.equal(withTls.messages.length, before, 'nothing sent');
  });

  t.test('required with tlsVerify: false: encrypted, certificate not checked', async (t) => {
    const tr = transport(t, 'smtp');
    const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${withTls.port}`, 'required', false), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'delivered');
    t.equal(withTls.messages.at(-1)!.secure, true);
  });
});

t.test('greeting timeout: a next hop that never greets is given up on well before the attempt timeout', { timeout: 20_000 }, async (t) => {
  const hanging = await startHangingHop();
  t.teardown(() => hanging.close());
  // attemptTimeout (socket inactivity) 10 minutes: only greetingTimeout can end this attempt
  const tr = transport(t, 'smtp', { timeoutMs: 600_000, greetingTimeoutMs: 100 });
  const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${hanging.port}`), memoryRequest(['bob@remote.test'], BODY)));
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /^451 4\.4\.1 .*Greeting never received/);
});

/** A listener whose backlog is full: further TCP connects hang in SYN_SENT (Linux). */
async function fullBacklog(t: Test): Promise<number | undefined> {
  const py = spawn('python3', ['-c', "import socket,sys,time\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)"], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => void py.kill());
  const port = await new Promise<number | undefined>((resolve) => {
    py.once('error', () => resolve(undefined));
    py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  if (!port) return undefined;
  const fillers: Socket[] = [];
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  // more than any backlog listen(0) gets: the queue is full whatever the kernel rounds it to
  for (let i = 0; i < 8; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
  }
  await new Promise((resolve) => fillers[0]!.once('connect', resolve)); // the one the backlog takes
  return port;
}

const python = spawnSync('python3', ['--version']).status === 0;

t.test('connect timeout: a next hop that never completes the TCP handshake', { timeout: 20_000, skip: python ? false : 'python3 is needed to hold a listener with a full backlog' }, async (t) => {
  const port = await fullBacklog(t);
  if (!port) throw new Error('python3 did not report the port of its listener');
  const tr = transport(t, 'smtp', { timeoutMs: 600_000, connectTimeoutMs: 100, greetingTimeoutMs: 600_000 });
  const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${port}`), memoryRequest(['bob@remote.test'], BODY)));
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /ETIMEDOUT/);
});

t.test('per-next-hop limit: beyond it an attempt is not made and says so at once', async (t) => {
  const hanging = await startHangingHop();
  const sink = await startHop();
  t.teardown(() => sink.close());
  const tr = transport(t, 'smtp', { maxConnections: 2 });
  const bad = hop(`smtp://127.0.0.1:${hanging.port}`);
  const pending = [tr.deliver(bad, memoryRequest(['a@bad.test'], BODY)), tr.deliver(bad, memoryRequest(['b@bad.test'], BODY))];
  await hanging.opened(2);
  const third = await tr.deliver(bad, memoryRequest(['c@bad.test'], BODY));
  t.ok(isHopBusy(third), 'the third attempt to the hanging next hop is not made');
  if (isHopBusy(third)) {
    t.same(third.recipients, ['c@bad.test']);
    t.match(third.reply, /^451 4\.4\.5 .* has 2 attempts in flight/);
  }
  const other = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${sink.port}`), memoryRequest(['d@good.test'], BODY)));
  t.equal(other.recipients[0]!.outcome, 'delivered', 'another next hop is not held up');
  t.equal(hanging.open, 2, 'the hanging attempts are still pending');
  t.equal(hanging.maxOpen, 2);
  await hanging.close();
  const ended = (await Promise.all(pending)).map((r) => attempted(r).recipients[0]!.outcome);
  t.same(ended, ['deferred', 'deferred'], 'a dropped connection defers');
});

t.test('a saturated next hop that is making progress hands its connection over instead of answering busy', async (t) => {
  const sink = await startHop();
  t.teardown(() => sink.close());
  // handoverMs far beyond the test: only the order of events decides
  const tr = transport(t, 'smtp', { maxConnections: 1, handoverMs: 600_000 });
  const h = hop(`smtp://127.0.0.1:${sink.port}`);
  const first = attempted(await tr.deliver(h, memoryRequest(['a@good.test'], BODY)));
  t.equal(first.recipients[0]!.outcome, 'delivered', 'a finished transaction: the next hop makes progress');
  const [second, third] = await Promise.all([tr.deliver(h, memoryRequest(['b@good.test'], BODY)), tr.deliver(h, memoryRequest(['c@good.test'], BODY))]);
  t.notOk(isHopBusy(second) || isHopBusy(third), 'the third waited for the connection the second used');
  t.same(
    sink.messages.map((m) => m.to[0]),
    ['a@good.test', 'b@good.test', 'c@good.test'],
  );
});

/**
 * A next hop that offers STARTTLS, answers it with 220, then sends octets that are not
 * TLS: every handshake fails. A session that does not ask for STARTTLS gets a plain
 * SMTP transaction; each connection records whether it tried TLS and what it was given.
 */
async function startBrokenTlsHop(): Promise<{ port: number; sessions: Array<{ starttls: boolean; data?: string }>; close(): Promise<void> }> {
  const { createServer } = await import('node:net');
  const sessions: Array<{ starttls: boolean; data?: string }> = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const session: { starttls: boolean; data?: string } = { starttls: false };
    sessions.push(session);
    let buffer = '';
    let inData = false;
    let body = '';
    socket.write('220 broken-tls.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      // The client's TLS hello gets octets that are not a TLS record.
      if (session.starttls) return void socket.end('this is not a TLS record, and never will be\r\n');
      buffer += chunk.toString('latin1');
      for (let i = buffer.indexOf('\r\n'); i !== -1; i = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            session.data = body;
            socket.write('250 2.0.0 queued\r\n');
          } else body += `${line}\r\n`;
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-broken-tls.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n');
        else if (verb === 'STAR') {
          session.starttls = true;
          socket.write('220 2.0.0 go ahead\r\n');
          return;
        } else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') socket.write('250 2.1.0 ok\r\n');
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go on\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
        } else socket.write('502 5.5.2 what\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

t.test('a TLS handshake that fails after STARTTLS was accepted', async (t) => {
  const broken = await startBrokenTlsHop();
  t.teardown(() => broken.close());
  const to = ['bob@remote.test'];

  t.test('opportunistic: retried at once on a new connection in plaintext (Postfix may), and logged', async (t) => {
    const logged: Array<{ fields: Record<string, unknown>; msg: string }> = [];
    const logger = { warn: (fields: Record<string, unknown>, msg: string) => logged.push({ fields, msg }) };
    const tr = transport(t, 'smtp', { logger });
    const from = broken.sessions.length;
    const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${broken.port}`, 'opportunistic'), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'delivered', res.recipients[0]!.reply);
    t.match(res.recipients[0]!.reply, /^250 2\.0\.0 queued/);
    const sessions = broken.sessions.slice(from);
    t.same(sessions.map((s) => [s.starttls, s.data !== undefined]), [[true, false], [false, true]], 'the TLS session carried nothing; the plaintext one the message');
    t.match(sessions[1]!.data, /Subject: next hop/);
    t.equal(logged.length, 1);
    t.equal(logged[0]!.msg, 'smtp: TLS handshake failed; retrying in plaintext');
    t.equal(logged[0]!.fields['nexthop'], `smtp://127.0.0.1:${broken.port}`);
    t.ok(logged[0]!.fields['reason'], 'says why');
  });

  t.test('required: deferred, never plaintext', async (t) => {
    const tr = transport(t, 'smtp');
    const from = broken.sessions.length;
    const res = attempted(await tr.deliver(hop(`smtp://127.0.0.1:${broken.port}`, 'required', false), memoryRequest(to, BODY)));
    t.equal(res.recipients[0]!.outcome, 'deferred');
    t.match(res.recipients[0]!.reply, /^451 4\.7\.5 TLS with smtp:\/\/127\.0\.0\.1:\d+ failed/);
    t.same(broken.sessions.slice(from).map((s) => [s.starttls, s.data]), [[true, undefined]], 'one session, nothing sent');
  });
});

t.test('opportunistic with tlsVerify: a certificate that fails verification still defers (no plaintext retry)', async (t) => {
  const withTls = await startHop({ starttls: true });
  t.teardown(() => withTls.close());
  const tr = transport(t, 'smtp');
  const res = attempted(await tr.deliver(hop(`smtp://localhost:${withTls.port}`, 'opportunistic', true), memoryRequest(['bob@remote.test'], BODY)));
  t.equal(res.recipients[0]!.outcome, 'deferred');
  t.match(res.recipients[0]!.reply, /^451 4\.7\.5 /);
  t.equal(withTls.messages.length, 0, 'nothing sent');
});
