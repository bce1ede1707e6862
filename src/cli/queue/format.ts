import type { AttemptRow, MessageRow, QueueSummary, RecipientRow } from '../../store/queue-store.js';

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');
const sender = (s: string) => (s === '' ? '<>' : s);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export function formatList(rows: QueueSummary[]): string {
  if (rows.length === 0) return 'queue is empty\n';
  const lines = [['QID', 'RECEIVED', 'SIZE', 'PENDING', 'DONE', 'FAILED', 'NEXT ATTEMPT', 'FROM']];
  for (const r of rows) {
    const next = r.hold_reason ? 'HELD' : iso(r.next_attempt_at);
    lines.push([r.qid, iso(r.received_at), String(r.size), String(r.pending), String(r.delivered), String(r.failed), next, sender(r.envelope_from)]);
  }
  const held = rows.filter((r) => r.hold_reason);
  const holds = held.map((r) => `held ${r.qid}: ${r.hold_reason}\n`).join('');
  return table(lines) + holds + `${rows.length} message(s) in the queue${held.length ? `, ${held.length} held` : ''}\n`;
}

/** Recipients with a live lease: an attempt for them is running (or its result is not yet recorded). */
function inFlight(rcpts: RecipientRow[], now: number): RecipientRow[] {
  return rcpts.filter((r) => r.inflight_until !== null && r.inflight_until >= now);
}

export function formatShow(m: MessageRow, rcpts: RecipientRow[], attempts: AttemptRow[], now = Date.now()): string {
  const leased = inFlight(rcpts, now);
  const until = Math.max(0, ...leased.map((r) => r.inflight_until ?? 0));
  const out = [
    `qid:       ${m.qid}`,
    `state:     ${m.state}${m.hold_reason ? ` (held since ${iso(m.held_at)}: ${m.hold_reason})` : ''}`,
    `received:  ${iso(m.received_at)}`,
    `from:      ${sender(m.envelope_from)}`,
    `size:      ${m.size}`,
    `client:    ${m.client_address ?? '-'}${m.helo ? ` (helo ${m.helo})` : ''}${m.auth_user ? ` (auth ${m.auth_user})` : ''}`,
    `spool:     ${m.spool_path}`,
    `attempt:   ${leased.length ? `in flight for ${leased.length} recipient(s), lease until ${iso(until)}` : 'none in flight'}`,
    '',
    'recipients:',
  ];
  for (const r of rcpts) {
    const open = r.state === 'queued' || r.state === 'deferred';
    const next = open ? (m.hold_reason ? '  held' : `  next ${iso(r.next_attempt_at)}`) : '';
    const flight = leased.includes(r) ? `  in flight until ${iso(r.inflight_until)}` : '';
    out.push(`  ${r.rcpt}  ${r.state}  attempts ${r.attempts}${next}${flight}${r.last_reply ? `  last: ${r.last_reply}` : ''}`);
  }
  out.push('', 'attempts:');
  if (attempts.length === 0) out.push('  none yet');
  for (const a of attempts) out.push(`  ${iso(a.started_at)}  ${a.nexthop}  ${a.outcome}  ${a.duration_ms} ms  ${a.reply ?? ''}`);
  return out.join('\n') + '\n';
}
