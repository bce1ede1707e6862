// Builds the RFC 753 acceptor component from config: the recipient policy, the
// Message-Bag Processor on the shared accept path, metrics and logs.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { TidAllocator } from '../imp/mime/index.js';
import { ImpAcceptor } from '../mpm/acceptor.js';
import { BagProcessor } from '../mpm/bag-processor.js';
import { EndToEndReplies } from '../mpm/end-to-end.js';
import { mpmAddress } from './delivery.js';
import { ImpRecipientPolicy } from '../mpm/recipient-policy.js';
import type { Storage } from './components.js';
import { ImpComponent } from './components.js';
import type { GatewayMetrics } from './metrics.js';
import { createImpAcceptorMetrics } from './imp-metrics.js';

export function impAcceptorComponent(
  config: Config,
  listen: { host: string; port: number },
  o: { storage: () => Storage; metrics: GatewayMetrics; logger: Logger; kick: (qid: string) => void },
): ImpComponent {
  const m = createImpAcceptorMetrics(o.metrics.registry);
  const logger = o.logger.child({ component: 'imp' });
  return new ImpComponent(() => {
    const storage = o.storage();
    // Reply tids are this MPM's transaction numbers too; a random start keeps a restarted
    // gateway from repeating the tids of the replies it sent just before.
    const tids = new TidAllocator({ ihn: config.imp.ihn, start: Math.floor(Math.random() * 0x10000) });
    const nextReplyTid = () => tids.allocate();
    const processor = new BagProcessor({
      ihn: config.imp.ihn,
      hostname: config.gateway.hostname,
      accept: storage.accept,
      store: storage.store,
      policy: new ImpRecipientPolicy(config.routes, config.smtp.localDomains, config.imp.trustedPeers),
      maxMessagesPerBag: config.imp.maxMessagesPerBag,
      maxBagSpoolBytes: config.imp.maxBagSpoolBytes,
      acceptConcurrency: config.imp.acceptConcurrency,
      logger,
      nextReplyTid,
      events: {
        accepted(qid) {
          o.metrics.messagesReceived.inc();
          o.kick(qid);
        },
        answered(operation, answer, errorClass) {
          m.replies.inc({ operation, answer: answer ? 'yes' : 'no', error_class: String(errorClass) });
        },
      },
      replies: new EndToEndReplies({
        ihn: config.imp.ihn,
        hostname: config.gateway.hostname,
        store: storage.store,
        spool: storage.spool,
        qids: storage.qids,
        logger,
        reachable: (ihn) => mpmAddress(config, ihn) !== undefined,
        kick: o.kick,
        recorded: (answer) => m.endToEnd.inc({ answer: answer ? 'yes' : 'no' }),
      }),
    });
    return new ImpAcceptor({
      ihn: config.imp.ihn,
      processor,
      logger,
      maxBagBytes: config.imp.maxBagBytes,
      maxDepth: config.imp.maxDepth,
      maxConnections: config.imp.maxConnections,
      maxConnectionsPerIp: config.imp.maxConnectionsPerIp,
      bagTimeout: config.imp.bagTimeout,
      idleTimeout: config.imp.idleTimeout,
      tls: config.imp.tls,
      nextReplyTid,
      events: {
        bagReceived(messages) {
          m.bagsReceived.inc();
          m.messagesReceived.inc(messages);
        },
        connectionClosed(reason) {
          m.connectionsClosed.inc({ reason });
        },
      },
    });
  }, listen);
}
