// `mailbag trace`: from one key to the connected messages on both sides of the hop, and
// their timeline. Reads only, through the store's accessors (a WAL reader beside a running
// gateway).
import { normaliseMessageId } from '../../store/correlation-keys.js';
import type { LinkVia, MessageKeysRow, MessageOriginRow, UpstreamLinkRow } from '../../store/correlation-store.js';
import type { StoredPodMaillogEvent, StoredPodMessageEvent } from '../../store/pod-store.js';
import type { MessageRow } from '../../store/queue-store.js';
import type { Store } from '../../store/store.js';
import { maillogEntry, mailbagEntries, verdictEntry, type TraceEntry } from './entries.js';

export type KeyKind = 'qid' | 'upstream' | 'message-id' | 'guid';
export const KEY_KINDS: readonly KeyKind[] = ['qid', 'upstream', 'message-id', 'guid'];

/** One connected set of messages: mailbag qids, upstream queue ids, and what links them. */
export interface TraceMatch {
  mailbagQids: string[];
  upstreamQids: string[];
  links: { upstreamQid: string; qid: string; via: LinkVia }[];
  origins: { qid: string; originQid: string; kind: string }[];
  timeline: TraceEntry[];
  /** Present (true) when the set had more than MAX_NODES members and only the first are shown. */
  truncated?: true;
}

export interface TraceResult {
  key: string;
  by: KeyKind;
  matches: TraceMatch[];
}

interface Seeds {
  qids: string[];
  upstreams: string[];
  /** The seeds are one message (a qid and its hand-over lines): one connected set. */
  together?: boolean;
}

const MAILBAG_QID = /^[0-9A-Z]{13}$/;
/** A connected set larger than this is cut (a Message-ID reused thousands of times). */
const MAX_NODES = 500;

/**
 * The rows one trace reads, each read once: finding the seeds, following the links and
 * building the timeline ask for the same messages, links, origins and events, and every
 * statement run and every row object made is work on the lookup's path (trace's p99 target
 * is 2 ms).
 */
class TraceReads {
  private readonly memo = new Map<string, unknown>();

  constructor(readonly store: Store) {}

  private once<T>(key: string, read: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, read());
    return this.memo.get(key) as T;
  }

  message(qid: string): MessageRow | undefined {
    return this.once(`message ${qid}`, () => this.store.queue.message(qid));
  }

  keys(qid: string): MessageKeysRow | undefined {
    return this.once(`keys ${qid}`, () => this.store.correlation.keys(qid));
  }

  linksOfQid(qid: string): UpstreamLinkRow[] {
    return this.once(`links of qid ${qid}`, () => this.store.correlation.linksOfQid(qid));
  }

  linksOfUpstream(upstreamQid: string): UpstreamLinkRow[] {
    return this.once(`links of upstream ${upstreamQid}`, () => this.store.correlation.linksOfUpstream(upstreamQid));
  }

  origin(qid: string): MessageOriginRow | undefined {
    return this.once(`origin ${qid}`, () => this.store.correlation.origin(qid));
  }

  derived(qid: string): MessageOriginRow[] {
    return this.once(`derived ${qid}`, () => this.store.correlation.derived(qid));
  }

  messageEvents(upstreamQid: string): StoredPodMessageEvent[] {
    return this.once(`message events ${upstreamQid}`, () => this.store.pod.messageEventsByQid(upstreamQid));
  }

  maillogEvents(upstreamQid: string): StoredPodMaillogEvent[] {
    return this.once(`maillog events ${upstreamQid}`, () => this.store.pod.maillogEventsByQid(upstreamQid));
  }
}

function seedsFor(reads: TraceReads, key: string, kind: KeyKind): Seeds {
  const { store } = reads;
  const c = store.correlation;
  switch (kind) {
    case 'qid': {
      // derived: the qid of another mailbag that forwarded a message here over IMP
      if (!MAILBAG_QID.test(key)) return { qids: [], upstreams: [] };
      const known = reads.message(key) !== undefined || reads.keys(key) !== undefined || store.queue.attempts(key).length > 0 || reads.derived(key).length > 0;
      // The upstream maillog lines handing the message over (`queued as QID`) are its
      // upstream side even where no link says so: before its keys are recorded (at its first
      // attempt round) and after retention removed the message with its keys and links.
      return { qids: known ? [key] : [], upstreams: c.upstreamQidsQueuedAs(key), together: true };
    }
    case 'upstream': {
      const stored = reads.messageEvents(key).length > 0 || reads.maillogEvents(key).length > 0;
      return { qids: c.keysByUpstreamQid(key).map((k) => k.qid), upstreams: stored ? [key] : [] };
    }
    case 'message-id': {
      const mid = normaliseMessageId(key);
      if (mid === undefined) return { qids: [], upstreams: [] };
      return { qids: c.keysByMessageId(mid).map((k) => k.qid), upstreams: store.pod.upstreamQidsByMessageId(mid) };
    }
    case 'guid':
      return { qids: c.keysByGuid(key).map((k) => k.qid), upstreams: c.upstreamQidsByGuid(key) };
  }
}

/** The kind a key is: a Message-ID has an `@` or angle brackets; else the first kind that finds something. */
function detectKind(reads: TraceReads, key: string): { kind: KeyKind; seeds: Seeds } | undefined {
  const order: KeyKind[] = /[@<>]/.test(key) ? ['message-id'] : ['qid', 'upstream', 'guid', 'message-id'];
  for (const kind of order) {
    const seeds = seedsFor(reads, key, kind);
    if (seeds.qids.length || seeds.upstreams.length) return { kind, seeds };
  }
  return undefined;
}

/** Everything reachable from the seeds through links and origins (bounces, forwards). */
function closure(reads: TraceReads, starts: { qid?: string; upstream?: string }[]): { qids: Set<string>; upstreams: Set<string>; truncated: boolean } {
  const qids = new Set<string>();
  const upstreams = new Set<string>();
  const todo: { qid?: string; upstream?: string }[] = [...starts].reverse();
  while (todo.length && qids.size + upstreams.size < MAX_NODES) {
    const n = todo.pop()!;
    if (n.qid !== undefined) {
      if (qids.has(n.qid)) continue;
      qids.add(n.qid);
      for (const l of reads.linksOfQid(n.qid)) todo.push({ upstream: l.upstream_qid });
      const origin = reads.origin(n.qid);
      if (origin) todo.push({ qid: origin.origin_qid });
      for (const d of reads.derived(n.qid)) todo.push({ qid: d.qid });
    } else if (n.upstream !== undefined) {
      if (upstreams.has(n.upstream)) continue;
      upstreams.add(n.upstream);
      for (const l of reads.linksOfUpstream(n.upstream)) todo.push({ qid: l.qid });
    }
  }
  // cut at MAX_NODES: said so in the match, never left out silently
  const truncated = todo.some((n) => (n.qid !== undefined ? !qids.has(n.qid) : !upstreams.has(n.upstream!)));
  return { qids, upstreams, truncated };
}

function buildMatch(reads: TraceReads, qids: Set<string>, upstreams: Set<string>, truncated: boolean): TraceMatch {
  const links: TraceMatch['links'] = [];
  const origins: TraceMatch['origins'] = [];
  const timeline: TraceEntry[] = [];
  // sorted, so entries at the same instant keep one order (qids grow with time: an original before its bounce)
  for (const u of [...upstreams].sort()) {
    for (const l of reads.linksOfUpstream(u)) if (qids.has(l.qid)) links.push({ upstreamQid: u, qid: l.qid, via: l.via });
    for (const e of reads.messageEvents(u)) timeline.push(verdictEntry(e));
    for (const e of reads.maillogEvents(u)) timeline.push(maillogEntry(e));
  }
  for (const q of [...qids].sort()) {
    const origin = reads.origin(q);
    if (origin) origins.push({ qid: q, originQid: origin.origin_qid, kind: origin.kind });
    timeline.push(...mailbagEntries(reads.store, q, origin, reads.message(q), reads.keys(q)));
  }
  // oldest first; same instant: upstream before mailbag, then as collected
  const order = new Map(timeline.map((e, i) => [e, i]));
  timeline.sort((a, b) => a.atUs - b.atUs || (a.hop === b.hop ? 0 : a.hop === 'upstream' ? -1 : 1) || order.get(a)! - order.get(b)!);
  return { mailbagQids: [...qids].sort(), upstreamQids: [...upstreams].sort(), links, origins, timeline, ...(truncated ? { truncated: true as const } : {}) };
}

/**
 * Every connected set the key reaches, newest first (by its first event). Undefined
 * `by`: the key's kind is detected.
 */
export function trace(store: Store, key: string, by?: KeyKind): TraceResult | undefined {
  const reads = new TraceReads(store);
  let kind: KeyKind;
  let seeds: Seeds;
  if (by) {
    kind = by;
    seeds = seedsFor(reads, key, by);
    if (!seeds.qids.length && !seeds.upstreams.length) return undefined;
  } else {
    const found = detectKind(reads, key);
    if (!found) return undefined;
    ({ kind, seeds } = found);
  }
  const matches: TraceMatch[] = [];
  const seen = new Set<string>();
  const starts: { qid?: string; upstream?: string }[] = [...seeds.qids.map((qid) => ({ qid })), ...seeds.upstreams.map((upstream) => ({ upstream }))];
  for (const s of seeds.together ? [starts] : starts.map((one) => [one])) {
    if (s.every((one) => seen.has(one.qid !== undefined ? `q:${one.qid}` : `u:${one.upstream}`))) continue;
    const c = closure(reads, s);
    for (const q of c.qids) seen.add(`q:${q}`);
    for (const u of c.upstreams) seen.add(`u:${u}`);
    matches.push(buildMatch(reads, c.qids, c.upstreams, c.truncated));
  }
  const first = (m: TraceMatch) => m.timeline[0]?.atUs ?? 0;
  matches.sort((a, b) => first(b) - first(a));
  return { key, by: kind, matches };
}
