import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { checkGreetingDelay } from '../smtp/greeting-delay.js';
import { WatchedAcceptPath } from '../delivery/accept-health.js';
import { InboundServer } from '../smtp/inbound.js';
import { QidGenerator, isQid } from '../delivery/qid.js';
import type { QueueEvents, QueueHandle, RewriteStep } from '../delivery/queue.js';
import { Spool } from '../delivery/spool.js';
import { RetentionPruner } from '../delivery/retention.js';
import type { ConnectionRole } from '../store/db.js';
import { Store } from '../store/store.js';
import type { HealthReport } from './admin-server.js';
import { componentsHealth, startComponents, stopComponents, type GatewayComponent } from './component.js';
import { AdminComponent, QueueComponent, SmtpComponent, StorageComponent, type RunningQueue, type Storage } from './components.js';
import { createDeliveryQueue } from './delivery.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
import { QueueThread } from './queue-thread.js';

export interface Gateway {
  smtpAddress(): AddressInfo;
  adminAddress(): AddressInfo | undefined;
  queue: QueueHandle;
  store: Store;
  metrics: GatewayMetrics;
  /** What /healthz answers: every component's health, the queue depth, attempts in flight. */
  health(): HealthReport;
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
 * Wires the gateway as a list of components (component.ts), started in this order and
 * stopped in reverse: the admin listener (so /healthz answers "starting" at once), store
 * and spool, the delivery queue, the SMTP listener. Resolves once the SMTP port is bound
 * and the queue has resumed whatever the store holds.
 */
export async function startGateway(config: Config, opts: StartGatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { name: 'mailbag' } });
  checkGreetingDelay(config.smtp.greetingDelay);
  const metrics = createGatewayMetrics();
  const queueInProcess = !!opts.rewrite || opts.queueThread === false;
  // this thread's connection: the SMTP role, unless the queue runs here too
  const storage = new StorageComponent(() => openStorage(config, logger, queueInProcess ? 'gateway' : 'smtp'));
  metrics.setQueueDepthSource(() => storage.get().store.queue.depth());
  const queue = new QueueComponent(() => startQueue(config, opts, storage.get(), metrics, logger));
  const smtp = new SmtpComponent(
    () =>
      new InboundServer({
        config,
        accept: storage.get().accept,
        logger,
        routes: config.routes,
        events: {
          accepted(qid) {
            metrics.messagesReceived.inc();
            queue.handle.kick([qid]);
          },
          rejected(code) {
            metrics.smtpRejections.inc({ code: String(code) });
          },
        },
      }),
    config.smtp.listen,
  );
  const components: GatewayComponent[] = [storage, queue, smtp];
  const health = (): HealthReport => ({
    ...componentsHealth(components),
    queueDepth: storage.isOpen ? storage.get().store.queue.depth() : undefined,
    attemptsInFlight: queue.inFlight,
  });
  const admin = config.admin.enabled ? new AdminComponent(config.admin.listen, metrics, health) : undefined;
  if (admin) components.unshift(admin);

  try {
    await startComponents(components);
  } catch (err) {
    metrics.close();
    throw err;
  }
  const { store, spool } = storage.get();
  const smtpAddress = smtp.inbound.address();
  const adminAddress = admin?.address();
  logger.info(
    {
      smtp: `${smtpAddress.address}:${smtpAddress.port}`,
      admin: adminAddress ? `${adminAddress.address}:${adminAddress.port}` : undefined,
      store: config.store.path,
      spool: spool.dir,
    },
    'listening',
  );
  const inbound = smtp.inbound;
  const q = queue.handle;
  let stopping: Promise<void> | undefined;
  return {
    smtpAddress: () => inbound.address(),
    adminAddress: () => admin?.address(),
    queue: q,
    store,
    metrics,
    health,
    stop() {
      stopping ??= (async () => {
        logger.info({ transactions: inbound.transactionsInFlight, attempts: q.inFlight }, 'stopping');
        await stopComponents(components, config.queue.shutdownGrace);
        metrics.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Start-up of the store and spool: open the store, sweep what a crash left half-written,
 * and build the durable accept path every listener shares.
 */
async function openStorage(config: Config, logger: Logger, role: ConnectionRole): Promise<Storage> {
  const store = Store.open(config.store.path, { role });
  try {
    const spool = new Spool(config.spool.dir);
    const swept = await spool.sweepTmp();
    if (swept) logger.info({ files: swept }, 'spool: removed unfinished transactions left by the last stop');
    const orphans = await removeOrphans(spool, store);
    if (orphans) logger.info({ files: orphans }, 'spool: removed files of finished or never-committed messages');
    // Lane 0 of 2: the queue thread (lane 1) queues bounces with ids of its own.
    const qids = new QidGenerator(store.queue.maxQid(), { lane: 0, lanes: 2 });
    return { store, spool, qids, accept: new WatchedAcceptPath({ spool, store, qids }), close: () => store.close() };
  } catch (err) {
    store.close();
    throw err;
  }
}

/**
 * The delivery queue with its transports: on its own thread (default), or on this one
 * when a rewrite step (a function, which cannot cross threads) is given.
 */
async function startQueue(config: Config, opts: StartGatewayOptions, storage: Storage, metrics: GatewayMetrics, logger: Logger): Promise<RunningQueue> {
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
  if (opts.rewrite || opts.queueThread === false) {
    const inProcess = createDeliveryQueue(config, {
      store: storage.store,
      spool: storage.spool,
      qids: storage.qids,
      logger,
      events,
      ...(opts.rewrite ? { rewrite: opts.rewrite } : {}),
      ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    });
    inProcess.start();
    // On this thread the queue's thread does not exist to prune: prune here, stop with the queue.
    const pruner = new RetentionPruner({ store: storage.store, retentionMs: config.store.retention, logger });
    pruner.start();
    const handle: QueueHandle = {
      kick: (accepted) => inProcess.kick(accepted),
      get inFlight() {
        return inProcess.inFlight;
      },
      stop: async (graceMs) => {
        await Promise.all([inProcess.stop(graceMs), pruner.stop()]);
      },
    };
    return { handle, failure: () => undefined };
  }
  const thread = await QueueThread.start({ config, ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}) }, events, logger);
  return { handle: thread, failure: () => thread.failed };
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
