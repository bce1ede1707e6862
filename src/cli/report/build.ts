import type { BucketCount, ReportWindow } from '../../store/report-store.js';
import { bucketValue } from '../../store/latency-buckets.js';
import { COUNTER_LATENCY_BINS_MS } from '../../store/report-counters-sql.js';
import type { Store } from '../../store/store.js';
import { CliError } from '../command.js';
import { BUCKET_MS, type BucketName, type ReportWindowSpec } from './time.js';

/** One row of the time series (and of the CSV). */
export interface ReportBucket {
  /** ISO start of the UTC hour or day. */
  start: string;
  received: number;
  delivered: number;
  deferred: number;
  bounced: number;
  podMessage: number;
  podMaillog: number;
  podDeadLettered: number;
}

export interface HopLatency {
  nexthop: string;
  delivered: number;
  /** ms from receipt to delivery, nearest-rank percentiles. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

/** Upper bounds (ms) of the latency histogram's bins; the last bin is open-ended. */
export const LATENCY_BINS_MS = COUNTER_LATENCY_BINS_MS;

export interface Report {
  window: { since: string; until: string; by: BucketName };
  /** Receipts are messages; delivered, deferred and bounced count recipients (see docs/report.md). */
  messages: { received: number; delivered: number; deferred: number; bounced: number };
  latency: HopLatency[];
  latencyHistogram: { binsMs: number[]; hops: { nexthop: string; counts: number[] }[] };
  /**
   * How `latency`'s percentiles were found: `exact` from each delivery of the window (up to
   * EXACT_LATENCY_MAX deliveries), `histogram` from the hourly log-scale buckets (within 2.2%).
   */
  latencyPercentiles: 'exact' | 'histogram';
  languages: { selected: { tags: string; n: number }[]; byMode: { mode: string; n: number }[] };
  imp: { forwarded: number; accepted: number; note: string };
  pod: {
    message: number;
    maillog: number;
    deadLettered: number;
    dispositions: { disposition: string; n: number }[];
    topRules: { module: string; rule: string; n: number }[];
  };
  correlation: {
    messages: number;
    linked: number;
    coverage: number | null;
    definition: string;
    /** Linked messages by kind of link (`queued-as`, `received`, `guid`, `message-id`; one message may have several). */
    byVia: Record<string, number>;
    /** The other side: upstream messages handed to mailbag, and those mailbag has. */
    upstream: { messages: number; linked: number; coverage: number | null; definition: string };
  };
  buckets: ReportBucket[];
}

/** Past this many buckets the series is not worth drawing or loading: ask for days. */
const MAX_BUCKETS = 100_000;
const TOP_RULES = 10;

/** Nearest-rank percentile of an ascending array (non-empty). */
export function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

function sum(rows: readonly BucketCount[]): number {
  return rows.reduce((acc, r) => acc + r.n, 0);
}


export const UPSTREAM_DEFINITION =
  "upstream messages with a PoD maillog line in the window handing them to mailbag ('queued as' a qid of mailbag's form) that are linked to a mailbag message";

export const CORRELATION_DEFINITION =
  'messages received in the window (not bounces or IMP forwards mailbag made) linked to an upstream message by correlation (queued-as, Received id, Proofpoint GUID or Message-ID; docs/correlation.md)';

/** Windows with up to this many deliveries get exact percentiles from the rows. */
export const EXACT_LATENCY_MAX = 50_000;

/** Nearest-rank percentile of a histogram of fine buckets (ascending), as the bucket's value. */
export function bucketPercentile(buckets: readonly [bucket: number, n: number][], total: number, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const [bucket, n] of buckets) {
    seen += n;
    if (seen >= rank) return bucketValue(bucket);
  }
  return bucketValue(buckets[buckets.length - 1]![0]);
}

/**
 * Per next hop: deliveries, p50/p90/p99 and the histogram. The counts always come from the
 * hourly counters (and the rows of the window's partial hours); the percentiles are exact,
 * from every delivery's row, for a window of up to EXACT_LATENCY_MAX deliveries, and read
 * from the fine log-scale buckets beyond.
 */
function latencyFigures(r: Store['report'], w: ReportWindow): Pick<Report, 'latency' | 'latencyPercentiles'> & { histogram: Report['latencyHistogram']['hops'] } {
  const counts = r.latencyCounts(w);
  const histogram = counts.map((h) => ({ nexthop: h.nexthop, counts: h.bins }));
  if (counts.reduce((acc, h) => acc + h.delivered, 0) > EXACT_LATENCY_MAX) {
    const latency = counts.map((h) => ({
      nexthop: h.nexthop,
      delivered: h.delivered,
      p50Ms: bucketPercentile(h.buckets, h.delivered, 50),
      p90Ms: bucketPercentile(h.buckets, h.delivered, 90),
      p99Ms: bucketPercentile(h.buckets, h.delivered, 99),
    }));
    return { latency, histogram, latencyPercentiles: 'histogram' };
  }
  const byHop = new Map<string, number[]>();
  for (const [nexthop, ms] of r.deliveryLatencies(w)) {
    let list = byHop.get(nexthop);
    if (!list) byHop.set(nexthop, (list = []));
    list.push(Math.max(0, ms));
  }
  const latency: HopLatency[] = [...byHop.keys()].sort().map((nexthop) => {
    const list = byHop.get(nexthop)!.sort((a, b) => a - b);
    return { nexthop, delivered: list.length, p50Ms: percentile(list, 50), p90Ms: percentile(list, 90), p99Ms: percentile(list, 99) };
  });
  return { latency, histogram, latencyPercentiles: 'exact' };
}

/** Reads every figure of the report for the window from the store (read-only). */
export function buildReport(store: Store, spec: ReportWindowSpec): Report {
  const bucketMs = BUCKET_MS[spec.by];
  const first = Math.floor(spec.since / bucketMs) * bucketMs;
  const count = Math.ceil((spec.until - first) / bucketMs);
  if (count > MAX_BUCKETS) throw new CliError(`the window holds ${count} ${spec.by}s: use --by day or a shorter window`, 'ERR_MAILBAG_REPORT_WINDOW');
  const w: ReportWindow = { since: spec.since, until: spec.until, bucketMs };
  const r = store.report;

  const buckets: ReportBucket[] = Array.from({ length: count }, (_, i) => ({
    start: new Date(first + i * bucketMs).toISOString(),
    received: 0,
    delivered: 0,
    deferred: 0,
    bounced: 0,
    podMessage: 0,
    podMaillog: 0,
    podDeadLettered: 0,
  }));
  const at = (bucket: number) => buckets[Math.round((bucket - first) / bucketMs)]!;
  const fill = (rows: readonly BucketCount[], key: keyof Omit<ReportBucket, 'start'>) => {
    for (const row of rows) at(row.bucket)[key] += row.n;
  };

  const received = r.received(w);
  const deferred = r.deferred(w);
  const finished = r.finished(w);
  const podMessages = r.podMessages(w);
  const podMaillog = r.podMaillog(w);
  const deadLetters = r.podDeadLetters(w);
  fill(received, 'received');
  fill(deferred, 'deferred');
  fill(finished.filter((f) => f.state === 'delivered'), 'delivered');
  fill(finished.filter((f) => f.state === 'failed'), 'bounced');
  fill(podMessages, 'podMessage');
  fill(podMaillog, 'podMaillog');
  fill(deadLetters, 'podDeadLettered');

  const { latency, histogram, latencyPercentiles } = latencyFigures(r, w);

  const languageRows = r.languages(w);
  const byMode = new Map<string, number>();
  for (const l of languageRows) byMode.set(l.mode, (byMode.get(l.mode) ?? 0) + l.n);

  const forwarded = latency.filter((h) => h.nexthop.startsWith('imp:')).reduce((acc, h) => acc + h.delivered, 0);
  const coverage = r.linkCoverage(w);
  const upstream = r.upstreamCoverage(w);

  return {
    window: { since: new Date(spec.since).toISOString(), until: new Date(spec.until).toISOString(), by: spec.by },
    messages: {
      received: sum(received),
      delivered: sum(finished.filter((f) => f.state === 'delivered')),
      deferred: sum(deferred),
      bounced: sum(finished.filter((f) => f.state === 'failed')),
    },
    latency,
    latencyHistogram: { binsMs: [...LATENCY_BINS_MS], hops: histogram },
    latencyPercentiles,
    languages: {
      selected: languageRows.filter((l) => l.mode === 'select').map((l) => ({ tags: l.tags, n: l.n })),
      byMode: [...byMode].map(([mode, n]) => ({ mode, n })).sort((a, b) => b.n - a.n || a.mode.localeCompare(b.mode)),
    },
    imp: {
      forwarded,
      accepted: r.impAccepted(w),
      note: 'forwarded: recipients delivered to imp:// next hops; accepted: messages received over IMP (DELIVER answered yes)',
    },
    pod: {
      message: sum(podMessages),
      maillog: sum(podMaillog),
      deadLettered: sum(deadLetters),
      dispositions: r.dispositions(w).map((d) => ({ disposition: d.name, n: d.n })),
      topRules: r.topRules(w, TOP_RULES),
    },
    correlation: {
      messages: coverage.messages,
      linked: coverage.linked,
      coverage: coverage.messages ? coverage.linked / coverage.messages : null,
      definition: CORRELATION_DEFINITION,
      byVia: Object.fromEntries(r.linksByVia(w).map((v) => [v.name, v.n])),
      upstream: {
        messages: upstream.messages,
        linked: upstream.linked,
        coverage: upstream.messages ? upstream.linked / upstream.messages : null,
        definition: UPSTREAM_DEFINITION,
      },
    },
    buckets,
  };
}
