// The README and docs show `npx mailbag ...` commands in code blocks and tables. Every one
// must name a command that exists and only flags that command takes, so the docs cannot
// drift from the CLI. (Prose may name commands still to come; it is not checked.)
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from '../src/cli/command.js';
import { root } from '../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

export interface DocCommand {
  file: string;
  line: number;
  /** The words after `mailbag`, up to a pipe, redirect or comment. */
  words: string[];
  text: string;
  /** In a fenced code block (a command to type), not a table cell. */
  fenced: boolean;
  /** Run as a bare `mailbag`, which is not on the PATH of a checkout. */
  bare: boolean;
}

/**
 * How the docs invoke the CLI: `npx mailbag`, `node .../bin/mailbag.js`, or a bare `mailbag`
 * at the start of a command (of the line, or after a pipe, `;`, `&&` or `(`).
 */
const INVOCATION = /(?:^|\s)(?:npx mailbag|(?:node )?\S*bin\/mailbag\.js)(?=\s|$)|(?:^|[|;&(]\s*)mailbag(?=\s|$)/;

function wordsAfter(invocation: RegExpExecArray, text: string): string[] {
  const rest = text.slice(invocation.index + invocation[0].length);
  const cut = rest.split(/\s#\s|\s\||\s>|\s<|\s&&|;/)[0]!;
  return cut.trim().split(/\s+/).filter(Boolean);
}

/** Every CLI invocation in a Markdown file: code-block lines, and inline code in table rows. */
export function docCommands(file: string, source: string): DocCommand[] {
  const found: DocCommand[] = [];
  let fenced = false;
  source.split('\n').forEach((raw, i) => {
    if (/^\s*```/.test(raw)) {
      fenced = !fenced;
      return;
    }
    if (!fenced && !raw.startsWith('|')) return;
    const spans = fenced ? [raw.trim().replace(/^\$ /, '')] : [...raw.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const span of spans) {
      const m = INVOCATION.exec(span);
      if (!m) continue;
      const words = wordsAfter(m, span);
      // `mailbag queue show: no message ...` is an error line the CLI prints, not a command.
      if (/^mailbag [\w ]*\w: /.test(span)) continue;
      found.push({ file, line: i + 1, words, text: span, fenced, bare: !/npx mailbag|bin\/mailbag\.js/.test(m[0]) });
    }
  });
  return found;
}

const ROOT_FLAGS = new Set(['--help', '-h', '--version', '-V']);

/** The command the words name, and the flags they use; `problem` when they do not fit the CLI. */
export function resolveDocCommand(words: string[]): { path: string[]; flags: string[]; problem?: string } {
  let cmd: Command = root;
  const path: string[] = [];
  let i = 0;
  for (; cmd.subcommands && i < words.length; i++) {
    const word = words[i]!.replace(/\\\|/g, '|'); // `a\|b` in a Markdown table cell is `a|b`
    if (word.startsWith('-') || /^([<[]|\.\.\.$)/.test(word)) break; // a flag, or a placeholder: <command>, [QID], ...
    if (word.includes('|')) {
      // `queue list|show|retry|delete`: alternatives, each must exist
      const missing = word.split('|').filter((w) => !cmd.subcommands!.some((c) => c.name === w));
      return missing.length ? { path, flags: [], problem: `no command '${[...path, missing[0]].join(' ')}'` } : { path: [...path, word], flags: [] };
    }
    const next = cmd.subcommands.find((c) => c.name === word);
    if (!next) return { path, flags: [], problem: `no command '${[...path, word].join(' ')}'` };
    cmd = next;
    path.push(word);
  }
  const flags = words
    .slice(i)
    .flatMap((w) => [...w.matchAll(/(?:^|[[(|])(--?[A-Za-z][\w-]*)/g)].map((m) => m[1]!))
    .filter((f) => !/^-\d/.test(f));
  for (const flag of flags) {
    if (flag === '--help' || flag === '-h') continue;
    if (path.length === 0 && ROOT_FLAGS.has(flag)) continue;
    if (!cmd.run) return { path, flags, problem: `'${[...path, flag].join(' ')}': ${flag} needs a command` };
    if (!new RegExp(`(^|[\\s[(|])${flag.replace(/[-]/g, '\\-')}(?![\\w-])`).test(cmd.usage)) {
      return { path, flags, problem: `'mailbag ${path.join(' ')}' has no option ${flag} (its usage: ${cmd.usage.split('\n')[0]})` };
    }
  }
  return { path, flags };
}

t.test('every CLI command in the README and docs exists, with only the flags it takes', async (t) => {
  const all = DOCS.flatMap((file) => docCommands(file, readFileSync(join(ROOT, file), 'utf8')));
  t.ok(all.length >= 30, `found ${all.length} command examples`);
  for (const example of all) {
    const { problem } = resolveDocCommand(example.words);
    t.equal(problem, undefined, `${example.file}:${example.line}: ${example.text}`);
  }
  const named = new Set(all.map((c) => resolveDocCommand(c.words).path.join(' ')));
  for (const cmd of ['start', 'config check', 'config show', 'queue list', 'queue show', 'queue retry', 'queue delete', 'imp dump', 'imp pack', 'imp encode', 'imp decode']) {
    t.ok(named.has(cmd), `the docs show 'mailbag ${cmd}'`);
  }
  t.ok(all.some((c) => c.words[0] === '--version'), 'the docs show --version');
});

t.test('commands to type run the CLI one way: npx mailbag from a checkout (node bin/mailbag.js in service files)', async (t) => {
  // Code blocks are what readers paste; a table may name a command (`mailbag queue`).
  const bare = DOCS.flatMap((file) => docCommands(file, readFileSync(join(ROOT, file), 'utf8')))
    .filter((c) => c.fenced && c.bare);
  t.same(
    bare.map((c) => `${c.file}:${c.line}: ${c.text}`),
    [],
    'no bare `mailbag ...` commands: after `npm ci` in a checkout mailbag is not on the PATH',
  );
});

t.test('the extractor and resolver catch drift', async (t) => {
  const md = [
    '```sh',
    'npx mailbag queue list --json   # comment --nope',
    'npx mailbag frobnicate',
    '```',
    '| `npx mailbag start [--config FILE]` | run |',
    'prose `npx mailbag config show --colour` is not checked; `mailbag pod status` may be to come',
    '```',
    'node /opt/mailbag/bin/mailbag.js config check | cat',
    'mailbag --version',
    'mailbag queue show: no message QID in the queue',
    'cat events.jsonl | mailbag pod import -',
    'journalctl -u mailbag -o cat',
    '```',
    '| `npx mailbag queue list|show|retry|delete` and `mailbag queue list|frob` |',
    '| `mailbag config show --colour` |',
  ].join('\n');
  const found = docCommands('x.md', md);
  t.same(
    found.map((c) => [c.line, c.words]),
    [
      [2, ['queue', 'list', '--json']],
      [3, ['frobnicate']],
      [5, ['start', '[--config', 'FILE]']],
      [8, ['config', 'check']],
      [9, ['--version']],
      [11, ['pod', 'import', '-']],
      [14, ['queue', 'list|show|retry|delete']],
      [14, ['queue', 'list|frob']],
      [15, ['config', 'show', '--colour']],
    ],
  );
  t.same(found.map((c) => c.fenced), [true, true, false, true, true, true, false, false, false]);
  t.same(found.map((c) => c.bare), [false, false, false, false, true, true, false, true, true]);
  t.same(found.map((c) => resolveDocCommand(c.words).problem === undefined), [true, false, true, true, true, true, true, false, false]);
  t.match(resolveDocCommand(['frobnicate']).problem, /no command 'frobnicate'/);
  t.match(resolveDocCommand(['config', 'show', '--colour']).problem, /has no option --colour/);
  t.match(resolveDocCommand(['queue', '--json']).problem, /needs a command/);
  t.equal(resolveDocCommand(['<command>', '--help']).problem, undefined, 'usage placeholders are fine');
  t.equal(resolveDocCommand(['...']).problem, undefined, '"npx mailbag ..." is fine');
});
