// Crash durability: the gateway runs as a child process (`mailbag start`), clients
// stream messages at it, and it is SIGKILLed at random moments and restarted on the
// same spool and store. A 250 is a promise: every acknowledged message must reach
// both next hops (a Maildir and an SMTP server); nothing may reach a Maildir twice.
//
// SMTP next hops are at-least-once by nature: if the gateway dies after the next hop
// said 250 but before the attempt is committed, the restarted queue sends it again.
// So at the SMTP hop a duplicate is allowed only if the store recorded exactly one
// delivery for that message (the other copy came from an attempt a kill cut short) and
// its first copy arrived before a kill; the queue itself must never deliver twice.
//
// No wall-clock thresholds: kills come after a random number of 250s (not after a
// random time, which on a loaded machine may fall before any traffic), and the checks
// wait for events (enough 250s, the store's queue drained, the gateway stopped), bounded
// only by the test's timeout.
//
// MAILBAG_TEST_SEED=N replays a run's kill schedule and message sizes.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { cli } from './helpers/cli.js';
import Database from 'better-sqlite3';
import nodemailer from 'nodemailer';
import { spawnGateway, type GatewayProcess } from './helpers/gateway-process.js';
import { markerOf, startMarkerSink } from './helpers/marker-sink.js';

const seed = Number(process.env.MAILBAG_TEST_SEED ?? Date.now() % 1_000_000);
function mulberry32(a: number) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(seed);
const KILLS = 4;
const SENDERS = 4;
const MIN_ACKED = 60;
/** Informational: how long before a kill a duplicate's first copy arrived (the unrecorded window). */
const IN_FLIGHT_WINDOW_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Regular files under dir; files the running gateway renames away meanwhile are skipped. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((rel) => join(dir, rel))
    .filter((p) => statSync(p, { throwIfNoEntry: false })?.isFile() === true);
}

function readIfThere(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function message(marker: string, bytes: number): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n';
  const body = line.repeat(Math.max(1, Math.ceil(bytes / line.length)));
  return Buffer.from(
    `From: sender@example.org\r\nTo: rcpt@smtp.test, user@box.test\r\nSubject: durability ${marker}\r\n` +
      `Message-ID: <${marker}@durability.test>\r\nX-Test-Marker: ${marker}\r\n\r\n${body}`,
  );
}

t.test('SIGKILL at random points: every 250 is delivered, never twice to a Maildir', { timeout: 90_000 }, async (t) => {
  t.comment(`seed ${seed} (MAILBAG_TEST_SEED=${seed} replays it)`);
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-durability-'));
  const sink = await startMarkerSink();
  let gw: GatewayProcess | undefined;
  t.teardown(async () => {
    await gw?.kill();
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const mailboxes = join(dir, 'mailboxes');
  const spoolDir = join(dir, 'spool');
  const config = join(dir, 'mailbag.yaml');
  writeFileSync(
    config,
    [
      'gateway: { hostname: durability.mailbag.test }',
      'smtp:',
      '  listen: { host: 127.0.0.1, port: 0 }',
      '  greetingDelay: 0',
      '  localDomains: [smtp.test, box.test]',
      '  maxConnectionRatePerIp: 0', // a new connection per message, from one address
      `spool: { dir: ${JSON.stringify(spoolDir)} }`,
      `store: { path: ${JSON.stringify(join(dir, 'mailbag.db'))} }`,
      'queue: { retryInitial: 100ms, retryMax: 500ms, shutdownGrace: 5s }',
      'routes:',
      `  - { domain: smtp.test, nexthop: "smtp://127.0.0.1:${sink.port}" }`,
      `  - { domain: box.test, nexthop: ${JSON.stringify(`maildir:${mailboxes}`)} }`,
      'admin: { enabled: false }',
      'log: { level: info }', // the listening line is info
      '',
    ].join('\n'),
  );

  let port: number | undefined;
  // Resolved whenever the gateway is (back) up: senders wait for it, not for a time.
  let up!: Promise<void>;
  let markUp!: () => void;
  const down = (): void => {
    up = new Promise<void>((r) => (markUp = r));
  };
  down();
  // Waiters for the n-th 250.
  const ackWaiters: { n: number; resolve(): void }[] = [];
  const untilAcked = (n: number) => new Promise<void>((resolve) => (acked.size >= n ? resolve() : ackWaiters.push({ n, resolve })));
  const acked = new Set<string>();
  const unacked = new Set<string>();
  const killTimes: number[] = [];
  let stopSending = false;
  let seq = 0;
  const sizes = new Map<string, number>();
  const qidOf = new Map<string, string>();

  async function sender(id: number) {
    while (!stopSending) {
      if (port === undefined) {
        await up;
        continue;
      }
      const marker = `m${++seq}.s${id}`;
      // Mostly small messages, some large enough that a kill lands in the middle of DATA.
      const bytes = random() < 0.25 ? 150_000 + Math.floor(random() * 250_000) : 500 + Math.floor(random() * 8000);
      sizes.set(marker, bytes);
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port,
        secure: false,
        ignoreTLS: true,
        connectionTimeout: 2000,
        greetingTimeout: 2000,
        socketTimeout: 5000,
      });
      try {
        const info = await transport.sendMail({
          envelope: { from: 'sender@example.org', to: ['rcpt@smtp.test', 'user@box.test'] },
          raw: message(marker, bytes),
        });
        const qid = /^250[ -].*queued as (\S+)/.exec(info.response)?.[1];
        if (qid) {
          acked.add(marker);
          qidOf.set(marker, qid);
          for (const w of ackWaiters.filter((x) => acked.size >= x.n)) {
            ackWaiters.splice(ackWaiters.indexOf(w), 1);
            w.resolve();
          }
        } else unacked.add(marker);
      } catch {
        unacked.add(marker); // no 250: the client may retry (with a new marker)
        await sleep(30); // pacing only: not to spin on a refused connection
      } finally {
        transport.close();
      }
    }
  }

  gw = await spawnGateway(config);
  port = gw.smtpPort;
  markUp();
  const senders = Array.from({ length: SENDERS }, (_, i) => sender(i));

  for (let round = 0; round < KILLS; round++) {
    // After 2 to 14 more 250s: amid traffic, with other sessions in mid-DATA.
    await untilAcked(acked.size + 2 + Math.floor(random() * 13));
    port = undefined;
    down();
    await gw.kill();
    killTimes.push(Date.now());
    gw = await spawnGateway(config);
    port = gw.smtpPort;
    markUp();
  }
  await untilAcked(MIN_ACKED);
  stopSending = true;
  await Promise.all(senders);
  t.ok(acked.size >= MIN_ACKED, `${acked.size} messages acknowledged with 250 (${unacked.size} not)`);
  t.equal(killTimes.length, KILLS, `${KILLS} SIGKILLs`);

  const maildirMarkers = () => {
    const counts = new Map<string, number>();
    for (const f of filesUnder(join(mailboxes, 'box.test', 'user'))) {
      if (!/[/\\](new|cur)[/\\]/.test(f)) continue; // tmp/ holds unfinished writes
      const bytes = readIfThere(f); // new/ -> cur/ by a mail reader would move it
      const m = bytes && markerOf(bytes);
      if (m) counts.set(m, (counts.get(m) ?? 0) + 1);
    }
    return counts;
  };

  // The last gateway catches up: wait until its store has nothing open (every recipient
  // delivered or failed), then stop it. Once it has exited nothing more can arrive, so
  // whatever duplicates there are have shown themselves.
  const openRecipients = () => {
    const db = new Database(join(dir, 'mailbag.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare(`SELECT COUNT(*) AS n FROM recipients WHERE state IN ('queued', 'deferred')`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  while (openRecipients() > 0) await sleep(100);
  const stopped = await gw.stop(10_000);
  t.same(stopped, { code: 0, signal: null }, 'SIGTERM stops the gateway cleanly');

  const box = maildirMarkers();
  const smtp = sink.counts();
  const sent = new Set([...acked, ...unacked]);
  for (const m of acked) {
    if (box.get(m) !== 1) t.fail(`maildir has ${box.get(m) ?? 0} copies of acknowledged ${m}`);
    if (!smtp.has(m)) t.fail(`smtp next hop never got acknowledged ${m}`);
  }
  for (const [m, n] of box) {
    if (!sent.has(m)) t.fail(`maildir holds ${m}, which was never sent`);
    if (n > 1) t.fail(`maildir holds ${n} copies of ${m}`);
  }
  // What the store says was delivered: one 'delivered' attempt per acknowledged message and hop.
  const store = new Database(join(dir, 'mailbag.db'), { readonly: true });
  const delivered = store.prepare(`SELECT COUNT(*) AS n FROM attempts WHERE qid = ? AND nexthop = ? AND outcome = 'delivered'`);
  const smtpHop = `smtp://127.0.0.1:${sink.port}`;
  const maildirHop = `maildir:${mailboxes}`;
  for (const m of acked) {
    const q = qidOf.get(m)!;
    const viaSmtp = (delivered.get(q, smtpHop) as { n: number }).n;
    const viaMaildir = (delivered.get(q, maildirHop) as { n: number }).n;
    if (viaSmtp !== 1 || viaMaildir !== 1) t.fail(`${m} (${q}): store records ${viaSmtp} smtp and ${viaMaildir} maildir deliveries, want 1 and 1`);
  }
  let duplicates = 0;
  const gaps: number[] = [];
  for (const [m, n] of smtp) {
    if (!sent.has(m)) t.fail(`smtp next hop got ${m}, which was never sent`);
    if (n < 2) continue;
    duplicates += n - 1;
    const first = sink.messages.find((x) => x.marker === m)!.at;
    const gap = Math.min(...killTimes.filter((k) => k >= first).map((k) => k - first));
    t.ok(Number.isFinite(gap), `duplicate ${m}: its first copy arrived before a kill`);
    gaps.push(gap);
  }
  store.close();
  t.ok(duplicates <= KILLS * 20, `at most queue.concurrency redeliveries per kill (${duplicates})`);
  if (gaps.length) {
    const late = gaps.filter((g) => g > IN_FLIGHT_WINDOW_MS).length;
    t.comment(`duplicates' first copies arrived ${Math.min(...gaps)} to ${Math.max(...gaps)} ms before a kill (${late} more than ${IN_FLIGHT_WINDOW_MS} ms)`);
  }
  t.pass(`maildir: ${acked.size} acknowledged messages each exactly once; ` + `smtp hop: all present, ${duplicates} redelivery(ies) of attempts cut by a kill`);
  const acceptedUnacked = [...unacked].filter((m) => box.has(m)).length;
  t.comment(`${acceptedUnacked} of ${unacked.size} unacknowledged messages were stored before the kill and delivered anyway`);

  // Spool files go only after every recipient is finished: all finished now, so none left
  // in the spool directory. A kill between a rename and its commit leaves a file the store
  // does not know: start-up sets it aside in unknown/ (never deletes it), and such a file
  // can only be one whose client got no 250.
  const unknownDir = join(spoolDir, 'unknown');
  const setAside = filesUnder(unknownDir);
  for (const f of setAside) {
    const m = markerOf(readFileSync(f));
    t.ok(m !== undefined && !acked.has(m), `${basename(f)} set aside at a start holds ${m}, which got no 250`);
  }
  const leftovers = filesUnder(spoolDir).filter((f) => !f.startsWith(unknownDir + '/'));
  const db = new Database(join(dir, 'mailbag.db'), { readonly: true });
  const row = db.prepare('SELECT state FROM messages WHERE qid = ?');
  const why = leftovers.map((f) => `${basename(f)}: ${(row.get(basename(f)) as { state: string } | undefined)?.state ?? 'no message row'}`);
  db.close();
  // A kill between the 'done' commit and the unlink leaves a finished message's file:
  // start-up must remove it, or the spool leaks.
  t.same(why.filter((w) => !/^(gateway\.lock(\.holder)?|results\.journal):/.test(w)), [], 'spool is empty once everything is delivered (the lock and the results journal are fixed files)');
  if (setAside.length) {
    const recovered = await cli(['queue', 'recover', '--config', config]);
    t.equal(recovered.code, 0, `every file set aside is a complete spool file that queue recover takes (${setAside.length})`);
  }

  // The bytes that reached the next hop are the client's, behind the gateway's Received: line.
  let exact = 0;
  for (const got of sink.messages) {
    if (!got.marker || !acked.has(got.marker)) continue;
    const received = /^Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/.exec(got.raw.toString('latin1'));
    if (!received) {
      t.fail(`${got.marker}: no Received: line first`);
      continue;
    }
    const rest = got.raw.subarray(received[0].length);
    if (rest.equals(message(got.marker, sizes.get(got.marker)!))) exact++;
    else t.fail(`${got.marker}: bytes differ from what the client sent`);
  }
  t.ok(exact > 0, `${exact} messages at the SMTP hop byte-exact behind the added Received: line`);
});
