import type { Logger } from 'pino';
import { extractCorrelationKeys } from '../store/correlation-keys.js';
import type { MessageKeysInput } from '../store/correlation-store.js';
import type { MessageRow, RecipientRow } from '../store/queue-store.js';
import type { Store } from '../store/store.js';

/**
 * A message's correlation keys, to be recorded with its first attempt round's result (in
 * that transaction: no write of their own), from the header section the spool check
 * before delivery already read: the SMTP accept path does no parsing and no extra write
 * for them, and the queue thread no second read. Undefined when they are already
 * recorded. A round whose claimed recipients were all never attempted is taken to be
 * the first without asking the store (a message whose keys are there anyway changes
 * nothing: recording is idempotent); later rounds cost one indexed lookup. An
 * extraction failure is logged and the next round tries again; it never holds up
 * delivery.
 */
export function correlationKeysFor(
  deps: { store: Store; logger: Logger },
  msg: MessageRow,
  claimed: readonly RecipientRow[],
  headerSection: Buffer,
): MessageKeysInput | undefined {
  try {
    const first = claimed.every((r) => r.attempts === 0);
    if (!first && deps.store.correlation.hasKeys(msg.qid)) return undefined;
    return {
      qid: msg.qid,
      receivedAt: msg.received_at,
      keys: extractCorrelationKeys(headerSection),
      envelopeFrom: msg.envelope_from,
      // every recipient of the message, read in the recording transaction
      clientAddress: msg.client_address,
      size: msg.size,
    };
  } catch (err) {
    logKeysNotRecorded(deps.logger, [msg.qid], err);
    return undefined;
  }
}

/** The keys could not be extracted or recorded: the message's next attempt round tries again. */
export function logKeysNotRecorded(logger: Logger, qids: readonly string[], err: unknown): void {
  const e = err as Error & { code?: unknown };
  for (const qid of qids) logger.error({ qid, err: { message: e.message, code: e.code } }, 'correlation: keys not recorded; the next attempt round tries again');
}
