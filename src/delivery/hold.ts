import type { Logger } from 'pino';
import type { MessageRow } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { SpoolIntegrityError } from './spool.js';

/**
 * After a delivery round failed: if the reason is the spool file itself (missing,
 * truncated, changed), the message is held, not retried and never delivered as it is;
 * the operator sees why in `mailbag queue list/show` and an error log line. Returns
 * whether it held the message (the caller then does nothing else with it).
 */
export function holdIfSpoolDamaged(err: unknown, msg: MessageRow, store: Store, logger: Logger): boolean {
  if (!(err instanceof SpoolIntegrityError)) return false;
  try {
    store.queue.hold(msg.qid, err.message);
  } catch {
    return false; // the store cannot take it now: the caller postpones, the next round checks again
  }
  logger.error(
    { qid: msg.qid, code: err.code, reason: err.message, spool: msg.spool_path },
    'queue: message held: its spool file is not what was accepted (see mailbag queue show; queue retry releases it)',
  );
  return true;
}
