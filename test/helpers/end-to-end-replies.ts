import { join } from 'node:path';
import { pino } from 'pino';
import type { QidGenerator } from '../../src/delivery/qid.js';
import type { Spool } from '../../src/delivery/spool.js';
import { EndToEndReplies } from '../../src/mpm/end-to-end.js';
import type { AwaitingFinal } from '../../src/store/imp-reply-store.js';
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

/**
 * A message forwarded to an IMP hop that answered FORWARD, awaiting its destination's
 * answer (`store.impReplies.awaitFinal`): `tid`, `hopReply` and what a test sets, the
 * rest fixed (recipient bob@example.test, a one-field header section).
 */
export function awaitingFinal(a: Pick<AwaitingFinal, 'tid' | 'hopReply'> & Partial<AwaitingFinal>): AwaitingFinal {
  return {
    qid: `q${a.tid.tn}`,
    rcpt: 'bob@example.test',
    peer: 'imp://127.0.0.1:1',
    envelopeFrom: 'ann@sender.test',
    receivedAt: 1,
    dsnNotify: null,
    dsnOrcpt: null,
    dsnEnvid: null,
    headers: Buffer.from('Subject: x\r\n\r\n'),
    ...a,
  };
}
