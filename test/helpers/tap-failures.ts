// After a failed `tap` run, prints each failed assertion again, with the subtests it sits
// in and its diagnostics, so the end of the output (all a CI log view may show of a suite
// of several thousand assertions) says what failed. Reads the results tap keeps per test
// file under .tap/test-results. `npm test` runs it only when tap fails.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = '.tap/test-results';
const MAX_DIAGNOSTIC_LINES = 40;

function tapFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tapFiles(path) : name.endsWith('.tap') ? [path] : [];
  });
}

const indentOf = (line: string) => line.length - line.trimStart().length;

/** Failed assertions of one file's TAP: the innermost ones, with their subtest path and YAML block. */
export function failuresOf(tap: string): string[] {
  const lines = tap.split('\n');
  const path: { indent: number; name: string }[] = [];
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const indent = indentOf(line);
    const subtest = /^\s*# Subtest: (.*)$/.exec(line);
    if (subtest) {
      while (path.length && path[path.length - 1]!.indent >= indent) path.pop();
      path.push({ indent, name: subtest[1]! });
      continue;
    }
    const failed = /^\s*not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(line);
    if (!failed) continue;
    // A subtest's own "not ok" line follows its children, at its "# Subtest" line's indent:
    // the children already said what failed, unless none did (a timeout, an error thrown).
    const last = path[path.length - 1];
    const closesSubtest = last !== undefined && last.indent === indent && last.name === failed[1];
    if (closesSubtest) path.pop();
    const name = [...path.filter((p) => p.indent < indent).map((p) => p.name), failed[1]].join(' > ');
    if (closesSubtest && found.some((f) => f.startsWith(`${name} > `))) continue;
    const block: string[] = [];
    if (lines[i + 1]?.trim() === '---') {
      for (let j = i + 2; j < lines.length && lines[j]!.trim() !== '...'; j++) block.push(lines[j]!.slice(indent + 2));
    }
    const shown = block.length > MAX_DIAGNOSTIC_LINES ? [...block.slice(0, MAX_DIAGNOSTIC_LINES), `... (${block.length - MAX_DIAGNOSTIC_LINES} more lines)`] : block;
    found.push([name, ...shown.map((l) => `    ${l}`)].join('\n'));
  }
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const failures = tapFiles(root).flatMap((file) => failuresOf(readFileSync(file, 'utf8')).map((f) => `${relative(root, file).replace(/\.tap$/, '')}: ${f}`));
  process.stdout.write(`\n# Failed (${failures.length}), from ${root}:\n`);
  for (const f of failures) process.stdout.write(`\n${f}\n`);
}
