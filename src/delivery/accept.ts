import type { NewMessage } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { GroupCommitter } from './group-commit.js';
import type { QidGenerator } from './qid.js';
import type { Spool, SpoolWriter } from './spool.js';

/** What a listener knows about a message besides its bytes. */
export type AcceptedEnvelope = Omit<NewMessage, 'qid' | 'spoolPath' | 'size' | 'receivedAt'>;

/** One message being received: its qid, arrival time and spool writer. */
export interface IncomingMessage {
  readonly qid: string;
  readonly receivedAt: number;
  readonly writer: SpoolWriter;
}

/**
 * The durable accept path, shared by every listener (SMTP now, IMP next): a message is
 * streamed into its own spool file, which is fsync'd and renamed into place; then the
 * spool directory fsync and the store commit are shared with every message that became
 * ready meanwhile (group commit). Only when `commit` resolves may the listener say yes
 * (`250`, an IMP ACKNOWLEDGE); anything that fails before leaves nothing behind.
 */
export class AcceptPath {
  private readonly committer: GroupCommitter;

  constructor(private readonly o: { spool: Spool; store: Store; qids: QidGenerator }) {
    this.committer = new GroupCommitter(o.store, o.spool.dir);
  }

  /** Reserves a qid and opens the message's spool file. */
  async open(now = Date.now()): Promise<IncomingMessage> {
    const qid = this.o.qids.next(now);
    const writer = await this.o.spool.create(qid);
    return { qid, receivedAt: now, writer };
  }

  /**
   * Makes the message durable: spool file and store rows. Call once every byte has been
   * written and the writer has finished. Resolves with the size on disk.
   */
  async commit(m: IncomingMessage, envelope: AcceptedEnvelope): Promise<{ qid: string; size: number }> {
    const spoolPath = await m.writer.commit({ syncDir: false });
    const size = m.writer.bytes;
    try {
      await this.committer.commit({ ...envelope, qid: m.qid, receivedAt: m.receivedAt, size, spoolPath });
    } catch (err) {
      await this.o.spool.remove(spoolPath);
      throw err;
    }
    return { qid: m.qid, size };
  }

  /** Drops a message that will not be accepted: nothing half-written remains. */
  async abort(m: IncomingMessage): Promise<void> {
    await m.writer.discard();
  }
}
