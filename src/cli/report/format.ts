import { oneLine } from '../one-line.js';
import type { Report, ReportBucket } from './build.js';

/** `1234 ms`, `12.3 s`, `4.5 min`, `2.0 h`: a latency an operator reads at a glance. */
export function formatMs(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function percent(share: number | null): string {
  return share === null ? 'n/a (no messages in the window)' : `${(share * 100).toFixed(1)}%`;
}

function table(headers: string[], rows: (string | number)[][]): string[] {
  // Rule names, dispositions and language tags come from mail and upstream events: their
  // control characters are shown escaped, never sent to the terminal.
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'string' ? oneLine(c) : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  // Numbers right-aligned, text left-aligned, two spaces between columns.
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells.map((r) => '  ' + r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** A table, or nothing when there are no rows (the section then says why it is empty). */
function rowsTable(headers: string[], rows: (string | number)[][]): string[] {
  return rows.length ? table(headers, rows) : [];
}

/** A note in parentheses, wrapped at 80 columns with a two-space indent. */
function note(text: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of `(${text})`.split(' ')) {
    if (line && line.length + 1 + word.length > 78) {
      lines.push(`  ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, `  ${line}`];
}

function section(title: string, lines: string[], empty: string): string[] {
  return ['', title, ...(lines.length ? lines : [`  ${empty}`])];
}

/** The report as text for a terminal (80 columns for everything but long next-hop names). */
export function formatTable(r: Report): string {
  const m = r.messages;
  const out = [
    `mailbag report ${r.window.since} .. ${r.window.until} (by ${r.window.by})`,
    '',
    'messages',
    ...table(['received', 'delivered', 'deferred', 'bounced'], [[m.received, m.delivered, m.deferred, m.bounced]]),
    ...section(
      r.latencyPercentiles === 'histogram'
        ? 'delivery latency, receipt to delivery, per next hop (percentiles within 2.2%)'
        : 'delivery latency, receipt to delivery, per next hop',
      rowsTable(
        ['next hop', 'delivered', 'p50', 'p90', 'p99'],
        r.latency.map((h) => [h.nexthop || '(none)', h.delivered, formatMs(h.p50Ms), formatMs(h.p90Ms), formatMs(h.p99Ms)]),
      ),
      'no deliveries in the window',
    ),
    ...section(
      'languages selected (multilingual)',
      r.languages.byMode.length
        ? [
            ...rowsTable(['language', 'recipients'], r.languages.selected.map((l) => [l.tags || '(untagged part)', l.n])),
            `  decisions by mode: ${oneLine(r.languages.byMode.map((b) => `${b.mode} ${b.n}`).join(', '))}`,
          ]
        : [],
      'no language decisions in the window',
    ),
    '',
    'IMP traffic',
    ...table(['forwarded', 'accepted'], [[r.imp.forwarded, r.imp.accepted]]),
    ...note(r.imp.note),
    '',
    'PoD events',
    ...table(['message', 'maillog', 'dead-lettered'], [[r.pod.message, r.pod.maillog, r.pod.deadLettered]]),
    ...section(
      'upstream dispositions',
      rowsTable(['disposition', 'messages'], r.pod.dispositions.map((d) => [d.disposition || '(none)', d.n])),
      'no PoD message events in the window',
    ),
    ...section(
      'top triggered upstream rules',
      rowsTable(['module', 'rule', 'times'], r.pod.topRules.map((x) => [x.module || '(none)', x.rule, x.n])),
      'no rules in the window',
    ),
    '',
    'correlation',
    `  ${r.correlation.linked} of ${r.correlation.messages} messages linked: ${percent(r.correlation.coverage)}` +
      (Object.keys(r.correlation.byVia).length ? ` (by ${Object.entries(r.correlation.byVia).map(([via, n]) => `${via} ${n}`).join(', ')})` : ''),
    ...note(r.correlation.definition),
    `  ${r.correlation.upstream.linked} of ${r.correlation.upstream.messages} upstream messages handed to mailbag found: ${percent(r.correlation.upstream.coverage)}`,
    ...note(r.correlation.upstream.definition),
    '',
    `by ${r.window.by}: messages received; recipients delivered, deferred, bounced; PoD events`,
    ...table(
      ['start (UTC)', 'recv', 'deliv', 'defer', 'bounce', 'pod msg', 'maillog', 'dead'],
      r.buckets.map((b) => [b.start.slice(0, r.window.by === 'hour' ? 16 : 10).replace('T', ' '), b.received, b.delivered, b.deferred, b.bounced, b.podMessage, b.podMaillog, b.podDeadLettered]),
    ),
  ];
  return out.join('\n') + '\n';
}

export const CSV_COLUMNS: readonly (keyof ReportBucket)[] = ['start', 'received', 'delivered', 'deferred', 'bounced', 'podMessage', 'podMaillog', 'podDeadLettered'];

/** RFC 4180: one header row, one row per bucket, CRLF line ends. Every value is a time or a count, so none needs quoting. */
export function formatCsv(r: Report): string {
  const lines = [CSV_COLUMNS.join(','), ...r.buckets.map((b) => CSV_COLUMNS.map((c) => String(b[c])).join(','))];
  return lines.join('\r\n') + '\r\n';
}

/** The stable interface for scripts: the Report object as it is (see docs/report.md). */
export function formatJson(r: Report): string {
  return JSON.stringify(r, null, 2) + '\n';
}
