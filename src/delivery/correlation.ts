import type { Logger } from 'pino';
import { extractCorrelationKeys } from '../store/correlation-keys.js';
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
    deps.store.correlation.recordMessageKeys({
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
