import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { QidGenerator } from '../delivery/qid.js';
import { DeliveryQueue, type QueueEvents, type RewriteStep } from '../delivery/queue.js';
import type { Spool } from '../delivery/spool.js';
import { MaildirTransport } from '../delivery/transports/maildir.js';
import { SmtpTransport } from '../delivery/transports/smtp.js';
import { ImpTransport } from '../imp/shipper/transport.js';
import { TnAllocator } from '../imp/shipper/tn-allocator.js';
import { ReplyForwarder } from '../imp/shipper/reply-forwarder.js';
import { encodeBag } from '../imp/bag.js';
import type { Store } from '../store/store.js';

/** The delivery queue with every next-hop kind wired, on whichever thread calls this. */
export function createDeliveryQueue(
  config: Config,
  deps: { store: Store; spool: Spool; qids: QidGenerator; logger: Logger; events?: QueueEvents; rewrite?: RewriteStep; pollMs?: number },
): DeliveryQueue {
  const hostname = config.gateway.hostname;
  const q = config.queue;
  const network = {
    hostname,
    timeoutMs: q.attemptTimeout,
    connectTimeoutMs: q.connectTimeout,
    greetingTimeoutMs: q.greetingTimeout,
    maxConnections: q.perNexthopConcurrency,
    logger: deps.logger,
  };
  const ihn = config.imp.ihn;
  const events = deps.events;
  const logger = deps.logger;
  const forwarder = replyForwarder(config, { ...deps, events: deps.events });
  const imp = new ImpTransport({
    // Persisted high-water mark: a restart never reuses a tn that may still be in the network.
    tns: new TnAllocator({ ihn, highWater: { load: () => deps.store.impTns.mark(ihn), reserve: (from, block) => deps.store.impTns.reserve(ihn, from, block) } }),
    compress: config.imp.compress,
    maxBagBytes: config.imp.maxBagBytes,
    maxBagMessages: config.imp.maxMessagesPerBag,
    maxConnections: q.perNexthopConcurrency,
    connectTimeoutMs: q.connectTimeout,
    idleTimeoutMs: q.attemptTimeout,
    // Mail that arrived over IMP travels on under its originator's tid, our ihn added to its stamp.
    impOrigin: (qid) => deps.store.queue.impOrigin(qid),
    events: {
      shipped(e) {
        logger.info({ peer: e.peer, bag: e.bag, messages: e.messages, requests: e.requests, octets: e.octets, compressed: e.compressed }, 'imp: bag shipped');
        events?.impBagShipped?.({ peer: e.peer, messages: e.messages });
      },
      acknowledged(e) {
        events?.impAcknowledged?.(e);
      },
      warn(msg, fields) {
        logger.warn(fields, msg);
      },
    },
    ...(forwarder ? { replyForwarder: forwarder } : {}),
    endToEnd: {
      ihn,
      awaitFinal(e) {
        const params = e.req.params?.recipients[e.rcpt];
        return deps.store.impReplies.awaitFinal({
          tid: e.tid,
          qid: e.qid,
          rcpt: e.rcpt,
          peer: e.peer,
          envelopeFrom: e.req.envelopeFrom,
          receivedAt: e.req.receivedAt,
          dsnNotify: params?.notify?.join(',') ?? null,
          dsnOrcpt: params?.orcpt ?? null,
          dsnEnvid: e.req.params?.message.dsnEnvid ?? null,
          headers: e.headers,
          hopReply: e.hopReply,
          ...(e.shippedAt !== undefined ? { shippedAt: e.shippedAt } : {}),
        });
      },
      passBack(e) {
        if (!forwarder || !mpmAddress(config, e.targetIhn)) {
          // Per hop only (no imp.mpms entry for it): the relay reports what it learned itself.
          logger.debug({ qid: e.qid, tid: e.tid, to: e.targetIhn >>> 0 }, 'imp: no imp.mpms entry for the originating MPM; the hop answer stands');
          return false;
        }
        deps.store.impReplies.queueReply({ targetIhn: e.targetIhn, tid: e.tid, qid: e.qid, message: encodeBag([e.reply], { sharing: 'none' }) });
        logger.info({ qid: e.qid, tid: e.tid, to: e.targetIhn >>> 0, stamp: e.reply.command.stamp.map((s) => s >>> 0) }, 'imp: reply queued for the originating MPM');
        forwarder.kick();
        return true;
      },
    },
  });
  return new DeliveryQueue({
    store: deps.store,
    spool: deps.spool,
    qids: deps.qids,
    routes: config.routes,
    queue: config.queue,
    hostname,
    logger: deps.logger,
    transports: [
      new SmtpTransport('smtp', network),
      new SmtpTransport('lmtp', network),
      new MaildirTransport(hostname),
      imp,
    ],
    ...(deps.events ? { events: deps.events } : {}),
    ...(deps.rewrite ? { rewrite: deps.rewrite } : {}),
    ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}),
  });
}

/** The imp.mpms entry for an ihn (compared as 32-bit values). */
export function mpmAddress(config: Config, ihn: number): Config['imp']['mpms'][number] | undefined {
  return config.imp.mpms.find((m) => (m.ihn | 0) === (ihn | 0));
}

/**
 * The relay's outbox of replies to pass back (docs/imp.md, "End-to-end ACKNOWLEDGEs"):
 * only when imp.mpms names some MPM to reach.
 */
function replyForwarder(config: Config, deps: { store: Store; logger: Logger; pollMs?: number; events?: QueueEvents | undefined }): ReplyForwarder | undefined {
  if (!config.imp.mpms.length) return undefined;
  const logger = deps.logger;
  const f = new ReplyForwarder({
    outbox: deps.store.impReplies,
    resolve(ihn) {
      const m = mpmAddress(config, ihn);
      return m ? { host: m.host, port: m.port, url: m.address, tls: m.tls } : undefined;
    },
    connectTimeoutMs: config.queue.connectTimeout,
    idleTimeoutMs: config.queue.attemptTimeout,
    retryInitialMs: config.queue.retryInitial,
    retryMaxMs: config.queue.retryMax,
    pollMs: Math.max(deps.pollMs ?? 1000, 10),
    events: {
      passed(e) {
        logger.info({ peer: e.url, to: e.targetIhn >>> 0, replies: e.replies, octets: e.octets }, 'imp: replies passed back');
        deps.events?.impRepliesPassedBack?.({ result: 'passed', replies: e.replies });
      },
      failed(e) {
        logger.warn({ peer: e.url, to: e.targetIhn >>> 0, replies: e.replies, reason: e.reason, attempts: e.attempts }, 'imp: replies not passed back yet; retried');
        deps.events?.impRepliesPassedBack?.({ result: 'retried', replies: e.replies });
      },
    },
  });
  f.start();
  return f;
}
