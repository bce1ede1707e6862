// Worker-thread entry for the store concurrency tests: one thread, one connection to
// the shared WAL file, playing one writer's role (the queue thread's claim-and-record
// loop, or the CLI's finish/retry) until told to stop. Reports every error's code.
import { parentPort, workerData } from 'node:worker_threads';
import { Store } from '../../src/store/store.js';
import type { ConnectionRole } from '../../src/store/db.js';

export interface StoreWriterData {
  path: string;
  role: ConnectionRole;
  kind: 'queue' | 'cli' | 'migrate';
  qids: string[];
  iterations: number;
}

export interface StoreWriterReport {
  ops: number;
  errors: string[];
}

const data = workerData as StoreWriterData;
const port = parentPort!;

function run(): StoreWriterReport {
  const errors: string[] = [];
  let ops = 0;
  const store = Store.open(data.path, { role: data.role });
  try {
    if (data.kind === 'migrate') return { ops: 1, errors };
    for (let i = 0; i < data.iterations; i++) {
      const qid = data.qids[i % data.qids.length]!;
      try {
        const now = Date.now();
        if (data.kind === 'queue') {
          // read-then-write: the message and its due recipients, then the leases
          const claimed = store.queue.claimMany([qid], now, now + 60_000);
          for (const c of claimed) {
            const rcpts = c.recipients.map((r) => r.rcpt);
            store.queue.recordRounds([
              {
                qid,
                leased: rcpts,
                attempts: [
                  {
                    qid,
                    nexthop: 'smtp://127.0.0.1:1',
                    startedAt: now,
                    durationMs: 1,
                    reply: '451 4.0.0 try again',
                    outcome: 'deferred',
                    recipients: rcpts.map((rcpt) => ({ rcpt, state: 'deferred' as const, reply: '451 4.0.0 try again', nextAttemptAt: now })),
                  },
                ],
              },
            ]);
          }
        } else {
          // read-then-write: counts the open recipients, then (maybe) marks the message done
          store.queue.finishIfDone(qid, now);
          store.queue.retryNow(qid, now);
        }
        ops++;
      } catch (err) {
        errors.push((err as { code?: string }).code ?? (err as Error).message);
      }
    }
  } finally {
    store.close();
  }
  return { ops, errors };
}

// Start together: the test posts 'go' once every writer is ready.
port.once('message', () => {
  port.postMessage(run() satisfies StoreWriterReport);
});
port.postMessage('ready');
