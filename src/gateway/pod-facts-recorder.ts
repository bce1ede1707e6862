// Each message's PoD facts (session, headers, MIME parts), recorded once. Messages that
// come through the accept path (SMTP, IMP) get theirs in their own commit
// (`committedFacts`), so they exist before the queue can claim the message: the live
// maillog stream's from= line always precedes its to= lines and the parts are read while
// the spool file is sure to be there. A sweep catches the others (accepted while the
// publisher was off, bounces the queue made, a commit whose facts could not be read);
// one whose spool file is already gone gets facts without parts.
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import { decodeEnvelope, headerLine, type SpoolEnvelope } from '../delivery/envelope.js';
import { messageContentFacts, sessionFactsFromReceived, type MessageFacts } from '../pod/message-facts.js';
import { ARCHIVE_LIMIT_MS } from '../pod/stream-request.js';
import type { Store } from '../store/store.js';
import type { CommittedFacts } from '../delivery/accept.js';
import type { NewMessage } from '../store/queue-store.js';
import type { UnrecordedMessage } from '../store/pod-publisher-store.js';

async function readSpooled(m: UnrecordedMessage): Promise<{ envelope: SpoolEnvelope | undefined; bytes: Buffer } | undefined> {
  let fh;
  try {
    fh = await open(m.spool_path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const head = Buffer.alloc(m.spool_offset);
    if (m.spool_offset) await fh.read(head, 0, m.spool_offset, 0);
    const bytes = Buffer.alloc(m.size);
    if (m.size) await fh.read(bytes, 0, m.size, m.spool_offset);
    let line;
    try {
      line = m.spool_offset ? headerLine(head) : undefined;
    } catch {
      line = undefined;
    }
    let envelope: SpoolEnvelope | undefined;
    try {
      envelope = line ? decodeEnvelope(head.subarray(line.jsonStart, line.jsonStart + line.jsonLength)) : undefined;
    } catch {
      // the session then comes from the Received: line; the queue holds a bad file itself
    }
    return { envelope, bytes };
  } finally {
    await fh.close();
  }
}

export function factsOf(m: UnrecordedMessage, spooled: { envelope: SpoolEnvelope | undefined; bytes: Buffer } | undefined): MessageFacts {
  const ip = m.client_address ?? '';
  const s = spooled?.envelope?.client?.session;
  const base = {
    qid: m.qid,
    receivedAt: m.received_at,
    envelope: { from: m.envelope_from, rcpts: JSON.parse(m.rcpts) as string[] },
    sizeBytes: m.size,
    client: { ip, host: m.client_hostname ?? ip, helo: m.helo ?? '' },
  };
  if (!spooled) return { ...base, session: { sid: m.qid, protocol: 'ESMTP' }, headers: {}, parsedAddresses: { from: [], to: [], cc: [] }, parts: null };
  const session = s ? { sid: s.id, protocol: s.protocol, ...(s.tls ? { tls: s.tls } : {}) } : sessionFactsFromReceived(spooled.bytes, m.qid);
  return { ...base, session, ...messageContentFacts(spooled.bytes) };
}

/** The message row as the recorder's queries return it, from the row the accept path commits. */
function unrecordedOf(row: NewMessage): UnrecordedMessage {
  return {
    row: 0,
    qid: row.qid,
    spool_path: row.spoolPath,
    spool_offset: row.spoolOffset,
    size: row.size,
    received_at: row.receivedAt,
    envelope_from: row.envelopeFrom,
    client_address: row.clientAddress ?? null,
    client_hostname: row.clientHostname ?? null,
    helo: row.helo ?? null,
    rcpts: JSON.stringify(row.recipients),
  };
}

/**
 * The accept path's hook: the facts of a message whose spool file is durable, to commit
 * with its row. The file was just written, so it is read from the page cache; a failure
 * is logged and leaves the message to the sweep.
 */
export function committedFacts(logger: Logger, now: () => number = Date.now): CommittedFacts {
  return async (row) => {
    try {
      const m = unrecordedOf(row);
      const spooled = await readSpooled(m);
      if (!spooled) return undefined;
      return { recordedAt: now(), facts: JSON.stringify(factsOf(m, spooled)) };
    } catch (err) {
      logger.error({ qid: row.qid, err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } }, 'pod publisher: recording message facts failed');
      return undefined;
    }
  };
}

export class PodFactsRecorder {
  private readonly busy = new Set<string>();
  private swept = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records the message's facts unless it has them. Never throws: a failure is logged and the sweep retries. */
  async record(qid: string): Promise<void> {
    if (this.busy.has(qid)) return;
    const m = this.store.podPublisher.unrecordedMessage(qid);
    if (!m) return;
    this.busy.add(qid);
    try {
      const spooled = await readSpooled(m);
      const facts = factsOf(m, spooled);
      if (!spooled) this.logger.warn({ qid }, 'pod publisher: spool file gone before its facts were recorded; the message event has no parts');
      this.store.podPublisher.recordFacts(qid, this.now(), JSON.stringify(facts));
    } catch (err) {
      this.logger.error({ qid, err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } }, 'pod publisher: recording message facts failed');
    } finally {
      this.busy.delete(qid);
    }
  }

  /**
   * Records messages that have no facts yet, up to `limit`, after the last row swept (the
   * first sweep after start looks at every row, so a failure is retried at the next start);
   * drops facts past the archive's 30 days. Resolves with how many messages it looked at.
   */
  async sweep(limit = 200): Promise<number> {
    const rows = this.store.podPublisher.unrecorded(this.swept, limit);
    for (const m of rows) {
      await this.record(m.qid);
      this.swept = m.row;
    }
    this.store.podPublisher.pruneFacts(this.now() - ARCHIVE_LIMIT_MS - 3_600_000, 500);
    return rows.length;
  }
}
