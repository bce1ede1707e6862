import type { ImpOrigin, NewMessage, RecipientParams } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import type { SpoolEnvelope } from './envelope.js';
import { CommitOutcomeUnknownError, GroupCommitter, type CommitHandOff } from './group-commit.js';
import type { QidGenerator } from './qid.js';
import type { Spool, SpoolWriter } from './spool.js';

/** What a listener knows about a message before its bytes: everything but qid and arrival time. */
export type AcceptEnvelope = Omit<SpoolEnvelope, 'qid' | 'receivedAt'>;

/** One message being received: its qid, arrival time, envelope and spool writer. */
export interface IncomingMessage {
  readonly qid: string;
  readonly receivedAt: number;
  readonly envelope: SpoolEnvelope;
  readonly writer: SpoolWriter;
}

/** The store row of a spooled message: the envelope plus where and what its bytes are. */
export function toNewMessage(envelope: SpoolEnvelope, file: { spoolPath: string; spoolOffset: number; size: number; sha256: string }): NewMessage {
  const recipientParams: Record<string, RecipientParams> = {};
  for (const { address, ...params } of envelope.recipients) {
    if (params.notify !== undefined || params.orcpt !== undefined) recipientParams[address] = params;
  }
  return {
    qid: envelope.qid,
    receivedAt: envelope.receivedAt,
    envelopeFrom: envelope.sender,
    recipients: envelope.recipients.map((r) => r.address),
    clientAddress: envelope.client?.address,
    clientHostname: envelope.client?.hostname,
    helo: envelope.client?.helo,
    authUser: envelope.client?.authUser,
    params: envelope.mail,
    recipientParams,
    spoolPath: file.spoolPath,
    spoolOffset: file.spoolOffset,
    size: file.size,
    sha256: file.sha256,
  };
}

/**
 * The durable accept path, shared by every listener (SMTP now, IMP next): a message is
 * streamed into its own spool file (its envelope first), which is fsync'd and renamed
 * into place; then the spool directory fsync and the store commit are shared with every
 * message that became ready meanwhile (group commit). Only when `commit` resolves may
 * the listener say yes (`250`, an IMP ACKNOWLEDGE); anything that fails before leaves
 * nothing behind.
 */
/**
 * Facts about a message that must be committed with it (the PoD publisher's: from= line
 * data, MIME parts), computed from its spooled row once its file is durable. Resolves
 * with undefined when it cannot (the message is accepted all the same); never rejects.
 */
export type CommittedFacts = (row: NewMessage) => Promise<NewMessage['podFacts']>;

export interface AcceptPathOptions {
  spool: Spool;
  store: Store;
  qids: QidGenerator;
  /** Facts written in the message's own commit, before the queue can claim it. */
  facts?: CommittedFacts | undefined;
}

export class AcceptPath {
  private readonly committer: GroupCommitter;

  constructor(private readonly o: AcceptPathOptions) {
    this.committer = new GroupCommitter(o.store, o.spool);
  }

  /**
   * Commits go through `handOff` (the delivery queue's thread, which claims the messages
   * in the same transaction) while it takes them; undefined: on this thread's connection.
   */
  handCommitsTo(handOff: CommitHandOff | undefined): void {
    this.committer.handOffTo(handOff);
  }

  /** Reserves a qid and opens the message's spool file, which starts with the envelope. */
  async open(envelope: AcceptEnvelope, now = Date.now()): Promise<IncomingMessage> {
    const qid = this.o.qids.next(now);
    const full: SpoolEnvelope = { qid, receivedAt: now, ...envelope };
    const writer = await this.o.spool.create(full);
    return { qid, receivedAt: now, envelope: full, writer };
  }

  /**
   * Makes the message durable: spool file and store rows. Call once every byte has been
   * written and the writer has finished. Resolves with the size of the message.
   * `extra.imp` records the IMP transaction in the same commit, and `extra.origin` the
   * message this one was made from (an IMP forward: the sending gateway's qid).
   */
  async commit(m: IncomingMessage, extra: { imp?: ImpOrigin; origin?: NewMessage['origin'] } = {}): Promise<{ qid: string; size: number }> {
    const spoolPath = await m.writer.commit({ syncDir: false });
    const size = m.writer.bytes;
    try {
      const row = toNewMessage(m.envelope, { spoolPath, spoolOffset: m.writer.offset, size, sha256: m.writer.sha256! });
      const podFacts = this.o.facts ? await this.o.facts(row).catch(() => undefined) : undefined;
      if (extra.imp) row.imp = extra.imp;
      if (extra.origin) row.origin = extra.origin;
      if (podFacts) row.podFacts = podFacts;
      await this.committer.commit(row);
    } catch (err) {
      // a message the store may hold keeps its file (see CommitOutcomeUnknownError)
      if (!(err instanceof CommitOutcomeUnknownError)) await this.o.spool.remove(spoolPath);
      throw err;
    }
    return { qid: m.qid, size };
  }

  /** Drops a message that will not be accepted: nothing half-written remains. */
  async abort(m: IncomingMessage): Promise<void> {
    await m.writer.discard();
  }
}
