// Where the PoD publisher's events come from. In production the store (mailbag's own
// message facts and delivery attempts, `StoreEventSource` in src/gateway); in tests and
// benchmarks an in-memory list of arbitrary payloads (`MemoryEventSource`), so the real
// server (auth, 409, live/archive/resume, hour rounding, deflate) can play any upstream
// stream, malformed and oversize events included.
import type { PodEventKind } from './ingest.js';

/** One event as the publisher sends it: one WebSocket message. */
export interface SourcedEvent {
  /** Sent as it is: a string as a text frame, a Buffer as a binary frame. */
  payload: string | Buffer;
  /** Where a session stands once this event is delivered (opaque to the publisher; kept as the resume point). */
  cursor: string;
}

/** What `next` returns: the events, and where a session stands after all of them. */
export interface SourceBatch {
  events: SourcedEvent[];
  /** Equal to the cursor passed in when there was nothing more. */
  cursor: string;
}

/** An archive window, [fromMs, toMs), already rounded to whole hours by the publisher. */
export interface SourceWindow {
  fromMs: number;
  toMs: number;
}

export interface PublisherEventSource {
  /**
   * Where a live session starts: after every event so far, or with `beforeMs`, after the
   * events from before that instant (a session back after more than an hour starts an
   * hour back).
   */
  head(type: PodEventKind, beforeMs?: number): string;
  /**
   * The next events after `cursor` (`undefined`: from the very start; an archive window
   * passes that), at most about `limit` of them, in order; with `window`, only events in it.
   * A batch whose cursor is the one passed in means nothing more yet (live sessions ask
   * again later; archive sessions end). A batch may move the cursor without events (a
   * source may skip records that make none).
   */
  next(type: PodEventKind, cursor: string | undefined, limit: number, window?: SourceWindow): SourceBatch | Promise<SourceBatch>;
  /** Whether `cursor` is one of this source's (a resume point saved by another version or source is not). */
  isCursor(cursor: string): boolean;
  /**
   * Optional: calls `listener` whenever events are added, so that live sessions send them at
   * once rather than at their next poll. Returns the function that stops the calls.
   */
  watch?(listener: () => void): () => void;
}

/** One entry of a `MemoryEventSource`: its type, the instant archive windows select it by, the payload. */
export interface MemoryEntry {
  type: PodEventKind;
  tsMs: number;
  /** Any bytes: a valid event, broken JSON, an oversize one. A Buffer goes out as a binary frame. */
  payload: string | Buffer;
}

/**
 * Events held in memory, in the order they were appended (not sorted by time, as a real
 * log may receive late events). A cursor is the number of entries of the type already
 * sent; `head(type, beforeMs)` is after the last entry older than `beforeMs`, so a late
 * entry appended after it is still sent, like the store's source does.
 */
export class MemoryEventSource implements PublisherEventSource {
  private readonly entries: Record<PodEventKind, MemoryEntry[]> = { message: [], maillog: [] };
  private readonly listeners = new Set<() => void>();

  /** Appends entries; live sessions are told at once (`watch`). */
  append(...entries: MemoryEntry[]): void {
    for (const e of entries) this.entries[e.type].push(e);
    if (entries.length) for (const listener of [...this.listeners]) listener();
  }

  watch(listener: () => void): () => void {
    const own = () => listener();
    this.listeners.add(own);
    return () => this.listeners.delete(own);
  }

  count(type: PodEventKind): number {
    return this.entries[type].length;
  }

  head(type: PodEventKind, beforeMs?: number): string {
    const list = this.entries[type];
    if (beforeMs === undefined) return String(list.length);
    let n = 0;
    for (let i = 0; i < list.length; i++) if (list[i]!.tsMs < beforeMs) n = i + 1;
    return String(n);
  }

  next(type: PodEventKind, cursor: string | undefined, limit: number, window?: SourceWindow): SourceBatch {
    const list = this.entries[type];
    const events: SourcedEvent[] = [];
    let i = cursor === undefined ? 0 : Number(cursor);
    for (; i < list.length && events.length < limit; i++) {
      const e = list[i]!;
      if (window && (e.tsMs < window.fromMs || e.tsMs >= window.toMs)) continue;
      events.push({ payload: e.payload, cursor: String(i + 1) });
    }
    return { events, cursor: String(i) };
  }

  isCursor(cursor: string): boolean {
    return /^(0|[1-9]\d*)$/.test(cursor);
  }
}
