import type Database from 'better-sqlite3';
import type { SqliteDatabase } from './db.js';
import { latencyBucket } from './latency-buckets.js';
import { COUNTER_LATENCY_BINS_MS, MAILBAG_QID_GLOB } from './report-counters-sql.js';
import { RawReportCounts, type BucketCount, type FinishedCount, type LanguageCount, type NamedCount, type QidCoverage, type ReportWindow, type RuleCount } from './report-raw-store.js';

export type { BucketCount, FinishedCount, LanguageCount, NamedCount, QidCoverage, ReportWindow, RuleCount } from './report-raw-store.js';

const HOUR = 3_600_000;

/** Delivered recipients of one next hop: per histogram bin, and per fine log-scale bucket. */
export interface HopLatencyCounts {
  nexthop: string;
  delivered: number;
  /** Counts per bin of `COUNTER_LATENCY_BINS_MS` (the last bin is open). */
  bins: number[];
  /** Fine bucket (src/store/latency-buckets.ts) -> count, ascending. */
  buckets: [bucket: number, n: number][];
}

/**
 * A window as the counters see it: the whole UTC hours inside it come from the hourly
 * counters (`hours`), the partial hours at its edges from the rows (`edges`).
 */
interface SplitWindow {
  edges: ReportWindow[];
  hours: { from: number; to: number } | undefined;
}

function split(w: ReportWindow): SplitWindow {
  const from = Math.ceil(w.since / HOUR) * HOUR;
  const to = Math.floor(w.until / HOUR) * HOUR;
  if (from >= to) return { edges: [w], hours: undefined };
  const edges: ReportWindow[] = [];
  if (w.since < from) edges.push({ ...w, until: from });
  if (to < w.until) edges.push({ ...w, since: to });
  return { edges, hours: { from, to } };
}

/** SQLite's BINARY order (UTF-8 bytes), so merged lists sort as the row queries' ORDER BY. */
const utf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function mergeBuckets(lists: readonly BucketCount[][]): BucketCount[] {
  const byBucket = new Map<number, number>();
  for (const list of lists) for (const r of list) byBucket.set(r.bucket, (byBucket.get(r.bucket) ?? 0) + r.n);
  return [...byBucket].filter(([, n]) => n !== 0).sort((a, b) => a[0] - b[0]).map(([bucket, n]) => ({ bucket, n }));
}

/** Sums `n` of rows with the same key; drops keys that sum to 0. */
function mergeNamed<T extends { n: number }>(lists: readonly T[][], key: (row: T) => string): T[] {
  const byKey = new Map<string, T>();
  for (const list of lists) {
    for (const row of list) {
      const k = key(row);
      const seen = byKey.get(k);
      byKey.set(k, seen ? { ...seen, n: seen.n + row.n } : { ...row });
    }
  }
  return [...byKey.values()].filter((r) => r.n !== 0);
}

function latencyBin(ms: number): number {
  const i = COUNTER_LATENCY_BINS_MS.findIndex((edge) => ms < edge);
  return i === -1 ? COUNTER_LATENCY_BINS_MS.length : i;
}

/**
 * Read-only aggregates for `mailbag report` over [since, until) in ms, bucketed by `bucketMs`
 * (UTC hours or days): the same figures as `RawReportCounts`, read from the hourly counters
 * (migration 16) for the window's whole hours and from the rows for its partial edge hours,
 * so a 30-day window reads about 720 counter rows per figure whatever the traffic.
 */
export class ReportStore {
  readonly raw: RawReportCounts;
  private readonly s;

  constructor(readonly db: SqliteDatabase) {
    this.raw = new RawReportCounts(db);
    // Bound JS numbers are REALs in SQLite, so `hour / @bucketMs` would not truncate: CAST does.
    this.s = {
      perBucket: db.prepare(`SELECT CAST(hour / @bucketMs AS INTEGER) * @bucketMs AS bucket, SUM(n) AS n FROM report_hourly
        WHERE kind = @kind AND hour >= @from AND hour < @to GROUP BY bucket HAVING SUM(n) <> 0 ORDER BY bucket`),
      named: db.prepare(`SELECT name, detail, SUM(n) AS n FROM report_hourly
        WHERE kind = @kind AND hour >= @from AND hour < @to GROUP BY name, detail HAVING SUM(n) <> 0`),
      total: db.prepare('SELECT COALESCE(SUM(n), 0) AS n FROM report_hourly WHERE kind = @kind AND hour >= @from AND hour < @to').pluck(),
      // delivered recipients per bucket: the latency counters hold each one (migration 29); that
      // table has a column named bucket (the fine latency bucket), so the grouping is by position
      deliveredPerBucket: db.prepare(`SELECT CAST(hour / @bucketMs AS INTEGER) * @bucketMs AS bucket, SUM(n) AS n FROM report_latency_hourly
        WHERE hour >= @from AND hour < @to GROUP BY 1 HAVING SUM(n) <> 0 ORDER BY 1`),
      latency: db.prepare(`SELECT nexthop, bin, bucket, SUM(n) AS n FROM report_latency_hourly
        WHERE hour >= @from AND hour < @to GROUP BY nexthop, bin, bucket HAVING SUM(n) <> 0`),
      // Upstream qids handed to mailbag in an edge of the window whose hand-over lines all fall
      // in one hour (those spanning hours are counted by `upstreamSpanning`).
      upstreamEdge: db.prepare(`SELECT COUNT(*) AS messages, COALESCE(SUM(u.linked), 0) AS linked FROM (
          SELECT e.qid FROM pod_maillog_events AS e
          WHERE e.queued_as IS NOT NULL AND e.ts_us >= @since * 1000 AND e.ts_us < @until * 1000 AND e.queued_as GLOB '${MAILBAG_QID_GLOB}'
          GROUP BY e.qid) AS d
        JOIN report_upstream AS u ON u.upstream_qid = d.qid WHERE u.first_hour = u.last_hour`),
      // Upstream qids whose hand-over lines span hours (a few: deliveries to mailbag in
      // separate transactions hours apart), each checked against the window's rows.
      upstreamSpanning: db.prepare(`SELECT COUNT(*) AS messages, COALESCE(SUM(u.linked), 0) AS linked FROM report_upstream AS u
        WHERE u.first_hour < u.last_hour AND u.last_hour >= @sinceHour AND u.first_hour < @until
          AND EXISTS (SELECT 1 FROM pod_maillog_events AS e WHERE e.qid = u.upstream_qid AND e.queued_as IS NOT NULL
            AND e.ts_us >= @since * 1000 AND e.ts_us < @until * 1000 AND e.queued_as GLOB '${MAILBAG_QID_GLOB}')`),
    };
  }

  /**
   * A figure per bucket: counted from the rows (`raw`) in the window's partial edge hours, and
   * read from the counters in its whole hours, by the `perBucket` query of `report_hourly` for
   * `kind`, or by `fromCounters` where the figure lives in another counter table.
   */
  private counted(w: ReportWindow, kind: string, raw: (edge: ReportWindow) => BucketCount[], fromCounters?: Database.Statement): BucketCount[] {
    const { edges, hours } = split(w);
    const lists = edges.map(raw);
    if (hours) lists.push((fromCounters ? fromCounters.all({ bucketMs: w.bucketMs, ...hours }) : this.s.perBucket.all({ kind, bucketMs: w.bucketMs, ...hours })) as BucketCount[]);
    return mergeBuckets(lists);
  }

  private total(kind: string, hours: SplitWindow['hours']): number {
    return hours ? (this.s.total.get({ kind, ...hours }) as number) : 0;
  }

  private namedCounts(kind: string, hours: SplitWindow['hours']): { name: string; detail: string; n: number }[] {
    return hours ? (this.s.named.all({ kind, ...hours }) as { name: string; detail: string; n: number }[]) : [];
  }

  /** Messages accepted over IMP received in the window (rows: IMP traffic is a small part). */
  impAccepted(w: ReportWindow): number {
    return this.raw.impAccepted(w);
  }

  received(w: ReportWindow): BucketCount[] {
    return this.counted(w, 'received', (e) => this.raw.received(e));
  }

  finished(w: ReportWindow): FinishedCount[] {
    const ofState = (state: 'delivered' | 'failed') =>
      this.counted(w, state, (e) => this.raw.finished(e).filter((f) => f.state === state), state === 'delivered' ? this.s.deliveredPerBucket : undefined).map((b) => ({ ...b, state }));
    return [...ofState('delivered'), ...ofState('failed')].sort((a, b) => a.bucket - b.bucket || (a.state < b.state ? -1 : 1));
  }

  deferred(w: ReportWindow): BucketCount[] {
    return this.counted(w, 'deferred', (e) => this.raw.deferred(e));
  }

  /** Each recipient delivered in the window, from the rows (the report's exact percentiles). */
  deliveryLatencies(w: ReportWindow): Generator<[nexthop: string, ms: number]> {
    return this.raw.deliveryLatencies(w);
  }

  /** Delivered recipients per next hop, by histogram bin and fine bucket, ascending by next hop. */
  latencyCounts(w: ReportWindow): HopLatencyCounts[] {
    const { edges, hours } = split(w);
    const byHop = new Map<string, { bins: number[]; buckets: Map<number, number> }>();
    const add = (nexthop: string, bin: number, bucket: number, n: number) => {
      let hop = byHop.get(nexthop);
      if (!hop) byHop.set(nexthop, (hop = { bins: new Array<number>(COUNTER_LATENCY_BINS_MS.length + 1).fill(0), buckets: new Map() }));
      hop.bins[bin]! += n;
      hop.buckets.set(bucket, (hop.buckets.get(bucket) ?? 0) + n);
    };
    for (const edge of edges) {
      for (const [nexthop, ms] of this.raw.deliveryLatencies(edge)) {
        const clamped = Math.max(0, ms);
        add(nexthop, latencyBin(clamped), latencyBucket(clamped), 1);
      }
    }
    if (hours) {
      for (const r of this.s.latency.iterate(hours) as Iterable<{ nexthop: string; bin: number; bucket: number; n: number }>) add(r.nexthop, r.bin, r.bucket, r.n);
    }
    return [...byHop.keys()]
      .sort()
      .map((nexthop) => {
        const hop = byHop.get(nexthop)!;
        const buckets = [...hop.buckets].filter(([, n]) => n !== 0).sort((a, b) => a[0] - b[0]);
        return { nexthop, delivered: hop.bins.reduce((a, n) => a + n, 0), bins: hop.bins, buckets };
      })
      .filter((h) => h.delivered !== 0);
  }

  languages(w: ReportWindow): LanguageCount[] {
    const { edges, hours } = split(w);
    const lists = edges.map((e) => this.raw.languages(e));
    lists.push(this.namedCounts('language', hours).map((r) => ({ mode: r.name, tags: r.detail, n: r.n })));
    return mergeNamed(lists, (r) => `${r.mode}\0${r.tags}`).sort((a, b) => b.n - a.n || utf8(a.mode, b.mode) || utf8(a.tags, b.tags));
  }

  podMessages(w: ReportWindow): BucketCount[] {
    return this.counted(w, 'pod_message', (e) => this.raw.podMessages(e));
  }

  podMaillog(w: ReportWindow): BucketCount[] {
    return this.counted(w, 'pod_maillog', (e) => this.raw.podMaillog(e));
  }

  /** Dead letters are few (malformed payloads): counted from the rows. */
  podDeadLetters(w: ReportWindow): BucketCount[] {
    return this.raw.podDeadLetters(w);
  }

  dispositions(w: ReportWindow): NamedCount[] {
    const { edges, hours } = split(w);
    const lists = edges.map((e) => this.raw.dispositions(e));
    lists.push(this.namedCounts('disposition', hours).map((r) => ({ name: r.name, n: r.n })));
    return mergeNamed(lists, (r) => r.name).sort((a, b) => b.n - a.n || utf8(a.name, b.name));
  }

  topRules(w: ReportWindow, limit: number): RuleCount[] {
    const { edges, hours } = split(w);
    const lists = edges.map((e) => this.raw.topRules(e, -1));
    lists.push(this.namedCounts('rule', hours).map((r) => ({ module: r.name, rule: r.detail, n: r.n })));
    const sorted = mergeNamed(lists, (r) => `${r.module}\0${r.rule}`).sort((a, b) => b.n - a.n || utf8(a.module, b.module) || utf8(a.rule, b.rule));
    return limit < 0 ? sorted : sorted.slice(0, limit);
  }

  linkCoverage(w: ReportWindow): QidCoverage {
    const { edges, hours } = split(w);
    let messages = this.total('received', hours) - this.total('origin', hours);
    let linked = this.total('linked', hours);
    for (const e of edges) {
      const c = this.raw.linkCoverage(e);
      messages += c.messages;
      linked += c.linked;
    }
    return { messages, linked };
  }

  linksByVia(w: ReportWindow): NamedCount[] {
    const { edges, hours } = split(w);
    const lists = edges.map((e) => this.raw.linksByVia(e));
    lists.push(this.namedCounts('via', hours).map((r) => ({ name: r.name, n: r.n })));
    return mergeNamed(lists, (r) => r.name).sort((a, b) => utf8(a.name, b.name));
  }

  upstreamCoverage(w: ReportWindow): QidCoverage {
    const { edges, hours } = split(w);
    let messages = this.total('upstream', hours);
    let linked = this.total('upstream_linked', hours);
    for (const e of edges) {
      const c = this.s.upstreamEdge.get({ since: e.since, until: e.until }) as QidCoverage;
      messages += c.messages;
      linked += c.linked;
    }
    const spanning = this.s.upstreamSpanning.get({ since: w.since, until: w.until, sinceHour: Math.floor(w.since / HOUR) * HOUR }) as QidCoverage;
    return { messages: messages + spanning.messages, linked: linked + spanning.linked };
  }
}
