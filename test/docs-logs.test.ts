// The log lines docs/operations.md lists are the ones the program writes: every message a
// logger call in src/ writes at info level or above is in the table, and every message in the
// table is written somewhere, so neither can drift from the other.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** `logger.info({...}, 'msg')` and the like: the message of every call at info level or above. */
export function loggedMessages(source: string): string[] {
  const out: string[] = [];
  const call = /\blog(?:ger)?\??\.(?:info|warn|error|fatal)\(/g;
  for (let m = call.exec(source); m; m = call.exec(source)) {
    // skip the optional fields object (balanced braces), then read one string literal
    let i = m.index + m[0].length;
    while (/\s/.test(source[i]!)) i++;
    if (!/['"`]/.test(source[i]!)) {
      // a fields argument: an object literal or a name, up to its comma
      for (let depth = 0; i < source.length; i++) {
        const c = source[i]!;
        if (c === '{' || c === '(' || c === '[') depth++;
        else if (c === '}' || c === ')' || c === ']') depth--;
        else if (c === ',' && depth === 0) break;
      }
      i++;
      while (/\s/.test(source[i]!)) i++;
    }
    const quote = source[i];
    if (quote !== "'" && quote !== '"' && quote !== '`') continue;
    const end = source.indexOf(quote, i + 1);
    out.push(source.slice(i + 1, end));
  }
  return out;
}

/** The `msg` column of the operations.md log table: every backticked string in its first cell. */
export function documentedMessages(doc: string): string[] {
  const section = doc.slice(doc.indexOf('| `msg` | when | fields |'));
  const rows = section.split('\n').slice(2);
  const out: string[] = [];
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const first = row.split(' | ')[0]!;
    for (const m of first.matchAll(/`([^`]+)`/g)) out.push(m[1]!);
  }
  return out;
}

/** The doc writes placeholders as N, DIR and a trailing "...": they match anything. */
function docPattern(msg: string): RegExp {
  const parts = msg.split(/(\bN\b|\bDIR\b|\.\.\.$)/);
  const body = parts.map((p, i) => (i % 2 ? '.*' : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

/** A template literal's `${...}` parts become a placeholder word. */
const codeText = (msg: string) => msg.replace(/\$\{[^}]*\}/g, 'X');

t.test('every log message the program writes at info or above is in the operations.md table, and back', async (t) => {
  const logged = new Map<string, string>();
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    for (const msg of loggedMessages(readFileSync(file, 'utf8'))) logged.set(codeText(msg), file.slice(ROOT.length));
  }
  t.ok(logged.size >= 30, `found ${logged.size} log messages in src/`);
  const documented = documentedMessages(readFileSync(join(ROOT, 'docs/operations.md'), 'utf8'));
  t.ok(documented.length >= 30, `found ${documented.length} messages in the table`);
  const patterns = documented.map((d) => ({ d, re: docPattern(d) }));
  for (const [msg, file] of logged) {
    t.ok(patterns.some((p) => p.re.test(msg)), `${file}: "${msg}" is in the docs/operations.md log table`);
  }
  for (const { d, re } of patterns) {
    t.ok([...logged.keys()].some((msg) => re.test(msg)), `the documented "${d}" is written by src/`);
  }
});

t.test('the extractors find what they should', async (t) => {
  const src = `this.o.logger.info({ qid, a: { b: 1 } }, 'one');\nlogger.warn('two');\nlog.error({ x }, \`three \${n} files\`);\nlogger.debug({}, 'four');\nlogger.info(fields, 'five');`;
  t.same(loggedMessages(src), ['one', 'two', 'three ${n} files', 'five']);
  const doc = '| `msg` | when | fields |\n| --- | --- | --- |\n| `a`, `b` (level error) | x | `f` |\n| `c N d` | y | z |\n\nafter';
  t.same(documentedMessages(doc), ['a', 'b', 'c N d']);
  t.ok(docPattern('spool: N files in DIR; ...').test(codeText('spool: ${n} files in ${dir}; run it')));
  t.notOk(docPattern('stopping').test('stopped'));
});
