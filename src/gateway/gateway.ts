import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { checkGreetingDelay } from '../smtp/greeting-delay.js';
import { AcceptPath } from '../delivery/accept.js';
import { InboundServer } from '../smtp/inbound.js';
import { QidGenerator, isQid } from '../delivery/qid.js';
import type { QueueEvents, QueueHandle, RewriteStep } from '../delivery/queue.js';
import { Spool } from '../delivery/spool.js';
import { RetentionPruner } from '../delivery/retention.js';
import { Store } from '../store/store.js';
import { startAdminServer, type AdminServer } from './admin-server.js';
import { createDeliveryQueue } from './delivery.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
import { QueueThread } from './queue-thread.js';

export interface Gateway {
  smtpAddress(): AddressInfo;
  adminAddress(): AddressInfo | undefined;
  queue: QueueHandle;
  store: Store;
  metrics: GatewayMetrics;
  /** Graceful: stop accepting, finish transactions and attempts (bounded), close the store. */
  stop(): Promise<void>;
}

export interface StartGatewayOptions {
  logger?: Logger;
  /** The per-message rewrite step (identity by default). */
  rewrite?: RewriteStep;
  /** Store poll interval of the queue, ms (default 1000). */
  pollMs?: number;
  /**
   * Run the delivery queue on its own thread (default), or on the SMTP thread. A
   * `rewrite` step is a function, which cannot cross threads: it implies the latter.
   */
  queueThread?: boolean;
}

/**
 * Wires the gateway: store and spool, the delivery queue with its transports, the SMTP
 * listener, metrics and the admin listener. Resolves once the SMTP port is bound and the
 * queue has resumed whatever the store holds.
 */
export async function startGateway(config: Config, opts: StartGatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { name: 'mailbag' } });
  checkGreetingDelay(config.smtp.greetingDelay);
  const queueInProcess = !!opts.rewrite || opts.queueThread === false;
  const store = Store.open(config.store.path, { role: queueInProcess ? 'gateway' : 'smtp' });
  let pruner: RetentionPruner | undefined;
  let inbound: InboundServer | undefined;
  let admin: AdminServer | undefined;
  let queue: QueueHandle | undefined;
  try {
    const spool = new Spool(config.spool.dir);
    const swept = await spool.sweepTmp();
    if (swept) logger.info({ files: swept }, 'spool: removed unfinished transactions left by the last stop');
    const orphans = await removeOrphans(spool, store);
    if (orphans) logger.info({ files: orphans }, 'spool: removed files of finished or never-committed messages');
    // Lane 0 of 2: the queue thread (lane 1) queues bounces with ids of its own.
    const qids = new QidGenerator(store.queue.maxQid(), { lane: 0, lanes: 2 });
    const metrics = createGatewayMetrics();
    metrics.setQueueDepthSource(() => store.queue.depth());
    const events: QueueEvents = {
      attempt(a) {
        const hop = a.nexthop;
        metrics.attemptDuration.observe({ nexthop: hop, outcome: a.outcome }, a.durationMs / 1000);
        for (const r of a.recipients) {
          if (r.state === 'delivered') metrics.recipientsDelivered.inc({ nexthop: hop });
          else if (r.state === 'deferred') metrics.recipientsDeferred.inc({ nexthop: hop });
        }
      },
      bounced(n) {
        metrics.recipientsBounced.inc(n);
      },
    };
    let thread: QueueThread | undefined;
    if (queueInProcess) {
      const inProcess = createDeliveryQueue(config, {
        store,
        spool,
        qids,
        logger,
        events,
        ...(opts.rewrite ? { rewrite: opts.rewrite } : {}),
        ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
      });
      inProcess.start();
      queue = inProcess;
      pruner = new RetentionPruner({ store, retentionMs: config.store.retention, logger });
      pruner.start();
    } else {
      thread = await QueueThread.start({ config, ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}) }, events, logger);
      queue = thread;
    }
    const q = queue;
    inbound = new InboundServer({
      config,
      accept: new AcceptPath({ spool, store, qids }),
      logger,
      routes: config.routes,
      events: {
        accepted(qid) {
          metrics.messagesReceived.inc();
          q.kick([qid]);
        },
        rejected(code) {
          metrics.smtpRejections.inc({ code: String(code) });
        },
      },
    });
    const smtp = await inbound.listen(config.smtp.listen.host, config.smtp.listen.port);
    const inb = inbound;
    if (config.admin.enabled) {
      admin = await startAdminServer({
        host: config.admin.listen.host,
        port: config.admin.listen.port,
        metrics,
        health: () => ({ ok: inb.server.server.listening && !thread?.failed, queueDepth: store.queue.depth(), attemptsInFlight: q.inFlight }),
      });
    }
    const adm = admin;
    logger.info(
      {
        smtp: `${smtp.address}:${smtp.port}`,
        admin: adm ? `${adm.address().address}:${adm.address().port}` : undefined,
        store: config.store.path,
        spool: spool.dir,
      },
      'listening',
    );
    let stopping: Promise<void> | undefined;
    return {
      smtpAddress: () => inb.address(),
      adminAddress: () => adm?.address(),
      queue: q,
      store,
      metrics,
      stop() {
        stopping ??= (async () => {
          const grace = config.queue.shutdownGrace;
          logger.info({ transactions: inb.transactionsInFlight, attempts: q.inFlight }, 'stopping');
          await inb.close(grace);
          await q.stop(grace);
          await pruner?.stop();
          await adm?.close();
          metrics.close();
          store.close();
          logger.info('stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await queue?.stop(0).catch(() => undefined);
    await pruner?.stop();
    await inbound?.close(0).catch(() => undefined);
    await admin?.close().catch(() => undefined);
    store.close();
    throw err;
  }
}

/**
 * A spool file whose message row never committed (the client got no 250) or whose
 * message is finished (the process died before removing it) is dead weight: remove it.
 */
async function removeOrphans(spool: Spool, store: Store): Promise<number> {
  let n = 0;
  for (const name of spool.list()) {
    if (!isQid(name)) continue;
    if (store.queue.message(name)?.state === 'queued') continue;
    await spool.remove(spool.pathFor(name));
    n++;
  }
  return n;
}
