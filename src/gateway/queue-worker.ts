// Entry point of the queue thread (see queue-thread.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { QidGenerator, laterQid } from '../delivery/qid.js';
import { Store } from '../store/store.js';
import { Spool } from '../delivery/spool.js';
import { RetentionPruner } from '../delivery/retention.js';
import type { QueueEvents } from '../delivery/queue.js';
import { createDeliveryQueue } from './delivery.js';
import type { FromQueueThread, QueueThreadData, ToQueueThread } from './queue-thread.js';
import { buildRewriteStep } from './rewrite-step.js';

const port = parentPort!;
const data = workerData as QueueThreadData;
// Events are batched per event-loop turn: one postMessage per message cost more than
// the message's attempt bookkeeping.
let outbox: FromQueueThread[] = [];
const post = (m: FromQueueThread) => {
  if (outbox.push(m) === 1) setImmediate(flush);
};
const flush = () => {
  if (!outbox.length) return;
  const batch = outbox;
  outbox = [];
  port.postMessage({ type: 'batch', messages: batch } satisfies FromQueueThread);
};
// A commit's answer goes at once: clients wait for their 250 on it.
const answer = (m: FromQueueThread) => {
  post(m);
  flush();
};
const logger = pino({ level: data.config.log.level, base: { name: 'mailbag' } });
const store = Store.open(data.config.store.path, { role: 'queue' });
const spool = new Spool(data.config.spool.dir);
// Lane 1 of 2: bounces queued here never collide with the SMTP thread's ids (lane 0).
const qids = new QidGenerator(laterQid(store.queue.maxQid(), spool.maxQid()), { lane: 1, lanes: 2 });
// A step that cannot be built fails the thread before 'ready': the gateway does not start.
const events: QueueEvents = {
  attempt(a) {
    post({ type: 'attempt', attempt: a });
  },
  inFlight(count) {
    // only the latest count matters
    const last = outbox[outbox.length - 1];
    if (last?.type === 'inflight') last.count = count;
    else post({ type: 'inflight', count });
  },
  bounced(count) {
    post({ type: 'bounced', count });
  },
  fromMismatch() {
    post({ type: 'fromMismatch' });
  },
  impBagShipped(e) {
    post({ type: 'impBagShipped', peer: e.peer, messages: e.messages });
  },
  impAcknowledged(e) {
    post({ type: 'impAcknowledged', peer: e.peer, answer: e.answer });
  },
  impRepliesPassedBack(e) {
    post({ type: 'impRepliesPassedBack', result: e.result, replies: e.replies });
  },
};
const rewrite = await buildRewriteStep(data.config, { store, logger, events });
const queue = createDeliveryQueue(data.config, {
  store,
  spool,
  qids,
  logger,
  ...(rewrite ? { rewrite } : {}),
  ...(data.pollMs !== undefined ? { pollMs: data.pollMs } : {}),
  events,
});
queue.start();
const pruner = new RetentionPruner({ store, retentionMs: data.config.store.retention, podRetentionMs: data.config.store.podRetention, logger });
pruner.start();
port.on('message', (m: ToQueueThread) => {
  if (m.type === 'kick') {
    queue.kick(m.accepted);
  } else if (m.type === 'commit') {
    queue.commitAccepted(m.rows).then(
      () => answer({ type: 'committed', id: m.id }),
      (err: Error) => {
        const code = (err as { code?: unknown }).code;
        answer({ type: 'committed', id: m.id, error: { message: err.message, ...(typeof code === 'string' ? { code } : {}) } });
      },
    );
  } else if (m.type === 'stop') {
    // stop() never rejects (it waits for attempts, bounded); the store closes either way.
    void Promise.all([queue.stop(m.graceMs), pruner.stop()]).finally(() => {
      store.close();
      if (outbox.length) flush();
      port.postMessage({ type: 'stopped' } satisfies FromQueueThread);
    });
  }
});
port.postMessage({ type: 'ready' } satisfies FromQueueThread);
