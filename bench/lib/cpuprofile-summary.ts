// Self time by function of a `node --cpu-prof` profile (the benches' BENCH_CPU_PROF):
//
//   node --import=tsx bench/lib/cpuprofile-summary.ts FILE.cpuprofile [BEFORE.cpuprofile] [--per N] [--top N] [--incl REGEX] [--window REGEX] [--last-ms MS]
//
// One profile: its functions by self time. Two: the first is "after", the second
// "before", and the table is sorted by the difference. `--per N` divides every figure
// by N (ms per message when N is the message count); `--incl REGEX` adds the inclusive
// time of the functions whose key matches; `--window REGEX` counts only the samples from
// the first to the last whose stack has a matching function (e.g. `smtp-connection` for
// the SMTP traffic, leaving out start-up and shutdown); `--last-ms MS` only the final MS of
// that window (the measured run after a bench's warm-up). Functions are keyed by name, file
// and line, so the same function in two trees of the same code matches.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time in ms by function key, the total of every sample that is not idle, and the
 * inclusive time (the function or anything it called) of the keys matching `inclusive`.
 */
export function selfTimes(file: string, inclusive?: RegExp, window?: RegExp, lastMs?: number): { byFunction: Map<string, number>; busyMs: number; inclusiveMs: Map<string, number> } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const keyOf = new Map<number, string>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const where = f.url ? `${basename(f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
    keyOf.set(n.id, `${f.functionName || '(anonymous)'} ${where}`.trim());
  }
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const byFunction = new Map<string, number>();
  const inclusiveMs = new Map<string, number>();
  let busyMs = 0;
  const stackMatches = (i: number, re: RegExp) => {
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parentOf.get(id)) if (re.test(keyOf.get(id)!)) return true;
    return false;
  };
  let first = 0;
  let last = profile.samples.length - 1;
  if (window) {
    while (first <= last && !stackMatches(first, window)) first++;
    while (last >= first && !stackMatches(last, window)) last--;
  }
  if (lastMs !== undefined) {
    // only the final lastMs of the window: the measured run after a warm-up
    let ms = 0;
    let i = last;
    while (i > first && ms < lastMs * 1000) ms += profile.timeDeltas[i--] ?? 0;
    first = i;
  }
  for (let i = first; i <= last; i++) {
    // a sample's time is the delta to the next one
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const key = keyOf.get(profile.samples[i]!) ?? '?';
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    if (key !== '(idle)') busyMs += ms;
    if (!inclusive) continue;
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parentOf.get(id)) {
      const k = keyOf.get(id)!;
      if (!seen.has(k) && inclusive.test(k)) {
        seen.add(k);
        inclusiveMs.set(k, (inclusiveMs.get(k) ?? 0) + ms);
      }
    }
  }
  return { byFunction, busyMs, inclusiveMs };
}

function main(argv: string[]): void {
  const files: string[] = [];
  let per = 1;
  let top = 40;
  let inclusive: RegExp | undefined;
  let window: RegExp | undefined;
  let lastMs: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--per') per = Number(argv[++i]);
    else if (argv[i] === '--top') top = Number(argv[++i]);
    else if (argv[i] === '--incl') inclusive = new RegExp(argv[++i]!);
    else if (argv[i] === '--window') window = new RegExp(argv[++i]!);
    else if (argv[i] === '--last-ms') lastMs = Number(argv[++i]);
    else files.push(argv[i]!);
  }
  if (files.length < 1 || files.length > 2 || !(per > 0) || (lastMs !== undefined && !(lastMs > 0))) {
    process.stderr.write('usage: cpuprofile-summary.ts AFTER.cpuprofile [BEFORE.cpuprofile] [--per N] [--top N] [--incl REGEX] [--window REGEX] [--last-ms MS]\n');
    process.exit(2);
  }
  const after = selfTimes(files[0]!, inclusive, window, lastMs);
  const before = files[1] ? selfTimes(files[1], inclusive, window, lastMs) : undefined;
  const fmt = (ms: number) => (ms / per).toFixed(per === 1 ? 0 : 3).padStart(9);
  const keys = new Set([...after.byFunction.keys(), ...(before?.byFunction.keys() ?? [])]);
  const rows = [...keys].map((k) => {
    const a = after.byFunction.get(k) ?? 0;
    const b = before?.byFunction.get(k) ?? 0;
    return { k, a, b, d: a - b };
  });
  rows.sort((x, y) => (before ? Math.abs(y.d) - Math.abs(x.d) : y.a - x.a));
  const unit = per === 1 ? 'ms' : `ms/${per}`;
  if (before) {
    process.stdout.write(`busy (not idle): after ${fmt(after.busyMs)} before ${fmt(before.busyMs)} diff ${fmt(after.busyMs - before.busyMs)} ${unit}\n`);
    process.stdout.write(`${'after'.padStart(9)} ${'before'.padStart(9)} ${'diff'.padStart(9)}  function\n`);
    for (const r of rows.slice(0, top)) process.stdout.write(`${fmt(r.a)} ${fmt(r.b)} ${fmt(r.d)}  ${r.k}\n`);
  } else {
    process.stdout.write(`busy (not idle): ${fmt(after.busyMs)} ${unit}\n`);
    for (const r of rows.slice(0, top)) process.stdout.write(`${fmt(r.a)}  ${r.k}\n`);
  }
  if (inclusive) {
    process.stdout.write(`inclusive, matching ${inclusive}:\n`);
    const ks = new Set([...after.inclusiveMs.keys(), ...(before?.inclusiveMs.keys() ?? [])]);
    for (const k of [...ks].sort()) {
      process.stdout.write(`${fmt(after.inclusiveMs.get(k) ?? 0)}${before ? ` ${fmt(before.inclusiveMs.get(k) ?? 0)}` : ''}  ${k}\n`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
