import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { QidGenerator } from '../delivery/qid.js';
import { DeliveryQueue, type QueueEvents, type RewriteStep } from '../delivery/queue.js';
import type { Spool } from '../delivery/spool.js';
import { MaildirTransport } from '../delivery/transports/maildir.js';
import { SmtpTransport } from '../delivery/transports/smtp.js';
import { ImpTransport } from '../imp/shipper/transport.js';
import { TnAllocator } from '../imp/shipper/tn-allocator.js';
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
  };
  const ihn = config.imp.ihn;
  const events = deps.events;
  const logger = deps.logger;
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
