// `mailbag trace` as text: readable in 80 columns, colour only when asked (a TTY).
import { oneLine } from '../one-line.js';
import type { TraceEntry } from './entries.js';
import type { TraceMatch, TraceResult } from './collect.js';

const WIDTH = 80;
const INDENT = 16;

interface Paint {
  bold(s: string): string;
  hop(s: string, hop: TraceEntry['hop']): string;
  bad(s: string): string;
  dim(s: string): string;
}

const plain: Paint = { bold: (s) => s, hop: (s) => s, bad: (s) => s, dim: (s) => s };
const ansi: Paint = {
  bold: (s) => `\x1b[1m${s}\x1b[22m`,
  hop: (s, hop) => `\x1b[${hop === 'upstream' ? 36 : 32}m${s}\x1b[39m`,
  bad: (s) => `\x1b[31m${s}\x1b[39m`,
  dim: (s) => `\x1b[2m${s}\x1b[22m`,
};

/** Words of `text` in lines of at most `width - indent` columns after the first, which has `first` columns. */
export function wrap(text: string, first: number, rest: number): string[] {
  const lines: string[] = [];
  let line = '';
  let room = first;
  const push = () => {
    lines.push(line);
    line = '';
    room = rest;
  };
  for (let word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > room) push();
    // A word longer than the line it starts (a long reply token, a Message-ID) is cut, never
    // overflows; checked after the break above, which may have narrowed the room.
    while (word.length > room - (line ? line.length + 1 : 0)) {
      if (line) push();
      lines.push(word.slice(0, room));
      word = word.slice(room);
      room = rest;
    }
    if (!word) continue;
    line = line ? `${line} ${word}` : word;
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

function entryLines(e: TraceEntry, p: Paint): string[] {
  const pad = ' '.repeat(INDENT);
  const time = e.at.slice(11, 23);
  const label = `${e.hop.padEnd(8)} ${oneLine(e.id)}`;
  const out = [`  ${time}  ${p.hop(label, e.hop)}`];
  // Titles and lines carry what mail and the upstream's events chose (Message-IDs, replies,
  // rule names): their control characters are shown escaped, never sent to the terminal.
  const title = wrap(oneLine(e.title), WIDTH - INDENT, WIDTH - INDENT - 2);
  title.forEach((l, i) => out.push(pad + (i ? '  ' : '') + (e.bad ? p.bad(l) : p.bold(l))));
  for (const line of e.lines) wrap(oneLine(line), WIDTH - INDENT, WIDTH - INDENT - 2).forEach((l, i) => out.push(pad + (i ? '  ' : '') + l));
  return out;
}

function matchLines(m: TraceMatch, p: Paint): string[] {
  const out: string[] = [];
  const head = (label: string, value: string) => wrap(oneLine(value), WIDTH - 10, WIDTH - 10).forEach((l, i) => out.push((i ? ' '.repeat(10) : p.bold(label.padEnd(10))) + l));
  head('mailbag', m.mailbagQids.join(' ') || '(no mailbag message: not delivered to mailbag, or not yet recorded)');
  head('upstream', m.upstreamQids.join(' ') || '(no upstream events stored)');
  if (m.truncated) {
    head('cut', `only the first ${m.mailbagQids.length + m.upstreamQids.length} messages and upstream queue ids of this set are shown: more are connected (a Message-ID reused by many messages, say)`);
  }
  const byPair = new Map<string, string[]>();
  for (const l of m.links) {
    const k = `${l.upstreamQid} -> ${l.qid}`;
    byPair.set(k, [...(byPair.get(k) ?? []), l.via]);
  }
  for (const [pair, vias] of byPair) head('linked', `${pair} by ${vias.join(', ')}`);
  for (const o of m.origins) head('origin', o.kind === 'imp' ? `${o.qid} came over IMP from ${o.originQid} (the sender's qid)` : `${o.qid} is a ${o.kind} of ${o.originQid}`);
  let day = '';
  for (const e of m.timeline) {
    const d = e.at.slice(0, 10);
    if (d !== day) {
      out.push(p.dim(`${d} (UTC)`));
      day = d;
    }
    out.push(...entryLines(e, p));
  }
  return out;
}

export function formatTrace(r: TraceResult, o: { colour: boolean }): string {
  const p = o.colour ? ansi : plain;
  const out: string[] = [];
  r.matches.forEach((m, i) => {
    if (r.matches.length > 1) out.push(p.bold(`${i ? '\n' : ''}match ${i + 1} of ${r.matches.length} for ${r.by} ${oneLine(r.key)} (newest first)`));
    out.push(...matchLines(m, p));
  });
  return out.join('\n') + '\n';
}
