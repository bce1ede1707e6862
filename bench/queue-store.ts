// The queue connection's SQLite work per message with connection reuse, alone: what the queue
// thread's store does for each message on the hot path, with no transport and no SMTP
// listener. Each loop turn is one recording transaction as the queue makes them under load: the
// rounds of the messages claimed in the turn before (one delivered recipient each, with their
// correlation keys), the accepted batch handed over by the SMTP thread (10 messages, inserted
// leased) and their claims, committed durably (synchronous=FULL). This thread's CPU per
// message (/proc/thread-self/schedstat) is the figure.
//
// Baseline, measured in the same run: the same loop on the same schema without the report
// counters' triggers and without correlation keys, i.e. the queue's own rows alone; the ratio
// is what the counters and the keys add on top.
//
//   node --import=tsx bench/queue-store.ts      # BENCH_SCALE (1 = 20,000 messages), BENCH_ROUNDS
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClaimedMessage, NewMessage, RoundToRecord } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { currentThreadCpuMs } from './lib/thread-cpu.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const count = Math.max(1000, Math.round(20_000 * scale));
const BATCH = 10;
const RCPT = 'b@example.test';

function accepted(qid: string, now: number): NewMessage {
  return {
    qid, receivedAt: now, envelopeFrom: 'a@sender.test', size: 10_240, spoolPath: `/var/spool/mailbag/${qid}`, spoolOffset: 212, sha256: 'ab'.repeat(32),
    clientAddress: '127.0.0.1', clientHostname: 'client.test', helo: 'client.test', recipients: [RCPT],
  };
}

function delivered(qid: string, now: number, keys: boolean): RoundToRecord {
  return {
    qid,
    leased: [RCPT],
    attempts: [{ qid, nexthop: 'smtp://127.0.0.1:2526', startedAt: now, durationMs: 3, reply: '250 2.0.0 Ok: queued as 4ABCD', outcome: 'delivered', recipients: [{ rcpt: RCPT, state: 'delivered', reply: '250 2.0.0 Ok: queued as 4ABCD', claimedGen: 0 }] }],
    keys: keys
      ? { qid, receivedAt: now, keys: { messageId: `<${qid}.bench@sender.test>`, upstreamQid: `4AB${qid.slice(8)}`, upstreamHost: 'mx.test', proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 'a@sender.test', rcpts: [RCPT], clientAddress: '127.0.0.1', size: 10_240 }
      : undefined,
  };
}

/** CPU µs per message of `count` messages through the loop. */
function run(full: boolean): number {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-queue-store-'));
  const store = Store.open(join(dir, 'store.db'), { role: 'queue' });
  try {
    if (!full) {
      const triggers = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'report_%'").pluck().all() as string[];
      for (const name of triggers) store.db.exec(`DROP TRIGGER ${name}`);
    }
    let seq = 0;
    const qid = () => (1e12 + seq++).toString(36).toUpperCase().padStart(13, '0');
    let inFlight: string[] = [];
    const cpu0 = currentThreadCpuMs();
    for (let i = 0; i < count; i += BATCH) {
      const now = Date.now();
      const batch = Array.from({ length: BATCH }, () => accepted(qid(), now));
      let claimed: ClaimedMessage[] = [];
      store.queue.recordRounds(
        inFlight.map((q) => delivered(q, now, full)),
        now,
        undefined,
        {
          pick: () => ({ qids: batch.map((m) => m.qid), until: now + 60_000 }),
          claimed: (c) => (claimed = c),
          notClaimed: (err) => {
            throw err;
          },
          accepted: () => ({ rows: batch, committed: () => undefined, notCommitted: (err) => { throw err; } }),
        },
        { waitForLock: false },
      );
      inFlight = claimed.map((c) => c.message.qid);
    }
    return ((currentThreadCpuMs() - cpu0) * 1000) / count;
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`queue-store: ${count} messages, recorded ${BATCH} per transaction with the next ${BATCH} accepted and claimed (this thread's CPU)`);
for (let r = 1; r <= rounds; r++) {
  const bare = run(false);
  const full = run(true);
  console.log(`round ${r}: ${full.toFixed(0)} µs/msg; baseline (no report triggers, no keys) ${bare.toFixed(0)} µs/msg; ratio ${(full / bare).toFixed(2)}x; load average ${loadavg()[0]!.toFixed(1)}`);
}
