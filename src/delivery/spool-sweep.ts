import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { isQid } from './qid.js';
import type { Spool } from './spool.js';

export interface SweepReport {
  /** Files of messages the store shows finished (rewrite copies too): removed. */
  removedDone: number;
  /** Files the store does not know, moved to unknown/ by this sweep. */
  movedAside: string[];
  /** Every file now waiting in unknown/ (this sweep's and earlier ones'). */
  unknown: number;
}

/**
 * The start-up sweep, run under the instance lock before any listener or the queue
 * starts (at that moment no accept is between its rename and its commit). A spool file
 * is removed only when the store proves its message finished. A file the store does
 * not know (a crash between rename and commit, but also an emptied or replaced store, a
 * changed store.path, a WAL lost after a crash) is moved to unknown/, never deleted:
 * `mailbag queue recover` queues it again from its own envelope.
 */
export async function sweepSpool(spool: Spool, store: Store): Promise<SweepReport> {
  let removedDone = 0;
  const movedAside: string[] = [];
  for (const qid of spool.list()) {
    const state = store.queue.message(qid)?.state;
    if (state === 'queued') continue;
    if (state === 'done') {
      await spool.remove(spool.pathFor(qid));
      removedDone++;
      continue;
    }
    movedAside.push(await spool.moveAside(qid));
  }
  // Rewrite copies (copies/QID.N) go with their finished message; any other copy is kept:
  // a queued message may still deliver it, and an unknown one may be recovered.
  const copies = join(spool.dir, 'copies');
  for (const name of existsSync(copies) ? readdirSync(copies) : []) {
    const qid = name.slice(0, 13);
    if (!isQid(qid) || store.queue.message(qid)?.state !== 'done') continue;
    await spool.remove(join(copies, name));
    removedDone++;
  }
  return { removedDone, movedAside, unknown: spool.listUnknown().length };
}
