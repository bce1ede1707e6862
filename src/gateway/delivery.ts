import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { QidGenerator } from '../delivery/qid.js';
import { DeliveryQueue, type QueueEvents, type RewriteStep } from '../delivery/queue.js';
import type { Spool } from '../delivery/spool.js';
import { MaildirTransport } from '../delivery/transports/maildir.js';
import { SmtpTransport } from '../delivery/transports/smtp.js';
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
    ],
    ...(deps.events ? { events: deps.events } : {}),
    ...(deps.rewrite ? { rewrite: deps.rewrite } : {}),
    ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}),
  });
}
