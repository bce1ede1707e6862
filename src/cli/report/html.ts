import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CliError } from '../command.js';
import type { Report } from './build.js';
import { formatMs } from './format.js';

/**
 * Chart.js's UMD build, inlined into the page so it renders with no network. Chart.js: a
 * maintained, MIT-licensed canvas charting library; its UMD file is one self-contained
 * script that defines `Chart`.
 */
function chartJsSource(): string {
  let file: string;
  try {
    file = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');
    const source = readFileSync(file, 'utf8');
    // Inside <script>, only `</script` (and `<!--`) could end or change the element early.
    return source.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
  } catch (err) {
    throw new CliError(`cannot read the chart library (chart.js) for --html: ${(err as Error).message}`, 'ERR_MAILBAG_REPORT_CHARTS');
  }
}

function esc(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a <script> element: no `<` can start a tag. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function table(headers: string[], rows: (string | number)[][], empty: string): string {
  if (!rows.length) return `<p class="empty">${esc(empty)}</p>`;
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td${typeof c === 'number' ? ' class="n"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Labels of the latency histogram's bins: `< 1.0 s`, ..., `>= 24.0 h`. */
export function latencyBinLabels(binsMs: readonly number[]): string[] {
  return [...binsMs.map((edge) => `< ${formatMs(edge)}`), `>= ${formatMs(binsMs[binsMs.length - 1]!)}`];
}

// Runs in the page: draws the four charts from the embedded report, then marks the body.
const PAGE_SCRIPT = `
'use strict';
const report = JSON.parse(document.getElementById('report-data').textContent);
const palette = ['#1f77b4', '#2ca02c', '#ff7f0e', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
Chart.defaults.animation = false;
Chart.defaults.responsive = false;
Chart.defaults.devicePixelRatio = 1;
function draw(id, config) {
  const canvas = document.getElementById(id);
  new Chart(canvas, config);
}
const starts = report.buckets.map((b) => b.start.slice(0, report.window.by === 'hour' ? 16 : 10).replace('T', ' '));
const series = [['received', 'received'], ['delivered', 'delivered'], ['deferred', 'deferred'], ['bounced', 'bounced']];
draw('chart-volume', {
  type: 'line',
  data: { labels: starts, datasets: series.map(([key, label], i) => ({ label, data: report.buckets.map((b) => b[key]), borderColor: palette[i], backgroundColor: palette[i], pointRadius: 0 })) },
  options: { plugins: { title: { display: true, text: 'Volume per ' + report.window.by + ' (messages received; recipients delivered, deferred, bounced)' } }, scales: { y: { beginAtZero: true } } },
});
draw('chart-latency', {
  type: 'bar',
  data: { labels: report.latencyBinLabels, datasets: report.latencyHistogram.hops.map((h, i) => ({ label: h.nexthop || '(none)', data: h.counts, backgroundColor: palette[i % palette.length] })) },
  options: { plugins: { title: { display: true, text: 'Delivery latency, receipt to delivery (recipients)' + (report.latencyHistogram.hops.length ? '' : ': no deliveries') } }, scales: { y: { beginAtZero: true } } },
});
draw('chart-dispositions', {
  type: 'bar',
  data: { labels: report.pod.dispositions.map((d) => d.disposition || '(none)'), datasets: [{ label: 'PoD message events', data: report.pod.dispositions.map((d) => d.n), backgroundColor: palette[4] }] },
  options: { plugins: { title: { display: true, text: 'Upstream dispositions' + (report.pod.dispositions.length ? '' : ': no PoD message events') } }, scales: { y: { beginAtZero: true } } },
});
draw('chart-languages', {
  type: 'bar',
  data: { labels: report.languages.selected.map((l) => l.tags || '(untagged part)'), datasets: [{ label: 'recipients', data: report.languages.selected.map((l) => l.n), backgroundColor: palette[1] }] },
  options: { plugins: { title: { display: true, text: 'Languages selected' + (report.languages.selected.length ? '' : ': none') } }, scales: { y: { beginAtZero: true } } },
});
document.body.dataset.charts = 'rendered';
`;

/**
 * The report as one self-contained HTML page: the summary tables, and four charts drawn by
 * the inlined Chart.js from the report embedded as JSON. A Content-Security-Policy forbids
 * every fetch, so the page works (and stays) offline.
 */
export function formatHtml(r: Report): string {
  const m = r.messages;
  const data = { ...r, latencyBinLabels: latencyBinLabels(r.latencyHistogram.binsMs) };
  const coverage = r.correlation.coverage === null ? 'n/a (no messages in the window)' : `${(r.correlation.coverage * 100).toFixed(1)}%`;
  const title = `mailbag report ${r.window.since} .. ${r.window.until}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
canvas { display: block; margin: 1em 0; border: 1px solid #eee; }
.empty, .note { color: #666; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>Buckets: one ${esc(r.window.by)} each (UTC).</p>
<h2>Messages</h2>
${table(['received', 'delivered', 'deferred', 'bounced'], [[m.received, m.delivered, m.deferred, m.bounced]], '')}
<canvas id="chart-volume" width="960" height="320"></canvas>
<h2>Delivery latency per next hop</h2>
${table(['next hop', 'delivered', 'p50', 'p90', 'p99'], r.latency.map((h) => [h.nexthop || '(none)', h.delivered, formatMs(h.p50Ms), formatMs(h.p90Ms), formatMs(h.p99Ms)]), 'No deliveries in the window.')}
<canvas id="chart-latency" width="960" height="320"></canvas>
<h2>Languages selected</h2>
${table(['language', 'recipients'], r.languages.selected.map((l) => [l.tags || '(untagged part)', l.n]), 'No language selected in the window.')}
<p class="note">Decisions by mode: ${esc(r.languages.byMode.map((b) => `${b.mode} ${b.n}`).join(', ') || 'none')}</p>
<canvas id="chart-languages" width="960" height="320"></canvas>
<h2>IMP traffic</h2>
${table(['forwarded', 'accepted'], [[r.imp.forwarded, r.imp.accepted]], '')}
<p class="note">${esc(r.imp.note)}</p>
<h2>PoD events</h2>
${table(['message', 'maillog', 'dead-lettered'], [[r.pod.message, r.pod.maillog, r.pod.deadLettered]], '')}
<h3>Upstream dispositions</h3>
${table(['disposition', 'messages'], r.pod.dispositions.map((d) => [d.disposition || '(none)', d.n]), 'No PoD message events in the window.')}
<canvas id="chart-dispositions" width="960" height="320"></canvas>
<h3>Top triggered upstream rules</h3>
${table(['module', 'rule', 'times'], r.pod.topRules.map((x) => [x.module || '(none)', x.rule, x.n]), 'No rules in the window.')}
<h2>Correlation</h2>
<p>${esc(r.correlation.linked)} of ${esc(r.correlation.messages)} messages linked: ${esc(coverage)}</p>
<p class="note">${esc(r.correlation.definition)}</p>
<p>${esc(r.correlation.upstream.linked)} of ${esc(r.correlation.upstream.messages)} upstream messages handed to mailbag found: ${esc(r.correlation.upstream.coverage === null ? 'n/a (none in the window)' : `${(r.correlation.upstream.coverage * 100).toFixed(1)}%`)}</p>
<p class="note">${esc(r.correlation.upstream.definition)}</p>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${chartJsSource()}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
