import { join } from 'node:path';
import type { Logger } from 'pino';
import type { FinishedMessage } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { ResultJournal, type JournalFs } from './result-journal.js';
import type { RoundRecorder } from './round-recorder.js';
import type { Spool } from './spool.js';

/** Where the results journal lives and how large it is (tests make it small or failing). */
export interface ResultJournalOptions {
  path?: string;
  bytes?: number;
  fs?: JournalFs;
}

export const RESULT_JOURNAL_NAME = 'results.journal';

/**
 * At start, before the queue claims anything: opens the results journal, records the
 * results the last stop kept in it (idempotently), zeroes it and makes sure its blocks
 * are allocated for the next stop. Returns the journal (undefined if it cannot be used:
 * the old behaviour, logged) and, per message, what is still to do before that message
 * may be claimed again: removing the files of a message the replay finished, or, when
 * the store refuses the replay, recording the result later (the journal keeps it).
 */
export function replayResultJournal(
  o: { store: Store; spool: Spool; logger: Logger; journal?: ResultJournalOptions },
  recorder: RoundRecorder,
): { journal: ResultJournal | undefined; waits: Map<string, Promise<void>> } {
  const path = o.journal?.path ?? join(o.spool.dir, RESULT_JOURNAL_NAME);
  const waits = new Map<string, Promise<void>>();
  let journal: ResultJournal | undefined;
  try {
    journal = ResultJournal.open(path, o.journal?.bytes, o.journal?.fs);
  } catch (err) {
    o.logger.error({ journal: path, err: errFields(err) }, 'queue: the results journal cannot be used; results the store refuses at a stop will be repeated after the restart');
    return { journal: undefined, waits };
  }
  const removeFiles = async (m: FinishedMessage | undefined) => {
    if (!m) return;
    for (const file of m.spoolFiles) await o.spool.remove(file);
  };
  let keep = false;
  try {
    const { rounds, damagedAt } = journal.read();
    if (damagedAt !== undefined) {
      o.logger.error({ journal: path, offset: damagedAt, readable: rounds.length }, 'queue: the results journal has a damaged record; results from it on are lost and those attempts will be repeated');
    }
    if (rounds.length) {
      try {
        const { finished, skipped } = o.store.queue.replayRounds(rounds);
        o.logger.info({ rounds: rounds.length - skipped, alreadyRecorded: skipped, qids: rounds.map((r) => r.qid) }, 'queue: recorded the delivery results kept in the results journal at the last stop');
        rounds.forEach((r, i) => waits.set(r.qid, removeFiles(finished[i])));
      } catch (err) {
        // the store still refuses: the rounds wait in memory as at the stop, the journal keeps them
        keep = true;
        o.logger.error({ rounds: rounds.length, err: errFields(err) }, 'queue: could not record delivery results; keeping them in memory and retrying');
        for (const r of rounds) waits.set(r.qid, recorder.replay(r).then(removeFiles));
      }
    }
    journal.prepare(keep);
  } catch (err) {
    o.logger.error({ journal: path, err: errFields(err) }, 'queue: the results journal cannot be used; results the store refuses at a stop will be repeated after the restart');
    journal.close();
    return { journal: undefined, waits };
  }
  return { journal, waits };
}

function errFields(err: unknown): { message: string; code?: unknown } {
  return { message: (err as Error).message, code: (err as { code?: unknown }).code };
}
