import { join } from 'node:path';
import { pino } from 'pino';
import type { QidGenerator } from '../../src/delivery/qid.js';
import type { Spool } from '../../src/delivery/spool.js';
import { EndToEndReplies } from '../../src/mpm/end-to-end.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from './gateway.js';

/**
 * The end-to-end replies of MPM `ihn` over a store of their own, in a temporary directory
 * removed at the test's end (no spool or qids: these tests queue no bounce).
 */
export function endToEndReplies(
  t: { teardown(fn: () => unknown): void },
  o: { name: string; ihn: number; reachable: (ihn: number) => boolean },
): { store: Store; replies: EndToEndReplies } {
  const { dir, cleanup } = tempDir(o.name);
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  const replies = new EndToEndReplies({
    ihn: o.ihn,
    hostname: 'mx.test.invalid',
    store,
    spool: {} as Spool,
    qids: {} as QidGenerator,
    logger: pino({ level: 'silent' }),
    reachable: o.reachable,
    kick: () => {},
  });
  return { store, replies };
}
