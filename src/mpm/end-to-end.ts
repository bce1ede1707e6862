// Replies arriving at the acceptor (RFC 753 Example 2 view 4). An ACKNOWLEDGE addressed
// to this MPM is the destination's word on a message a relay took for forwarding: it is
// matched by tid to the message awaiting it and becomes that recipient's final state
// (yes: delivered; no: failed, bounced to the envelope sender as an RFC 3464 report).
// An ACKNOWLEDGE addressed to another MPM is relayed: our ihn added to its stamp, queued
// for the MPM it names. Everything is durable before the bag's connection is closed, so
// the MPM that sent it can tell a taken bag from a lost one (docs/imp.md).
import type { Logger } from 'pino';
import { buildDeliveryStatusNotification } from '../delivery/bounce.js';
import { enhancedStatus } from '../delivery/dsn.js';
import { enqueueGenerated } from '../delivery/enqueue.js';
import type { QidGenerator } from '../delivery/qid.js';
import type { Spool } from '../delivery/spool.js';
import { hasEightBit } from '../mime/downgrade.js';
import { encodeBag, isEndToEndAnswer, MAX_STAMP_HOPS, passedBackReply, readReply, replyAddressee, type ImpMessage } from '../imp/index.js';
import { acknowledgementResult } from '../imp/shipper/acknowledge.js';
import type { AwaitingRow } from '../store/imp-reply-store.js';
import type { Store } from '../store/store.js';

export interface EndToEndOptions {
  ihn: number;
  hostname: string;
  store: Store;
  spool: Spool;
  qids: QidGenerator;
  logger: Logger;
  /** imp.mpms knows where the MPM of this ihn listens. */
  reachable(ihn: number): boolean;
  /** A bounce was queued: the queue can start on it. */
  kick(qid: string): void;
  /** An end-to-end answer was recorded for a message of ours (or kept for its hop answer). */
  recorded?(answer: boolean): void;
}

export class EndToEndReplies {
  constructor(private readonly o: EndToEndOptions) {}

  /** Handles one reply message; throws only when it could not be recorded (the sender tries again). */
  async handle(msg: ImpMessage, peer: string): Promise<void> {
    let reply;
    try {
      reply = readReply(msg);
    } catch (err) {
      this.o.logger.info({ peer, tid: msg.tid, operation: msg.command.operation, err: (err as Error).message }, 'imp: a reply arrived at the acceptor; nothing here awaits it');
      return;
    }
    if (reply.operation !== 'ACKNOWLEDGE') {
      this.o.logger.info({ peer, tid: msg.tid, operation: reply.operation }, 'imp: a reply arrived at the acceptor; nothing here awaits it');
      return;
    }
    const to = replyAddressee(msg, reply.tid);
    if ((to | 0) !== (this.o.ihn | 0)) return this.relay(msg, reply.tid, to, peer);
    if ((reply.tid.ihn | 0) !== (this.o.ihn | 0)) {
      // Addressed to us, but the transaction is not one of ours: nothing of ours can await it.
      this.o.logger.info({ peer, tid: reply.tid, answer: reply.answer }, 'imp: a reply arrived at the acceptor; nothing here awaits it');
      return;
    }
    if (!isEndToEndAnswer(reply)) {
      this.o.logger.info({ peer, tid: reply.tid, answer: reply.answer, trail: reply.trail.map((i) => i >>> 0) }, 'imp: a reply arrived at the acceptor; nothing here awaits it');
      return;
    }
    const result = acknowledgementResult('', { answer: reply.answer, reasons: reply.reasons, howDelivered: reply.howDelivered, trail: reply.trail, error: reply.error });
    const answer = result.outcome === 'delivered';
    // Nothing awaits it yet: the hop's own answer may still be on its way (a relay ships
    // on while it accepts the rest of a large bag). Kept for it; the queue applies it then.
    const awaiting = this.o.store.impReplies.takeEndToEnd(reply.tid, { outcome: answer ? 'delivered' : 'failed', reply: result.reply });
    if (!awaiting) {
      this.o.logger.info({ peer, tid: reply.tid, answer, reply: result.reply, trail: reply.trail.map((i) => i >>> 0) }, 'imp: end-to-end ACKNOWLEDGE before the hop answered; kept for it');
      this.o.recorded?.(answer);
      return;
    }
    if (awaiting.answer !== null) {
      this.o.logger.debug({ peer, tid: reply.tid, qid: awaiting.qid }, 'imp: end-to-end ACKNOWLEDGE repeated; already recorded');
      return;
    }
    // The bounce is queued before the answer is recorded: a crash in between repeats the
    // bounce when the relay passes the reply back again, it never loses it.
    const bounceQid = answer ? undefined : await this.bounce(awaiting, result.reply);
    const recorded = this.o.store.impReplies.recordFinal(reply.tid, { answer, reply: result.reply, ...(bounceQid ? { bounceQid } : {}) });
    this.o.logger.info(
      { peer, qid: awaiting.qid, rcpt: awaiting.rcpt, tid: reply.tid, answer, reply: result.reply, trail: reply.trail.map((i) => i >>> 0), ...(bounceQid ? { bounce: bounceQid } : {}) },
      'imp: end-to-end ACKNOWLEDGE recorded',
    );
    if (recorded) this.o.recorded?.(answer);
    if (recorded && bounceQid) this.o.kick(bounceQid);
  }

  /** A reply for another MPM: stamped with our ihn and queued towards it (as a relay does). */
  private relay(msg: ImpMessage, tid: { tn: number; ihn: number }, to: number, peer: string): void {
    if (msg.command.stamp.some((s) => (s | 0) === (this.o.ihn | 0))) {
      this.o.logger.warn({ peer, tid, to: to >>> 0, stamp: msg.command.stamp.map((s) => s >>> 0) }, 'imp: reply already stamped by this MPM; not passed back');
      return;
    }
    if (msg.command.stamp.length >= MAX_STAMP_HOPS) {
      // Stamped once more it would be over the hop limit (a full stamp could not even take our ihn).
      this.o.logger.warn({ peer, tid, to: to >>> 0, hops: msg.command.stamp.length }, 'imp: reply over the hop limit; not passed back');
      return;
    }
    if (!this.o.reachable(to)) {
      this.o.logger.warn({ peer, tid, to: to >>> 0 }, 'imp: reply for an MPM not in imp.mpms; not passed back');
      return;
    }
    const forward = passedBackReply(msg, this.o.ihn);
    this.o.store.impReplies.queueReply({ targetIhn: to, tid, message: encodeBag([forward], { sharing: 'none' }) });
    this.o.logger.info({ peer, tid, to: to >>> 0, stamp: forward.command.stamp.map((s) => s >>> 0) }, 'imp: reply queued for the originating MPM');
  }

  /** The RFC 3464 report of a destination's "no", with the headers kept when the relay took the message. */
  private async bounce(a: AwaitingRow, reply: string): Promise<string | undefined> {
    const notify = a.dsnNotify ? a.dsnNotify.split(',') : undefined;
    if (notify && !notify.includes('FAILURE')) {
      this.o.logger.info({ qid: a.qid, rcpts: [a.rcpt] }, 'queue: no bounce for recipients whose NOTIFY leaves out FAILURE');
      return undefined;
    }
    if (a.envelopeFrom === '') {
      this.o.logger.info({ qid: a.qid, rcpts: [a.rcpt] }, 'queue: not bouncing a message from the null sender');
      return undefined;
    }
    const now = new Date();
    const bytes = buildDeliveryStatusNotification({
      reportingMta: this.o.hostname,
      qid: a.qid,
      envelopeFrom: a.envelopeFrom,
      ...(a.dsnEnvid ? { envelopeId: a.dsnEnvid } : {}),
      arrivalDate: new Date(a.receivedAt),
      recipients: [
        {
          address: a.rcpt,
          action: 'failed',
          status: enhancedStatus(reply, '5'),
          diagnosticCode: `smtp; ${reply}`,
          lastAttemptAt: now,
          ...(a.dsnOrcpt ? { originalRecipient: a.dsnOrcpt } : {}),
        },
      ],
      originalHeaders: a.headers,
      now,
    });
    const qid = await enqueueGenerated(
      { spool: this.o.spool, store: this.o.store, qids: this.o.qids },
      {
        envelopeFrom: '',
        recipients: [a.envelopeFrom],
        bytes,
        params: { bodyType: hasEightBit(bytes) ? '8bitmime' : undefined, smtpUtf8: /[^\x00-\x7f]/.test(a.envelopeFrom) },
        origin: { qid: a.qid, kind: 'bounce' },
      },
    );
    this.o.logger.info({ qid: a.qid, bounce: qid, to: a.envelopeFrom, rcpts: [a.rcpt], actions: ['failed'] }, 'queue: bounce queued');
    return qid;
  }
}
