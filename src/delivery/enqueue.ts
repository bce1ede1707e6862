import type { MessageParams, NewMessage } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { toNewMessage } from './accept.js';
import type { SpoolEnvelope } from './envelope.js';
import type { QidGenerator } from './qid.js';
import type { Spool, SpooledMessageRef } from './spool.js';

/**
 * Queues a message mailbag generates itself (a bounce) the way the accept path queues a
 * received one: spool file (with its envelope) durable first, then the store row.
 */
export async function enqueueGenerated(
  deps: { spool: Spool; store: Store; qids: QidGenerator },
  m: { envelopeFrom: string; recipients: string[]; bytes: Buffer; now?: number; params?: MessageParams; origin?: NewMessage['origin'] },
): Promise<string> {
  const now = m.now ?? Date.now();
  const qid = deps.qids.next(now);
  const envelope: SpoolEnvelope = {
    qid,
    receivedAt: now,
    sender: m.envelopeFrom,
    ...(m.params ? { mail: m.params } : {}),
    recipients: m.recipients.map((address) => ({ address })),
  };
  const writer = await deps.spool.create(envelope);
  try {
    await new Promise<void>((resolve, reject) => {
      writer.once('error', reject);
      writer.end(m.bytes, () => resolve());
    });
    const spoolPath = await writer.commit();
    try {
      deps.store.queue.insertMessage({ ...toNewMessage(envelope, { spoolPath, spoolOffset: writer.offset, size: writer.bytes, sha256: writer.sha256! }), origin: m.origin });
    } catch (err) {
      await deps.spool.remove(spoolPath);
      throw err;
    }
    return qid;
  } catch (err) {
    await writer.discard();
    throw err;
  }
}

/** The header section of a spooled message (up to and including the blank line), bounded. */
export async function readHeaderSection(spool: Spool, message: SpooledMessageRef, max = 256 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = spool.read(message);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end !== -1) return all.subarray(0, end + 4);
      if (total >= max) return all.subarray(0, max);
      chunks.length = 0;
      chunks.push(all);
    }
    return Buffer.concat(chunks);
  } finally {
    stream.destroy();
  }
}
