import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { toNewMessage } from './accept.js';
import { SpoolFormatError } from './envelope.js';
import type { Spool } from './spool.js';

export type RecoverOutcome =
  /** queued again from its envelope */
  | 'queued'
  /** the store knows the message and its spool file was missing: put back */
  | 'restored'
  /** the store already has the message with its spool file in place: left in unknown/ */
  | 'already-queued'
  /** the store shows the message finished: left in unknown/ */
  | 'already-done'
  /** not a complete, valid spool file: left in unknown/ */
  | 'invalid';

export interface RecoverResult {
  file: string;
  qid?: string;
  outcome: RecoverOutcome;
  reason?: string;
}

/**
 * Queues the files in the spool's unknown/ directory again, each from its own envelope
 * (sender, recipients, received time, qid), so nothing a client got a 250 for is lost
 * when the store lost its rows. Idempotent: a file is moved back into the spool before
 * its rows are committed (a crash in between leaves a file the next start-up sets aside
 * again), and a message the store already has is never queued twice. Safe while the
 * gateway runs: the queue only sees the message once its rows exist.
 */
export async function recoverUnknown(spool: Spool, store: Store): Promise<RecoverResult[]> {
  const results: RecoverResult[] = [];
  for (const file of spool.listUnknown()) {
    const path = join(spool.unknownDir, file);
    let inspected;
    try {
      inspected = await spool.inspect(path);
    } catch (err) {
      if (!(err instanceof SpoolFormatError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      results.push({ file, outcome: 'invalid', reason: (err as Error).message });
      continue;
    }
    const { envelope } = inspected;
    const qid = envelope.qid;
    const row = store.queue.message(qid);
    const inPlace = existsSync(spool.pathFor(qid));
    if (row?.state === 'done') {
      results.push({ file, qid, outcome: 'already-done', reason: 'the store shows the message finished; delete the file once you are sure' });
      continue;
    }
    if (row && inPlace) {
      results.push({ file, qid, outcome: 'already-queued', reason: `the message is queued with its spool file ${spool.pathFor(qid)}` });
      continue;
    }
    if (!row && inPlace) {
      results.push({ file, qid, outcome: 'invalid', reason: `another file is in the spool under the same qid (${spool.pathFor(qid)}), unknown to the store: restart the gateway to set it aside, then recover again` });
      continue;
    }
    const spoolPath = await spool.restore(file, qid);
    if (row) {
      if (row.spool_path !== spoolPath || row.sha256 !== inspected.sha256) {
        results.push({ file, qid, outcome: 'restored', reason: 'put back in the spool; it differs from what the store recorded, so the queue will hold it' });
      } else results.push({ file, qid, outcome: 'restored' });
      store.queue.releaseHold(qid);
      continue;
    }
    store.queue.insertMessage(toNewMessage(envelope, { spoolPath, spoolOffset: inspected.offset, size: inspected.size, sha256: inspected.sha256 }));
    results.push({ file, qid, outcome: 'queued' });
  }
  return results;
}
