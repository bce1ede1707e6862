// The gateway's components (see component.ts). Each wraps one piece that gateway.ts
// builds, so start-up details stay with the wiring and the life cycle stays here.
import type { AddressInfo } from 'node:net';
import type { WatchedAcceptPath } from '../delivery/accept-health.js';
import type { QidGenerator } from '../delivery/qid.js';
import type { QueueHandle } from '../delivery/queue.js';
import type { Spool } from '../delivery/spool.js';
import type { InboundServer } from '../smtp/inbound.js';
import type { ImpAcceptor } from '../mpm/acceptor.js';
import type { Store } from '../store/store.js';
import { startAdminServer, type AdminServer, type HealthReport } from './admin-server.js';
import type { ComponentHealth, GatewayComponent } from './component.js';
import type { GatewayMetrics } from './metrics.js';

export { PodPublisherComponent } from './pod-publisher.js';

const NOT_STARTED: ComponentHealth = { ok: false, reason: 'not started' };

/** The store, the spool and the durable accept path every listener shares. */
export interface Storage {
  store: Store;
  spool: Spool;
  qids: QidGenerator;
  accept: WatchedAcceptPath;
  /** Releases what start-up took (the store connections, the spool directory descriptor). */
  close(): void;
}

export class StorageComponent implements GatewayComponent {
  readonly name = 'storage';
  private opened: Storage | undefined;

  constructor(private readonly open: () => Promise<Storage>) {}

  async start(): Promise<void> {
    this.opened = await this.open();
  }

  async stop(): Promise<void> {
    const s = this.opened;
    this.opened = undefined;
    s?.close();
  }

  /** The open storage; throws before start and after stop. */
  get(): Storage {
    if (!this.opened) throw Object.assign(new Error('the store and spool are not open'), { code: 'ERR_MAILBAG_NOT_STARTED' });
    return this.opened;
  }

  get isOpen(): boolean {
    return this.opened !== undefined;
  }

  health(): ComponentHealth {
    return this.opened ? { ...this.opened.accept.health() } : NOT_STARTED;
  }
}

/** The delivery queue, on its own thread or on this one. */
export interface RunningQueue {
  handle: QueueHandle;
  /** Why the queue cannot work right now (its thread died), if it cannot. */
  failure(): Error | undefined;
}

export class QueueComponent implements GatewayComponent {
  readonly name = 'queue';
  private running: RunningQueue | undefined;

  constructor(private readonly startQueue: () => Promise<RunningQueue>) {}

  async start(): Promise<void> {
    this.running = await this.startQueue();
  }

  async stop(graceMs: number): Promise<void> {
    const q = this.running;
    this.running = undefined;
    await q?.handle.stop(graceMs);
  }

  get handle(): QueueHandle {
    if (!this.running) throw Object.assign(new Error('the delivery queue is not running'), { code: 'ERR_MAILBAG_NOT_STARTED' });
    return this.running.handle;
  }

  get inFlight(): number {
    return this.running?.handle.inFlight ?? 0;
  }

  health(): ComponentHealth {
    if (!this.running) return NOT_STARTED;
    const failed = this.running.failure();
    const inFlight = this.running.handle.inFlight;
    if (failed) return { ok: false, reason: `the delivery queue's thread died (${failed.message}); it is being replaced`, attemptsInFlight: inFlight };
    return { ok: true, attemptsInFlight: inFlight };
  }
}

export class SmtpComponent implements GatewayComponent {
  readonly name = 'smtp';
  private server: InboundServer | undefined;

  constructor(
    private readonly create: () => InboundServer,
    private readonly listen: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    this.server = this.create();
    await this.server.listen(this.listen.host, this.listen.port);
  }

  async stop(graceMs: number): Promise<void> {
    await this.server?.close(graceMs);
  }

  get inbound(): InboundServer {
    if (!this.server) throw Object.assign(new Error('the SMTP listener is not running'), { code: 'ERR_MAILBAG_NOT_STARTED' });
    return this.server;
  }

  health(): ComponentHealth {
    return this.server ? { ...this.server.health() } : NOT_STARTED;
  }
}

/** The RFC 753 acceptor (imp.listen). */
export class ImpComponent implements GatewayComponent {
  readonly name = 'imp';
  private acceptor: ImpAcceptor | undefined;

  constructor(
    private readonly create: () => ImpAcceptor,
    private readonly listen: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    const a = this.create();
    await a.listen(this.listen.host, this.listen.port);
    this.acceptor = a;
  }

  async stop(graceMs: number): Promise<void> {
    const a = this.acceptor;
    this.acceptor = undefined;
    await a?.close(graceMs);
  }

  address(): AddressInfo | undefined {
    return this.acceptor?.address();
  }

  health(): ComponentHealth {
    return this.acceptor ? { ...this.acceptor.health() } : NOT_STARTED;
  }
}

export class AdminComponent implements GatewayComponent {
  readonly name = 'admin';
  private server: AdminServer | undefined;

  constructor(
    private readonly listen: { host: string; port: number },
    private readonly metrics: GatewayMetrics,
    private readonly report: () => HealthReport,
  ) {}

  async start(): Promise<void> {
    this.server = await startAdminServer({ ...this.listen, metrics: this.metrics, health: this.report });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.close();
  }

  address(): AddressInfo | undefined {
    return this.server?.address();
  }

  health(): ComponentHealth {
    return this.server ? { ok: true } : NOT_STARTED;
  }
}
