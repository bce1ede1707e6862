// The store's share of the smtp-relay bench, per message, without sockets or spool files: the
// statements the accept path and the queue thread run for each message, stage by stage:
//   accept  QueueStore.insertMessages, 10 messages per group commit by default (synchronous=NORMAL here:
//           the fsync is disk time, not CPU)
//   claim   QueueStore.claimMany, 20 messages per transaction by default (the queue's free slots)
//   record  QueueStore.recordRounds with each message's correlation keys, 20 per transaction:
//           the attempt, the recipient's update, the message finished
// into stores built with different migration lists, interleaved batch by batch (the same
// machine load for each), several rounds. Each store starts empty and stays within one hour,
// as the bench's messages do.
//
//   node --import=tsx --expose-gc bench/smtp-relay-stages.ts
//   (env: BENCH_SCALE=0.5, BENCH_ROUNDS=3, BENCH_ACCEPT_BATCH=10 and BENCH_QUEUE_BATCH=20: messages per
//   transaction; without connection reuse the gateway commits one or two at a time)
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, migrations, type Migration } from '../src/store/migrations.js';
import { CorrelationStore } from '../src/store/correlation-store.js';
import { QueueStore, type NewMessage, type RoundToRecord } from '../src/store/queue-store.js';

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? '3'));
const ACCEPT_BATCH = Math.max(1, Number(process.env.BENCH_ACCEPT_BATCH ?? '10'));
const QUEUE_BATCH = Math.max(1, Number(process.env.BENCH_QUEUE_BATCH ?? '20'));
const SCALED = Math.max(200, Math.round((10_000 * Number(process.env.BENCH_SCALE ?? '1')) / 200) * 200);
// whole queue batches: every claim and recording carries QUEUE_BATCH messages
const N = Math.ceil(SCALED / QUEUE_BATCH) * QUEUE_BATCH;
const STAGES = ['accept', 'claim', 'record'] as const;
type Stage = (typeof STAGES)[number];
const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-relay-stages-'));

/** The per-row report counter triggers on messages, recipients and attempts (migration 16). */
const ROW_COUNTER_TRIGGERS = [
  'report_messages_insert',
  'report_messages_delete',
  'report_messages_update',
  'report_recipients_insert',
  'report_recipients_delete',
  'report_recipients_update',
  'report_attempts_insert',
  'report_attempts_delete',
  'report_attempts_update',
];

interface Variant {
  name: string;
  migrations: readonly Migration[];
  /** Run after migrating (e.g. drop triggers). */
  after?: string;
}

const variants: Variant[] = [
  { name: 'current', migrations },
  { name: 'without row counter triggers', migrations, after: ROW_COUNTER_TRIGGERS.map((t) => `DROP TRIGGER IF EXISTS ${t};`).join('\n') },
];

function cpuUs(f: () => void): number {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

function open(v: Variant, round: number): QueueStore {
  const db = new Database(join(dir, `${round}-${v.name.replace(/\W+/g, '-')}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, [...v.migrations]);
  if (v.after) db.exec(v.after);
  return new QueueStore(db, new CorrelationStore(db));
}

const qidOf = (i: number) => `Q${i.toString(36).toUpperCase().padStart(12, '0')}`;

function newMessage(i: number, receivedAt: number): NewMessage {
  return {
    qid: qidOf(i),
    receivedAt,
    envelopeFrom: `sender${i % 97}@client.example`,
    size: 10_240,
    spoolPath: `/var/spool/mailbag/${qidOf(i)}`,
    spoolOffset: 180,
    sha256: 'a'.repeat(64),
    clientAddress: '127.0.0.1',
    helo: 'client.example',
    recipients: [`rcpt${i % 13}@sink.example`],
  };
}

function round(qid: string, receivedAt: number, now: number): RoundToRecord {
  const rcpt = `rcpt${Number.parseInt(qid.slice(1), 36) % 13}@sink.example`;
  return {
    qid,
    leased: [rcpt],
    attempts: [
      {
        qid,
        nexthop: 'smtp://127.0.0.1:2526',
        startedAt: now - 3,
        durationMs: 3,
        reply: '250 2.0.0 Ok: queued as ABC',
        outcome: 'delivered',
        recipients: [{ rcpt, state: 'delivered', reply: '250 2.0.0 Ok: queued as ABC', claimedGen: 0 }],
      },
    ],
    keys: {
      qid,
      receivedAt,
      keys: { messageId: `<${qid}@client.example>`, upstreamQid: undefined, upstreamHost: undefined, proofpointGuid: undefined, proofpointOrigGuid: undefined },
      envelopeFrom: 'sender@client.example',
      rcpts: [rcpt],
      clientAddress: '127.0.0.1',
      size: 10_240,
    },
  };
}

/** One pass of N messages through one store: CPU µs per stage. */
function pass(store: QueueStore, base: number, t0: number): Record<Stage, number> {
  const cpu: Record<Stage, number> = { accept: 0, claim: 0, record: 0 };
  for (let i = 0; i < N; i += QUEUE_BATCH) {
    const now = t0 + i;
    const batch = Array.from({ length: QUEUE_BATCH }, (_, k) => newMessage(base + i + k, now));
    for (let k = 0; k < QUEUE_BATCH; k += ACCEPT_BATCH) {
      const group = batch.slice(k, k + ACCEPT_BATCH);
      cpu.accept += cpuUs(() => store.insertMessages(group));
    }
    const qids = batch.map((m) => m.qid);
    let claimed: ReturnType<QueueStore['claimMany']> = [];
    cpu.claim += cpuUs(() => (claimed = store.claimMany(qids, now, now + 60_000)));
    if (claimed.length !== QUEUE_BATCH) throw new Error(`claimed ${claimed.length} of ${QUEUE_BATCH}`);
    const rounds = qids.map((q) => round(q, now, now + 5));
    let finished: ReturnType<QueueStore['recordRounds']> = [];
    cpu.record += cpuUs(() => (finished = store.recordRounds(rounds, now + 5)));
    if (finished.some((f) => !f)) throw new Error('a message was not finished');
  }
  return cpu;
}

try {
  const t0 = Math.floor(Date.parse('2026-11-30T10:00:00Z') / 3_600_000) * 3_600_000 + 1_000;
  const totals = variants.map(() => ({ accept: 0, claim: 0, record: 0 }) as Record<Stage, number>);
  // warm-up pass per variant (statements compiled, JIT), not counted
  for (const v of variants) {
    const s = open(v, -1);
    pass(s, 0, t0);
    s.db.close();
  }
  for (let r = 0; r < ROUNDS; r++) {
    const stores = variants.map((v) => open(v, r));
    // alternately first, so neither always runs on a cooler cache
    const order = r % 2 ? [...variants.keys()].reverse() : [...variants.keys()];
    for (const i of order) {
      global.gc?.();
      const cpu = pass(stores[i]!, 0, t0);
      for (const s of STAGES) totals[i]![s] += cpu[s];
    }
    for (const s of stores) s.db.close();
  }
  const perMsg = (us: number) => (us / (N * ROUNDS)).toFixed(1);
  process.stdout.write(`${N} messages x ${ROUNDS} rounds per store, ${ACCEPT_BATCH} per accept and ${QUEUE_BATCH} per claim and recording transaction; CPU µs per message\n\n`);
  process.stdout.write(`| store | accept | claim | record | total |\n|---|---:|---:|---:|---:|\n`);
  variants.forEach((v, i) => {
    const t = totals[i]!;
    process.stdout.write(`| ${v.name} | ${perMsg(t.accept)} | ${perMsg(t.claim)} | ${perMsg(t.record)} | ${perMsg(t.accept + t.claim + t.record)} |\n`);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
