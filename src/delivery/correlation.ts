import type { Logger } from 'pino';
import { extractCorrelationKeys } from '../store/correlation-keys.js';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { MessageRow } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { readHeaderSection } from './enqueue.js';
import type { Spool } from './spool.js';

/**
 * Records a message's correlation keys the first time the queue claims it, on the queue's
 * thread: the SMTP accept path does no parsing and no extra write for them. The header
 * section is read once from the spool file (just written, so from the page cache); later
 * rounds cost one indexed lookup. A failure is logged and the next round tries again; it
 * never holds up delivery.
 */
export async function recordKeysAtFirstClaim(deps: { store: Store; spool: Spool; logger: Logger }, msg: MessageRow): Promise<void> {
  try {
    if (deps.store.correlation.hasKeys(msg.qid)) return;
    const header = await readHeaderSection(deps.spool, msg);
    await batcherFor(deps.store).record({
      qid: msg.qid,
      receivedAt: msg.received_at,
      keys: extractCorrelationKeys(header),
      envelopeFrom: msg.envelope_from,
      rcpts: deps.store.queue.recipients(msg.qid).map((r) => r.rcpt),
      clientAddress: msg.client_address,
      size: msg.size,
    });
  } catch (err) {
    const e = err as Error & { code?: unknown };
    deps.logger.error({ qid: msg.qid, err: { message: e.message, code: e.code } }, 'correlation: keys not recorded; the next attempt round tries again');
  }
}

/**
 * Collects the keys of the messages claimed in one event-loop turn and records them in one
 * transaction: under load one WAL commit covers many messages (a commit each cost more
 * than the delivery itself on the queue thread).
 */
class KeysBatcher {
  private pending: { keys: MessageKeysInput; resolve(): void; reject(err: Error): void }[] = [];
  private scheduled = false;

  constructor(private readonly store: Store) {}

  record(keys: MessageKeysInput): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ keys, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending.splice(0);
    try {
      this.store.correlation.recordManyMessageKeys(batch.map((b) => b.keys));
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    }
  }
}

const batchers = new WeakMap<Store, KeysBatcher>();

function batcherFor(store: Store): KeysBatcher {
  let b = batchers.get(store);
  if (!b) batchers.set(store, (b = new KeysBatcher(store)));
  return b;
}
