// The gateway's Prometheus metrics. Every createGatewayMetrics() call owns a fresh
// Registry, so several gateways (tests, benchmarks) in one process never share or
// double-register series.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface GatewayMetrics {
  registry: Registry;
  /** Messages accepted with a 250 (stored durably). */
  messagesReceived: Counter;
  recipientsDelivered: Counter<'nexthop'>;
  recipientsDeferred: Counter<'nexthop'>;
  /** Recipients that failed for good (5xx or expiry) and were bounced or dropped (null sender). */
  recipientsBounced: Counter;
  multilingualFromMismatch: Counter;
  /** IMP bags shipped to peer MPMs, and the messages (one per recipient) in them. */
  impBagsOut: Counter<'peer'>;
  impMessagesOut: Counter<'peer'>;
  /** Answers to shipped IMP messages: yes, no, none (no ACKNOWLEDGE came). */
  impAcknowledgements: Counter<'peer' | 'answer'>;
  /** End-to-end replies a relay passed back to their originating MPM, or left queued for a retry. */
  impRepliesPassedBack: Counter<'result'>;
  /** SMTP replies >= 400 the gateway sent to clients, by reply code. */
  smtpRejections: Counter<'code'>;
  /** One observation per delivery attempt (one attempt groups the recipients sharing a next hop). */
  attemptDuration: Histogram<'nexthop' | 'outcome'>;
  /** The PoD consumer's streams (labelled by stream name). */
  pod: PodConsumerMetrics;
  /** The gauge mailbag_queue_depth asks this function at every scrape. */
  setQueueDepthSource(fn: () => number): void;
  /** Stops the event-loop delay monitor. */
  close(): void;
}

export const POD_STREAM_STATES = ['connecting', 'live', 'backfilling', 'backoff', 'conflict', 'stopped'] as const;

export interface PodConsumerMetrics {
  eventsReceived: Counter<'stream'>;
  eventsStored: Counter<'stream'>;
  /** Events (and bad payloads) seen again: replays after a reconnect, overlapping archive windows. */
  eventsDuplicate: Counter<'stream'>;
  eventsDeadLettered: Counter<'stream'>;
  /** Why sessions ended or were refused: `http_401`, `http_409`, `drop`, `no_pong`, ... */
  sessionErrors: Counter<'stream' | 'reason'>;
  setState(stream: string, state: (typeof POD_STREAM_STATES)[number]): void;
  /** mailbag_pod_last_event_age_seconds asks this at every scrape: seconds since each stream's newest event's ts. */
  setLastEventAgeSource(fn: () => ReadonlyArray<{ stream: string; ageSeconds: number }>): void;
}

function createPodMetrics(registry: Registry): PodConsumerMetrics {
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['stream'] as const, registers: [registry] });
  const state = new Gauge({
    name: 'mailbag_pod_stream_state',
    help: 'PoD stream state: 1 for the state the stream is in, 0 for the others',
    labelNames: ['stream', 'state'] as const,
    registers: [registry],
  });
  let ages: () => ReadonlyArray<{ stream: string; ageSeconds: number }> = () => [];
  new Gauge({
    name: 'mailbag_pod_last_event_age_seconds',
    help: "Seconds from the newest received PoD event's ts to now, per stream",
    labelNames: ['stream'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const a of ages()) this.set({ stream: a.stream }, a.ageSeconds);
    },
  });
  return {
    eventsReceived: counter('mailbag_pod_events_received_total', 'PoD events received, per stream'),
    eventsStored: counter('mailbag_pod_events_stored_total', 'PoD events stored, per stream'),
    eventsDuplicate: counter('mailbag_pod_events_duplicate_total', 'PoD events received again and not stored twice, per stream'),
    eventsDeadLettered: counter('mailbag_pod_events_dead_lettered_total', 'PoD events that could not be taken, kept as dead letters, per stream'),
    sessionErrors: new Counter({
      name: 'mailbag_pod_session_errors_total',
      help: 'PoD sessions refused or dropped, per stream and reason (http_STATUS, drop, no_pong, archive_incomplete)',
      labelNames: ['stream', 'reason'] as const,
      registers: [registry],
    }),
    setState(stream, current) {
      for (const s of POD_STREAM_STATES) state.set({ stream, state: s }, s === current ? 1 : 0);
    },
    setLastEventAgeSource(fn) {
      ages = fn;
    },
  };
}

export interface GatewayMetricsOptions {
  /** prom-client default process metrics (CPU, RSS, event loop lag, GC...). Default true. */
  processMetrics?: boolean;
}

/** Attempt latencies run from a few ms (local Maildir) to minutes (slow next hop, attemptTimeout). */
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createGatewayMetrics(opts: GatewayMetricsOptions = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });

  let queueDepth: () => number = () => 0;
  new Gauge({
    name: 'mailbag_queue_depth',
    help: 'Recipients not yet finished (queued or deferred), read from the store at scrape time',
    registers: [registry],
    collect() {
      let depth: number;
      try {
        depth = queueDepth();
      } catch {
        // A failing source (store closed during shutdown) must not fail the whole scrape.
        depth = Number.NaN;
      }
      this.set(depth);
    },
  });

  // Measured on the thread that creates the metrics: the SMTP listener's. Anything that
  // blocks it (a SQLite lock wait or fsync, a long parse) delays every session.
  const loopStall = new LoopStallMeter();
  new Gauge({
    name: 'mailbag_event_loop_delay_max_seconds',
    help: "Worst event-loop delay of the SMTP listener's thread since the previous scrape (10 ms resolution)",
    registers: [registry],
    collect() {
      this.set(loopStall.takeMaxMs() / 1000);
    },
  });

  return {
    registry,
    messagesReceived: new Counter({
      name: 'mailbag_messages_received_total',
      help: 'Messages accepted (250) and stored durably',
      registers: [registry],
    }),
    recipientsDelivered: new Counter({
      name: 'mailbag_recipients_delivered_total',
      help: 'Recipients delivered, by next hop',
      labelNames: ['nexthop'] as const,
      registers: [registry],
    }),
    recipientsDeferred: new Counter({
      name: 'mailbag_recipients_deferred_total',
      help: 'Recipient delivery attempts that failed temporarily and will be retried, by next hop',
      labelNames: ['nexthop'] as const,
      registers: [registry],
    }),
    recipientsBounced: new Counter({
      name: 'mailbag_recipients_bounced_total',
      help: 'Recipients that failed permanently (5xx or queue lifetime expired)',
      registers: [registry],
    }),
    multilingualFromMismatch: new Counter({
      name: 'mailbag_multilingual_from_mismatch_total',
      help: 'Language parts whose From named another sender than the message (never delivered with it)',
      registers: [registry],
    }),
    impBagsOut: new Counter({
      name: 'mailbag_imp_bags_out_total',
      help: 'IMP message-bags shipped, by peer (imp:// next hop)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    impMessagesOut: new Counter({
      name: 'mailbag_imp_messages_out_total',
      help: 'IMP messages (one per recipient) shipped in bags, by peer',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    impAcknowledgements: new Counter({
      name: 'mailbag_imp_acknowledgements_total',
      help: 'Answers to shipped IMP messages by peer and answer: yes, no, none (no ACKNOWLEDGE: connection lost or timed out)',
      labelNames: ['peer', 'answer'] as const,
      registers: [registry],
    }),
    impRepliesPassedBack: new Counter({
      name: 'mailbag_imp_replies_passed_back_total',
      help: 'End-to-end ACKNOWLEDGEs passed back towards their originating MPM (passed) or left queued for a retry (retried)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    smtpRejections: new Counter({
      name: 'mailbag_smtp_rejections_total',
      help: 'SMTP error replies (4xx/5xx) sent to clients, by reply code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    attemptDuration: new Histogram({
      name: 'mailbag_delivery_attempt_duration_seconds',
      help: 'Delivery attempt duration, by next hop and outcome (delivered, deferred, failed)',
      labelNames: ['nexthop', 'outcome'] as const,
      buckets: ATTEMPT_BUCKETS,
      registers: [registry],
    }),
    pod: createPodMetrics(registry),
    setQueueDepthSource(fn) {
      queueDepth = fn;
    },
    close() {
      loopStall.stop();
    },
  };
}

/**
 * The worst lateness of a 10 ms timer over a window. perf_hooks' monitorEventLoopDelay
 * is not used: its reset() also forgets the previous tick, so a stall right after a
 * scrape would never be counted.
 */
class LoopStallMeter {
  private static readonly TICK_MS = 10;
  private last = performance.now();
  private maxMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sample(), LoopStallMeter.TICK_MS);
    this.timer.unref();
  }

  private sample(): number {
    const now = performance.now();
    const late = Math.max(0, now - this.last - LoopStallMeter.TICK_MS);
    if (late > this.maxMs) this.maxMs = late;
    this.last = now;
    return late;
  }

  /** The window's worst delay, ms; starts a new window. */
  takeMaxMs(): number {
    // a stall still under way (the timer has not run since) counts too
    const ongoing = Math.max(0, performance.now() - this.last - LoopStallMeter.TICK_MS);
    const max = Math.max(this.maxMs, ongoing);
    this.maxMs = 0;
    return max;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
