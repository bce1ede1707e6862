// The publisher's production event source: mailbag's own events built from the store,
// a `message` event per recorded message's facts, and on maillog streams the `from=` line
// of each message then the `to=` lines of each delivery attempt.
import type { PodEventKind } from '../pod/ingest.js';
import type { MessageFacts } from '../pod/message-facts.js';
import type { PublisherEventSource, SourceBatch, SourcedEvent, SourceWindow } from '../pod/event-source.js';
import { fromLineEvent, messageEvent, toLineEvents, type PublisherIdentity } from '../pod/publish-events.js';
import type { Store } from '../store/store.js';
import type { AttemptFactsRow } from '../store/pod-publisher-store.js';

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

/**
 * How long a live stream holds back the to= lines of a message whose facts are not
 * recorded yet (one the accept path did not record: a bounce, a message accepted while the
 * publisher was off), waiting for the sweep; past it they go out without a from= first,
 * so one message whose facts cannot be read never stalls the stream.
 */
export const FACTS_WAIT_MS = 60_000;

export class StoreEventSource implements PublisherEventSource {
  constructor(
    private readonly store: Store,
    private readonly identity: PublisherIdentity,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Live: an attempt's to= lines wait for its message's from= line. Its facts must be
   * among those already sent (the facts and attempts are read in two statements, and a
   * batch's facts stop at `limit`), or, none recorded yet, the sweep may still record them.
   */
  private waitsForFacts(a: AttemptFactsRow, sentSeq: number): boolean {
    if (a.facts_seq !== null) return a.facts_seq > sentSeq;
    return a.message_kept === 1 && this.now() - (a.started_at + a.duration_ms) < FACTS_WAIT_MS;
  }

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
      // in order: nothing after a held attempt goes out before it
      if (!window && this.waitsForFacts(a, at.seq)) break;
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
