import type { SqliteDatabase } from './db.js';

/**
 * What the PoD consumer records about its streams (migration 11): each stream's state and
 * counters for `mailbag pod status` (written by the gateway, read by the CLI in another
 * process), and archive gaps still to fill, so a gap found before a restart is still
 * filled after it even though the live session has moved the checkpoint past it.
 */

export type PodStreamState = 'connecting' | 'live' | 'backfilling' | 'backoff' | 'conflict' | 'stopped';

export interface PodStreamStatus {
  stream: string;
  type: string;
  state: PodStreamState;
  stateSince: number;
  /** Why the stream is in this state (a stop's reason, what a backoff waits for). */
  detail: string | null;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Counters since the gateway started. */
  received: number;
  stored: number;
  duplicates: number;
  deadLettered: number;
  /** `ts` of the newest event received (as the agent wrote it). */
  lastEventTs: string | null;
  /** When the newest event was received (ms since the epoch). */
  lastEventAt: number | null;
  startedAt: number;
  updatedAt: number;
}

export interface PodGap {
  id: number;
  stream: string;
  sinceMs: number;
  untilMs: number;
  createdAt: number;
}

export class PodStreamStore {
  private readonly s;

  constructor(readonly db: SqliteDatabase) {
    this.s = {
      save: db.prepare(`INSERT INTO pod_stream_status (stream, type, state, state_since, detail, last_error, last_error_at,
          received, stored, duplicates, dead_lettered, last_event_ts, last_event_at, started_at, updated_at)
        VALUES (@stream, @type, @state, @stateSince, @detail, @lastError, @lastErrorAt, @received, @stored, @duplicates,
          @deadLettered, @lastEventTs, @lastEventAt, @startedAt, @updatedAt)
        ON CONFLICT (stream) DO UPDATE SET type = excluded.type, state = excluded.state, state_since = excluded.state_since,
          detail = excluded.detail, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
          received = excluded.received, stored = excluded.stored, duplicates = excluded.duplicates,
          dead_lettered = excluded.dead_lettered, last_event_ts = excluded.last_event_ts, last_event_at = excluded.last_event_at,
          started_at = excluded.started_at, updated_at = excluded.updated_at`),
      all: db.prepare(`SELECT stream, type, state, state_since AS stateSince, detail, last_error AS lastError,
          last_error_at AS lastErrorAt, received, stored, duplicates, dead_lettered AS deadLettered,
          last_event_ts AS lastEventTs, last_event_at AS lastEventAt, started_at AS startedAt, updated_at AS updatedAt
        FROM pod_stream_status ORDER BY stream`),
      addGap: db.prepare('INSERT INTO pod_gaps (stream, since_ms, until_ms, created_at) VALUES (?, ?, ?, ?)'),
      gaps: db.prepare('SELECT id, stream, since_ms AS sinceMs, until_ms AS untilMs, created_at AS createdAt FROM pod_gaps WHERE stream = ? ORDER BY since_ms, id'),
      removeGap: db.prepare('DELETE FROM pod_gaps WHERE id = ?'),
      extendGap: db.prepare('UPDATE pod_gaps SET until_ms = ? WHERE id = ? AND until_ms < ?'),
    };
  }

  /** One short IMMEDIATE transaction (the status row is small and written after each batch). */
  saveStatus(status: PodStreamStatus): void {
    this.db.transaction(() => this.s.save.run(status)).immediate();
  }

  statuses(): PodStreamStatus[] {
    return this.s.all.all() as PodStreamStatus[];
  }

  addGap(stream: string, sinceMs: number, untilMs: number, now: number): PodGap {
    const id = this.db.transaction(() => Number(this.s.addGap.run(stream, sinceMs, untilMs, now).lastInsertRowid)).immediate();
    return { id, stream, sinceMs, untilMs, createdAt: now };
  }

  /** Oldest first. */
  gaps(stream: string): PodGap[] {
    return this.s.gaps.all(stream) as PodGap[];
  }

  /** Moves a gap's end later (never earlier). */
  extendGap(id: number, untilMs: number): void {
    this.db.transaction(() => this.s.extendGap.run(untilMs, id, untilMs)).immediate();
  }

  removeGap(id: number): void {
    this.db.transaction(() => this.s.removeGap.run(id)).immediate();
  }
}
