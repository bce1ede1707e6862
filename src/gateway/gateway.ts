import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { checkGreetingDelay } from '../smtp/greeting-delay.js';
import { WatchedAcceptPath } from '../delivery/accept-health.js';
import type { CommittedFacts } from '../delivery/accept.js';
import { InboundServer } from '../smtp/inbound.js';
import { QidGenerator, laterQid } from '../delivery/qid.js';
import type { QueueEvents, QueueHandle } from '../delivery/queue.js';
import { Spool } from '../delivery/spool.js';
import { RetentionPruner } from '../delivery/retention.js';
import type { ConnectionRole } from '../store/db.js';
import type { SpoolFs } from '../delivery/spool-fs.js';
import { sweepSpool } from '../delivery/spool-sweep.js';
import { Store } from '../store/store.js';
import { lockInstance } from './instance.js';
import type { HealthReport } from './admin-server.js';
import { componentsHealth, startComponents, stopComponents, type GatewayComponent } from './component.js';
import { AdminComponent, PodPublisherComponent, QueueComponent, SmtpComponent, StorageComponent, type RunningQueue, type Storage } from './components.js';
import { PodPublisher } from './pod-publisher.js';
import { committedFacts } from './pod-facts-recorder.js';
import { VERSION } from '../version.js';
import { createDeliveryQueue } from './delivery.js';
import { impAcceptorComponent } from './imp-acceptor.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
import { PodConsumer, PodConsumerComponent } from './pod-consumer.js';
import { QueueThread } from './queue-thread.js';
import { buildRewriteStep } from './rewrite-step.js';

export interface Gateway {
  smtpAddress(): AddressInfo;
  /** The IMP acceptor's address; undefined when imp.listen is not set. */
  impAddress(): AddressInfo | undefined;
  adminAddress(): AddressInfo | undefined;
  /** The PoD publisher's listener, when `pod.publisher.enabled`. */
  podPublisherAddress(): AddressInfo | undefined;
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
  /** Store poll interval of the queue, ms (default 1000). */
  pollMs?: number;
  /**
   * Tests only: run the delivery queue on this thread (its spool file-system calls and log
   * lines then go through `spoolFs` and `logger`). The rewrite step is built from config
   * either way.
   */
  queueThread?: boolean;
  /** The spool's file-system calls on this thread (tests record their order); a queue thread uses node:fs. */
  spoolFs?: SpoolFs;
  /** Tests only: the PoD publisher's clock (resume windows, archive limits). */
  clock?: () => number;
  /** Where PoD stream tokens named by `tokenEnv` are looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Wires the gateway as a list of components (component.ts), started in this order and
 * stopped in reverse: the admin listener (so /healthz answers "starting" at once), store
 * and spool, the delivery queue, the SMTP listener. Before any of them, the instance
 * lock (instance.ts): one gateway per spool and store. Resolves once the SMTP port is
 * bound and the queue has resumed whatever the store holds.
 */
export async function startGateway(config: Config, opts: StartGatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { name: 'mailbag' } });
  checkGreetingDelay(config.smtp.greetingDelay);
  const metrics = createGatewayMetrics();
  const queueInProcess = opts.queueThread === false;
  // this thread's connection: the SMTP role, unless the queue runs here too
  const facts = config.pod.publisher.enabled ? committedFacts(logger, opts.clock) : undefined;
  const storage = new StorageComponent(() => openStorage(config, logger, queueInProcess ? 'gateway' : 'smtp', opts.spoolFs, facts));
  metrics.setQueueDepthSource(() => storage.get().store.queue.depth());
  const queue = new QueueComponent(() => startQueue(config, opts, storage.get(), metrics, logger));
  const pub = config.pod.publisher;
  const podPublisher = pub.enabled
    ? new PodPublisherComponent(
        () =>
          new PodPublisher({
            config: pub,
            store: storage.get().store,
            identity: { agent: config.gateway.hostname, version: VERSION, localDomains: config.smtp.localDomains },
            logger,
            ...(opts.clock ? { now: opts.clock } : {}),
          }),
      )
    : undefined;
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
            // the publisher's facts of the message were committed with it (committedFacts)
            queue.handle.kick([qid]);
          },
          rejected(code) {
            metrics.smtpRejections.inc({ code: String(code) });
          },
        },
      }),
    config.smtp.listen,
  );
  const imp = config.imp.listen
    ? impAcceptorComponent(config, config.imp.listen, { storage: () => storage.get(), metrics, logger, kick: (qid) => queue.handle.kick([qid]) })
    : undefined;
  const components: GatewayComponent[] = [storage, queue, ...(podPublisher ? [podPublisher] : []), smtp, ...(imp ? [imp] : [])];
  if (config.pod.streams.length) {
    components.push(new PodConsumerComponent(() => new PodConsumer({ config: config.pod, store: storage.get().store, logger, metrics: metrics.pod, env: opts.env ?? process.env })));
  }
  const health = (): HealthReport => ({
    ...componentsHealth(components),
    queueDepth: storage.isOpen ? storage.get().store.queue.depth() : undefined,
    attemptsInFlight: queue.inFlight,
  });
  const admin = config.admin.enabled ? new AdminComponent(config.admin.listen, metrics, health) : undefined;
  if (admin) components.unshift(admin);

  // Before anything touches the spool or the store (or binds a port, which would make a
  // second gateway fail with a less useful message): a second gateway on the same ones
  // would sweep the first one's files and resume its attempts in flight.
  const locks = lockInstance(config);
  try {
    await startComponents(components);
  } catch (err) {
    locks.release();
    metrics.close();
    throw err;
  }
  const { store, spool } = storage.get();
  const smtpAddress = smtp.inbound.address();
  const adminAddress = admin?.address();
  logger.info(
    {
      smtp: `${smtpAddress.address}:${smtpAddress.port}`,
      imp: imp?.address() ? `${imp.address()!.address}:${imp.address()!.port}` : undefined,
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
    impAddress: () => imp?.address(),
    adminAddress: () => admin?.address(),
    podPublisherAddress: () => podPublisher?.running?.address(),
    queue: q,
    store,
    metrics,
    health,
    stop() {
      stopping ??= (async () => {
        logger.info({ transactions: inbound.transactionsInFlight, attempts: q.inFlight }, 'stopping');
        try {
          await stopComponents(components, config.queue.shutdownGrace);
        } finally {
          locks.release();
        }
        metrics.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Start-up of the store and spool (under the instance lock, before the queue and the
 * listeners): open the store, sweep what a crash left half-written, set aside spool
 * files the store does not know, and build the durable accept path every listener shares.
 */
async function openStorage(config: Config, logger: Logger, role: ConnectionRole, spoolFs: SpoolFs | undefined, facts: CommittedFacts | undefined): Promise<Storage> {
  const store = Store.open(config.store.path, { role });
  try {
    const spool = new Spool(config.spool.dir, spoolFs ? { fs: spoolFs } : {});
    const swept = await spool.sweepTmp();
    if (swept) logger.info({ files: swept }, 'spool: removed unfinished transactions left by the last stop');
    const sweep = await sweepSpool(spool, store);
    if (sweep.removedDone) logger.info({ files: sweep.removedDone }, 'spool: removed files of finished messages');
    if (sweep.unknown) {
      logger.warn(
        { files: sweep.unknown, movedNow: sweep.movedAside.length, dir: spool.unknownDir, run: 'mailbag queue recover --config FILE' },
        `spool: ${sweep.unknown} spool file(s) unknown to the store are kept in ${spool.unknownDir}, not delivered; ` +
          'if store.path changed or the store was lost, run: mailbag queue recover --config FILE',
      );
    }
    // Lane 0 of 2: the queue thread (lane 1) queues bounces with ids of its own. Seeded
    // past every qid in the spool too: files set aside keep theirs when recovered.
    const qids = new QidGenerator(laterQid(store.queue.maxQid(), spool.maxQid()), { lane: 0, lanes: 2 });
    const close = () => {
      spool.close();
      store.close();
    };
    return { store, spool, qids, accept: new WatchedAcceptPath({ spool, store, qids, facts }), close };
  } catch (err) {
    store.close();
    throw err;
  }
}

/**
 * The delivery queue with its transports, on its own thread; the queue thread builds
 * the rewrite step from config (rewrite-step.ts).
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
    fromMismatch() {
      metrics.multilingualFromMismatch.inc();
    },
    impBagShipped(e) {
      metrics.impBagsOut.inc({ peer: e.peer });
      metrics.impMessagesOut.inc({ peer: e.peer }, e.messages);
    },
    impAcknowledged(e) {
      metrics.impAcknowledgements.inc({ peer: e.peer, answer: e.answer });
    },
    impRepliesPassedBack(e) {
      metrics.impRepliesPassedBack.inc({ result: e.result }, e.replies);
    },
  };
  if (opts.queueThread === false) {
    const rewrite = await buildRewriteStep(config, { store: storage.store, logger, events });
    const inProcess = createDeliveryQueue(config, {
      store: storage.store,
      spool: storage.spool,
      qids: storage.qids,
      logger,
      events,
      ...(rewrite ? { rewrite } : {}),
      ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    });
    inProcess.start();
    // On this thread the queue's thread does not exist to prune: prune here, stop with the queue.
    const pruner = new RetentionPruner({ store: storage.store, retentionMs: config.store.retention, podRetentionMs: config.store.podRetention, logger });
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
  // one writer on the hot path: the queue thread commits accepted messages and claims them
  storage.accept.handCommitsTo((rows) => thread.commitAccepted(rows));
  return { handle: thread, failure: () => thread.failed };
}
