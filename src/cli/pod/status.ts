import type { PodStreamConfig } from '../../config/schema.js';
import type { PodStreamStatus } from '../../store/pod-stream-store.js';
import { oneLine } from '../one-line.js';

/** One stream as `mailbag pod status --json` prints it. */
export interface StreamStatusView {
  stream: string;
  type: string;
  /** `never ran` when the store has no status for a configured stream. */
  state: string;
  stateSince: string | null;
  detail: string | null;
  lastEventTs: string | null;
  /** Seconds from the newest event's ts to now. */
  lastEventAgeSeconds: number | null;
  received: number;
  stored: number;
  duplicates: number;
  deadLettered: number;
  lastError: string | null;
  lastErrorAt: string | null;
  /** False for a stream the store knows but the config no longer lists. */
  configured: boolean;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Configured streams first (in config order), then streams only the store remembers. */
export function streamStatusViews(streams: readonly PodStreamConfig[], rows: readonly PodStreamStatus[], nowMs: number): StreamStatusView[] {
  const byName = new Map(rows.map((r) => [r.stream, r]));
  const view = (name: string, type: string, r: PodStreamStatus | undefined, configured: boolean): StreamStatusView => {
    const tsMs = r?.lastEventTs ? Date.parse(r.lastEventTs) : Number.NaN;
    return {
      stream: name,
      type,
      state: r?.state ?? 'never ran',
      stateSince: iso(r?.stateSince ?? null),
      detail: r?.detail ?? null,
      lastEventTs: r?.lastEventTs ?? null,
      lastEventAgeSeconds: Number.isNaN(tsMs) ? null : Math.max(0, Math.round((nowMs - tsMs) / 1000)),
      received: r?.received ?? 0,
      stored: r?.stored ?? 0,
      duplicates: r?.duplicates ?? 0,
      deadLettered: r?.deadLettered ?? 0,
      lastError: r?.lastError ?? null,
      lastErrorAt: iso(r?.lastErrorAt ?? null),
      configured,
    };
  };
  const out = streams.map((s) => view(s.name, s.type, byName.get(s.name), true));
  for (const r of rows) if (!streams.some((s) => s.name === r.stream)) out.push(view(r.stream, r.type, r, false));
  return out;
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** A few lines per stream: state, newest event and its age, counters, last error. */
export function formatStreamStatus(views: readonly StreamStatusView[]): string {
  if (!views.length) return 'no PoD streams configured (pod.streams)\n';
  return views
    .map((v) => {
      const lines = [
        `${v.stream} (${v.type})${v.configured ? '' : ' [no longer configured]'}: ${v.state}${v.stateSince ? ` since ${v.stateSince}` : ''}${v.detail ? ` - ${oneLine(v.detail)}` : ''}`,
        `  last event: ${v.lastEventTs === null ? 'none' : `${v.lastEventTs} (${age(v.lastEventAgeSeconds ?? 0)} ago)`}`,
        `  received ${v.received}, stored ${v.stored}, duplicates ${v.duplicates}, dead-lettered ${v.deadLettered}`,
      ];
      if (v.lastError !== null) lines.push(`  last error: ${oneLine(v.lastError)}${v.lastErrorAt ? ` (at ${v.lastErrorAt})` : ''}`);
      return lines.join('\n') + '\n';
    })
    .join('');
}
