// The publisher's production event source: mailbag's own events built from the store,
// a `message` event per recorded message's facts, and on maillog streams the `from=` line
// of each message then the `to=` lines of each delivery attempt.
import type { PodEventKind } from '../pod/ingest.js';
import type { MessageFacts } from '../pod/message-facts.js';
import type { PublisherEventSource, SourceBatch, SourcedEvent, SourceWindow } from '../pod/event-source.js';
import { fromLineEvent, messageEvent, toLineEvents, type PublisherIdentity } from '../pod/publish-events.js';
import type { Store } from '../store/store.js';

/** Facts seq and attempt id already sent. Its JSON is the cursor (and the resume points already in stores). */
interface StoreCursor {
  seq: number;
  attempt: number;
}

function parseCursor(text: string): StoreCursor | undefined {
  try {
    const v = JSON.parse(text) as Partial<StoreCursor>;
    if (typeof v.seq === 'number' && typeof v.attempt === 'number') return { seq: v.seq, attempt: v.attempt };
  } catch {
    // not one of ours
  }
  return undefined;
}

const cursorText = (c: StoreCursor): string => JSON.stringify({ seq: c.seq, attempt: c.attempt });

export class StoreEventSource implements PublisherEventSource {
  constructor(
    private readonly store: Store,
    private readonly identity: PublisherIdentity,
  ) {}

  head(_type: PodEventKind, beforeMs?: number): string {
    const p = this.store.podPublisher;
    return cursorText(beforeMs === undefined ? p.heads() : p.headsBefore(beforeMs));
  }

  isCursor(cursor: string): boolean {
    return parseCursor(cursor) !== undefined;
  }

  next(type: PodEventKind, cursor: string | undefined, limit: number, window?: SourceWindow): SourceBatch {
    const p = this.store.podPublisher;
    let at: StoreCursor = (cursor === undefined ? undefined : parseCursor(cursor)) ?? { seq: 0, attempt: 0 };
    const out: SourcedEvent[] = [];
    const facts = window ? p.factsInWindow(window.fromMs, window.toMs, at.seq, limit) : p.factsAfter(at.seq, limit);
    for (const row of facts) {
      const f = JSON.parse(row.facts) as MessageFacts;
      at = { ...at, seq: row.seq };
      const ev = type === 'message' ? messageEvent(f, row.recorded_at, this.identity) : fromLineEvent(f, this.identity);
      out.push({ payload: JSON.stringify(ev), cursor: cursorText(at) });
    }
    if (type === 'message') return { events: out, cursor: cursorText(at) };
    const attempts = window ? p.attemptsInWindow(window.fromMs, window.toMs, at.attempt, limit) : p.attemptsAfter(at.attempt, limit);
    for (const a of attempts) {
      const f = a.facts ? (JSON.parse(a.facts) as MessageFacts) : undefined;
      const recipients = (JSON.parse(a.recipients) as Array<{ rcpt: string; state: string; reply?: string }>).map((r) => ({
        rcpt: r.rcpt,
        state: r.state,
        reply: r.reply ?? a.reply ?? '',
      }));
      const lines = toLineEvents({ id: a.id, qid: a.qid, nexthop: a.nexthop, startedAt: a.started_at, durationMs: a.duration_ms, recipients }, f, this.identity);
      // An attempt counts as sent once all its lines are: a resume sends a half-sent one again.
      const before = cursorText(at);
      at = { ...at, attempt: a.id };
      lines.forEach((ev, i) => out.push({ payload: JSON.stringify(ev), cursor: i === lines.length - 1 ? cursorText(at) : before }));
    }
    return { events: out, cursor: cursorText(at) };
  }
}
