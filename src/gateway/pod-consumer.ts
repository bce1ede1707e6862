// The PoD Log API consumer: one runner per configured stream keeps a live session open,
// reconnects with backoff, fills gaps from the archive and stores events in batches.
import type { Logger } from 'pino';
import { resolveToken } from '../config/pod-tokens.js';
import type { Config, PodStreamConfig } from '../config/schema.js';
import { archiveWindow, backoffDelay, conflictDelay, gapBeforeLive, refusalAction, streamUrl } from '../pod/consumer.js';
import { ingestToBatchItem } from '../pod/ingest.js';
import type { PodBatchItem } from '../store/pod-store.js';
import type { PodGap, PodStreamState, PodStreamStatus } from '../store/pod-stream-store.js';
import type { Store } from '../store/store.js';
import type { ComponentHealth, GatewayComponent } from './component.js';
import type { PodConsumerMetrics } from './metrics.js';
import { PodIngestThread, type IngestStreamOptions } from './pod-ingest-thread.js';
import { runSession, type SessionEnd, type SessionFlow } from './pod-session.js';

export type PodConfig = Config['pod'];

/** The archive lags: events of the last half hour may not be in it yet. */
const ARCHIVE_LAG_MS = 30 * 60_000;

export interface PodConsumerDeps {
  config: PodConfig;
  store: Store;
  logger: Logger;
  metrics?: PodConsumerMetrics;
  env: NodeJS.ProcessEnv;
  /** Wall clock, ms (tests simulate hours passing). */
  now?: () => number;
  /** In [0, 1): reconnect jitter. */
  random?: () => number;
  /** Tests: every state change, in order. */
  onState?: (stream: string, state: PodStreamState, detail: string | null) => void;
  /** Overrides `config.ingestThread` (the benchmark's A/B). */
  ingestThread?: boolean;
}

/**
 * Payloads handed to the ingest thread and not answered yet, per stream: beyond either bound
 * the session stops reading (the socket backs up to the server) until half of them are back.
 */
const IN_FLIGHT_MAX_EVENTS = 2000;
const IN_FLIGHT_MAX_BYTES = 32 * 1024 * 1024;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

type FillResult = 'done' | 'stop' | 'conflict' | 'retry';

class StreamRunner {
  readonly status: PodStreamStatus;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private pending: PodBatchItem[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  /** Set during a session: aborting it drops the connection (a batch could not be stored). */
  private sessionAbort: AbortController | undefined;
  /** The last sign of life of the last live session (when it dropped), or how far the last archive window reached (ms). */
  private coveredUntilMs: number | undefined;
  /** The current live session's last sign of life: its opening, a message, a pong. */
  private aliveMs: number | undefined;
  private newestTsUs: number | undefined;
  private backfill: Promise<void> | undefined;
  /** Set by `PodConsumer.start`; undefined: ingest on this thread. */
  ingestThread: PodIngestThread | undefined;
  private readonly ingestOpts: IngestStreamOptions;
  /** Payloads handed to the ingest thread (numbered from 1) and not answered yet. */
  private inFlight = { events: 0, bytes: 0, lastSent: 0, lastAnswered: 0 };
  private ingestWaiters: Array<{ upTo: number; resolve: () => void }> = [];
  /** The open sessions' reading (a live session and a backfill may run together). */
  private readonly flows = new Set<SessionFlow>();
  private paused = false;

  constructor(
    readonly stream: PodStreamConfig,
    private readonly deps: PodConsumerDeps,
    private readonly signal: AbortSignal,
  ) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.log = deps.logger.child({ podStream: stream.name });
    const t = this.now();
    this.status = {
      stream: stream.name,
      type: stream.type,
      state: 'connecting',
      stateSince: t,
      detail: null,
      lastError: null,
      lastErrorAt: null,
      received: 0,
      stored: 0,
      duplicates: 0,
      deadLettered: 0,
      lastEventTs: null,
      lastEventAt: null,
      startedAt: t,
      updatedAt: t,
    };
    const cp = deps.store.pod.checkpoint(stream.name);
    if (cp) this.newestTsUs = cp.newestTsUs;
    this.ingestOpts = { kind: stream.type, maxEventBytes: deps.config.maxEventBytes, source: stream.name };
  }

  lastEventAgeSeconds(): number | undefined {
    return this.newestTsUs === undefined ? undefined : Math.max(0, (this.now() - this.newestTsUs / 1000) / 1000);
  }

  private save(): void {
    this.status.updatedAt = this.now();
    try {
      this.deps.store.podStreams.saveStatus(this.status);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pod: cannot record the stream status');
    }
  }

  private setState(state: PodStreamState, detail: string | null): void {
    if (this.status.state !== state) this.status.stateSince = this.now();
    this.status.state = state;
    this.status.detail = detail;
    this.deps.metrics?.setState(this.stream.name, state);
    this.deps.onState?.(this.stream.name, state, detail);
    this.save();
  }

  private error(reason: string, message: string): void {
    this.status.lastError = message;
    this.status.lastErrorAt = this.now();
    this.deps.metrics?.sessionErrors.inc({ stream: this.stream.name, reason });
  }

  private stop(why: string): void {
    this.log.error({ why }, 'pod: stream stopped');
    this.status.lastError = why;
    this.status.lastErrorAt = this.now();
    this.setState('stopped', why);
  }

  private receive(payload: Buffer): void {
    this.status.received++;
    this.deps.metrics?.eventsReceived.inc({ stream: this.stream.name });
    const thread = this.ingestThread;
    if (!thread) return this.take(ingestToBatchItem(payload, this.stream.name, this.ingestOpts));
    const f = this.inFlight;
    const bytes = payload.length;
    f.events++;
    f.bytes += bytes;
    f.lastSent++;
    if (!this.paused && (f.events >= IN_FLIGHT_MAX_EVENTS || f.bytes >= IN_FLIGHT_MAX_BYTES)) this.setPaused(true);
    thread.ingest(payload, this.ingestOpts, (item) => {
      f.events--;
      f.bytes -= bytes;
      f.lastAnswered++;
      this.take(item);
      if (this.paused && f.events <= IN_FLIGHT_MAX_EVENTS / 2 && f.bytes <= IN_FLIGHT_MAX_BYTES / 2) this.setPaused(false);
      while (this.ingestWaiters[0] && this.ingestWaiters[0].upTo <= f.lastAnswered) this.ingestWaiters.shift()!.resolve();
    });
  }

  private setPaused(paused: boolean): void {
    this.paused = paused;
    for (const flow of this.flows) {
      if (paused) flow.pause();
      else flow.resume();
    }
  }

  /** Resolves once every payload received so far has been ingested (its item is pending or stored). */
  private ingested(): Promise<void> {
    const upTo = this.inFlight.lastSent;
    if (this.inFlight.lastAnswered >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.ingestWaiters.push({ upTo, resolve }));
  }

  /** An ingested payload, in the order received: pending until its batch is stored. */
  private take(item: PodBatchItem): void {
    if (item.kind !== 'dead') {
      this.status.lastEventTs = item.row.ts;
      this.status.lastEventAt = this.now();
      // Not past now, like the checkpoint: a ts hours ahead would show a stalled stream as fresh.
      const tsUs = Math.min(item.row.tsUs, this.now() * 1000);
      if (this.newestTsUs === undefined || tsUs > this.newestTsUs) this.newestTsUs = tsUs;
    } else {
      this.log.warn({ code: item.row.code, reason: item.row.reason, bytes: item.row.rawBytes }, 'pod: event dead-lettered');
    }
    this.pending.push(item);
    if (this.pending.length >= this.deps.config.batchSize) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), this.deps.config.batchDelay);
  }


  /** Stores what was received; false when the store failed (the items are kept and tried again). */
  private flush(): boolean {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.pending.length) return true;
    const name = this.stream.name;
    try {
      const r = this.deps.store.pod.storeBatch(this.pending, { source: name, checkpointStream: name, now: this.now() });
      this.pending = [];
      this.status.stored += r.stored;
      this.status.duplicates += r.duplicates;
      this.status.deadLettered += r.deadLettered;
      const m = this.deps.metrics;
      m?.eventsStored.inc({ stream: name }, r.stored);
      m?.eventsDuplicate.inc({ stream: name }, r.duplicates);
      m?.eventsDeadLettered.inc({ stream: name }, r.deadLettered);
      this.save();
      return true;
    } catch (err) {
      // Nothing of the batch is stored: keep it, drop the session (so the server stops
      // sending) and try the batch again before the next connection.
      this.log.error({ err: (err as Error).message, events: this.pending.length }, 'pod: cannot store a batch; reconnecting');
      this.error('store', `cannot store events: ${(err as Error).message}`);
      this.sessionAbort?.abort();
      return false;
    }
  }

  /** Covered until: the newest stored event or the last drop, whichever is later. */
  private noteGap(): void {
    const cp = this.deps.store.pod.checkpoint(this.stream.name);
    const covered = Math.max(cp ? Math.floor(cp.newestTsUs / 1000) : -Infinity, this.coveredUntilMs ?? -Infinity);
    const gap = gapBeforeLive(Number.isFinite(covered) ? covered : undefined, this.now());
    if (!gap) return;
    const streams = this.deps.store.podStreams;
    const last = streams.gaps(this.stream.name).at(-1);
    if (last && last.untilMs >= gap.sinceMs) {
      if (gap.untilMs > last.untilMs) streams.extendGap(last.id, gap.untilMs);
    } else {
      streams.addGap(this.stream.name, gap.sinceMs, gap.untilMs, this.now());
    }
    this.log.info({ since: new Date(gap.sinceMs).toISOString(), until: new Date(gap.untilMs).toISOString() }, 'pod: gap over an hour; filling it from the archive');
  }

  /** `live`: the live session (its signs of life date a drop); else an archive request. */
  private async session(token: string, query: { sinceTime?: string; toTime?: string }, onOpen: () => void, live: boolean): Promise<SessionEnd> {
    const alive = () => {
      if (live) this.aliveMs = this.now();
    };
    let flow: SessionFlow | undefined;
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.signal.addEventListener('abort', onStop);
    this.sessionAbort = ctl;
    try {
      return await runSession({
        url: streamUrl(this.stream.url, { cid: this.stream.cid, type: this.stream.type, ...query }),
        token,
        maxEventBytes: this.deps.config.maxEventBytes,
        pingIntervalMs: this.deps.config.pingInterval,
        connectTimeoutMs: this.deps.config.connectTimeout,
        signal: ctl.signal,
        onOpen: (opened) => {
          flow = opened;
          this.flows.add(opened);
          if (this.paused) opened.pause();
          alive();
          onOpen();
        },
        onPong: alive,
        onPayload: (p) => {
          alive();
          // Archive windows start at the checkpoint (or later), so both kinds may move it.
          this.receive(p);
        },
      });
    } finally {
      this.sessionAbort = undefined;
      if (flow) this.flows.delete(flow);
      this.signal.removeEventListener('abort', onStop);
      // The session is over: no payload comes after this; those in the ingest thread are stored with the rest.
      await this.ingested();
      this.flush();
    }
  }

  /**
   * Archive requests for every recorded gap, oldest first, on `token`. `beside`: on the
   * backfill token while the live session runs, so the stream's state stays the live one's.
   */
  private async fillGaps(token: string, beside: boolean): Promise<FillResult> {
    for (const gap of this.deps.store.podStreams.gaps(this.stream.name)) {
      if (this.signal.aborted) return 'retry';
      const r = await this.fillGap(gap, token, beside);
      if (r !== 'done') return r;
    }
    return 'done';
  }

  private async fillGap(gap: PodGap, token: string, beside: boolean): Promise<FillResult> {
    const streams = this.deps.store.podStreams;
    const startedAt = this.now();
    const w = archiveWindow(gap.sinceMs, gap.untilMs, startedAt);
    if (!w) {
      const why = `events from ${new Date(gap.sinceMs).toISOString()} to ${new Date(gap.untilMs).toISOString()} are past the archive's 30-day limit and cannot be fetched`;
      this.log.error({ why }, 'pod: gap cannot be filled');
      this.error('archive_limit', why);
      streams.removeGap(gap.id);
      return 'done';
    }
    if (w.clippedFromMs !== undefined) {
      const why = `events from ${new Date(w.clippedFromMs).toISOString()} to ${new Date(w.sinceMs).toISOString()} are past the archive's 30-day limit and cannot be fetched`;
      this.log.error({ why }, 'pod: gap partly beyond the archive');
      this.error('archive_limit', why);
    }
    if (!beside) this.setState('backfilling', `archive ${w.sinceTime} to ${w.toTime}`);
    this.log.info({ sinceTime: w.sinceTime, toTime: w.toTime }, 'pod: archive request');
    const end = await this.session(token, { sinceTime: w.sinceTime, toTime: w.toTime }, () => undefined, false);
    if (end.kind === 'closed' && end.code === 1000 && this.pending.length === 0) {
      streams.removeGap(gap.id);
      // The archive lags the live stream: what it was asked for in its last half hour may be missing.
      const reached = Math.min(w.untilMs, startedAt - ARCHIVE_LAG_MS);
      this.coveredUntilMs = Math.max(this.coveredUntilMs ?? reached, reached);
      this.log.info({ sinceTime: w.sinceTime, toTime: w.toTime }, 'pod: archive window filled');
      return 'done';
    }
    if (end.kind === 'aborted') return 'retry';
    if (end.kind === 'refused') {
      const { action, why } = refusalAction(end.status);
      this.error(`http_${end.status}`, `archive request: ${why}`);
      if (action === 'stop' && end.status === 400) {
        // The window itself was refused: retrying cannot help, the live stream can go on.
        this.log.error({ why, sinceTime: w.sinceTime, toTime: w.toTime }, 'pod: archive request refused; gap not filled');
        streams.removeGap(gap.id);
        return 'done';
      }
      if (action === 'stop' && beside) {
        // The backfill token is refused: the live session is not affected; the gap stays recorded.
        this.log.error({ why }, 'pod: the backfill token was refused; gaps are not filled until it is fixed');
        this.status.lastError = `backfill token: ${why}`;
        return 'stop';
      }
      if (action === 'stop') {
        this.stop(why);
        return 'stop';
      }
      return action === 'conflict' ? 'conflict' : 'retry';
    }
    const why = end.kind === 'closed' ? `archive session closed (${end.code}${end.reason ? ` ${end.reason}` : ''}) before its range was done` : `archive session: ${end.message}`;
    this.log.warn({ why }, 'pod: archive request incomplete; it is retried');
    this.error('archive_incomplete', why);
    return 'retry';
  }

  private backfillWorker(token: string): void {
    if (this.backfill || !this.deps.store.podStreams.gaps(this.stream.name).length) return;
    this.backfill = (async () => {
      let failures = 0;
      while (!this.signal.aborted && this.deps.store.podStreams.gaps(this.stream.name).length) {
        const r = await this.fillGaps(token, true);
        if (r === 'done') break;
        if (r === 'stop') return;
        const c = this.deps.config;
        await sleep(r === 'conflict' ? conflictDelay(c.conflictRetry, this.random()) : backoffDelay(failures++, c.reconnectInitial, c.reconnectMax, this.random()), this.signal);
      }
    })().finally(() => {
      this.backfill = undefined;
    });
  }

  async run(): Promise<void> {
    const s = this.stream;
    const env = this.deps.env;
    const main = resolveToken(s.token, s.tokenEnv, env);
    const extra = resolveToken(s.backfillToken, s.backfillTokenEnv, env);
    if (!main.token || extra.problem) return this.stop(`no token: ${main.problem ?? extra.problem ?? 'none configured'}`);
    const token = main.token;
    const c = this.deps.config;
    let failures = 0;
    while (!this.signal.aborted) {
      if (!this.flush()) {
        await this.wait('backoff', 'the store failed; retrying', backoffDelay(failures++, c.reconnectInitial, c.reconnectMax, this.random()));
        continue;
      }
      this.noteGap();
      if (extra.token) this.backfillWorker(extra.token);
      else if (this.deps.store.podStreams.gaps(s.name).length) {
        // One token: no archive request while the live session is open (the API allows one session per token).
        const r = await this.fillGaps(token, false);
        if (r === 'stop') return;
        if (r === 'conflict') await this.wait('conflict', `archive request: the token is in use by another session; retrying`, conflictDelay(c.conflictRetry, this.random()));
        else if (r === 'retry') await this.wait('backoff', 'archive request failed; retrying', backoffDelay(failures++, c.reconnectInitial, c.reconnectMax, this.random()));
        continue;
      }
      this.setState('connecting', null);
      const end = await this.session(token, {}, () => {
        failures = 0;
        this.log.info('pod: live session open');
        this.setState('live', null);
      }, true);
      if (end.kind === 'aborted') {
        this.noteDrop();
        continue;
      }
      if (end.kind === 'refused') {
        const { action, why } = refusalAction(end.status);
        this.error(`http_${end.status}`, why);
        if (action === 'stop') return this.stop(why);
        this.log.warn({ status: end.status, why }, 'pod: session refused');
        if (action === 'conflict') await this.wait('conflict', `${why}; retrying`, conflictDelay(c.conflictRetry, this.random()));
        else await this.wait('backoff', why, backoffDelay(failures++, c.reconnectInitial, c.reconnectMax, this.random()));
        continue;
      }
      this.noteDrop();
      const why = end.kind === 'closed' ? `the server closed the session (${end.code}${end.reason ? ` ${end.reason}` : ''})` : end.message;
      this.error(end.kind === 'failed' && end.message.startsWith('no pong') ? 'no_pong' : 'drop', why);
      this.log.warn({ why }, 'pod: session ended; reconnecting');
      await this.wait('backoff', why, backoffDelay(failures++, c.reconnectInitial, c.reconnectMax, this.random()));
    }
  }

  /**
   * A live session ended: the server resumes from the drop if we are back within the hour;
   * the drop is dated by the session's last sign of life, not by when it was noticed.
   */
  private noteDrop(): void {
    if (this.aliveMs !== undefined) this.coveredUntilMs = Math.max(this.coveredUntilMs ?? this.aliveMs, this.aliveMs);
    this.aliveMs = undefined;
  }

  private async wait(state: PodStreamState, detail: string, ms: number): Promise<void> {
    this.setState(state, `${detail} (next attempt in ${Math.round(ms / 100) / 10} s)`);
    await sleep(ms, this.signal);
  }

  /** After `run` returned: store what is left and say the stream is not running. */
  async finish(): Promise<void> {
    await this.backfill;
    await this.ingested();
    this.flush();
    if (this.status.state !== 'stopped') this.setState('stopped', 'the gateway stopped');
  }
}

/** Every configured stream, each on its own runner. */
export class PodConsumer {
  private readonly abort = new AbortController();
  private readonly runners: StreamRunner[];
  private running: Promise<void> | undefined;
  private ingestThread: PodIngestThread | undefined;

  constructor(private readonly deps: PodConsumerDeps) {
    this.runners = deps.config.streams.map((s) => new StreamRunner(s, deps, this.abort.signal));
    deps.metrics?.setLastEventAgeSource(() =>
      this.runners.flatMap((r) => {
        const age = r.lastEventAgeSeconds();
        return age === undefined ? [] : [{ stream: r.stream.name, ageSeconds: age }];
      }),
    );
  }

  start(): void {
    if (this.running) return;
    if ((this.deps.ingestThread ?? this.deps.config.ingestThread) && this.runners.length) {
      this.ingestThread = new PodIngestThread(this.deps.logger);
      for (const r of this.runners) r.ingestThread = this.ingestThread;
    }
    this.running = Promise.all(
      this.runners.map(async (r) => {
        try {
          await r.run();
        } catch (err) {
          this.deps.logger.error({ podStream: r.stream.name, err: (err as Error).message }, 'pod: stream runner failed');
        } finally {
          await r.finish();
        }
      }),
    ).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    await this.ingestThread?.close();
  }

  statuses(): PodStreamStatus[] {
    return this.runners.map((r) => ({ ...r.status }));
  }
}

/** The consumer as a gateway component: unhealthy while a stream is stopped (it needs the operator). */
export class PodConsumerComponent implements GatewayComponent {
  readonly name = 'pod-consumer';
  private consumer: PodConsumer | undefined;

  constructor(private readonly create: () => PodConsumer) {}

  async start(): Promise<void> {
    this.consumer = this.create();
    this.consumer.start();
  }

  async stop(): Promise<void> {
    const c = this.consumer;
    this.consumer = undefined;
    await c?.stop();
  }

  health(): ComponentHealth {
    if (!this.consumer) return { ok: false, reason: 'not started' };
    const streams = this.consumer.statuses();
    const stopped = streams.filter((s) => s.state === 'stopped');
    const states = Object.fromEntries(streams.map((s) => [s.stream, s.state]));
    if (stopped.length) return { ok: false, reason: stopped.map((s) => `${s.stream}: ${s.detail ?? 'stopped'}`).join('; '), streams: states };
    return { ok: true, streams: states };
  }
}
