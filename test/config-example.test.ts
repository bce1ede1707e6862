// config/example.yaml is the configuration reference: its values are the schema's
// defaults, key for key, and everything that is not a default sits in a commented
// `# example:` block. These tests keep it so as keys are added to the schema.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig, validateConfig } from '../src/config/load.js';

const EXAMPLE = fileURLToPath(new URL('../config/example.yaml', import.meta.url));
const text = readFileSync(EXAMPLE, 'utf8');
const defaults = validateConfig({}) as unknown as Record<string, unknown>;

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Key paths of every leaf (a scalar or an array) of a parsed object. */
function leafPaths(value: unknown, prefix: string[] = []): string[][] {
  if (!isPlain(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
}

function at(value: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (isPlain(v) ? v[k] : undefined), value);
}

function nest(path: string[], leaf: unknown): Plain {
  return path.reduceRight<Plain>((inner, k) => ({ [k]: inner }), leaf as Plain);
}

interface ExampleBlock {
  line: number;
  /** Keys of the mapping the example belongs to (`['smtp']`, or `[]` at the top level). */
  parent: string[];
  yaml: string;
}

/**
 * `# example:` blocks: the marker, then a commented `key: value` line at the same
 * indentation, then commented continuation lines indented further. The parent keys come
 * from the uncommented keys above it (two spaces per level, as the file is written).
 */
function exampleBlocks(source: string): ExampleBlock[] {
  const lines = source.split('\n');
  const keys: string[] = [];
  const blocks: ExampleBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const key = /^( *)([A-Za-z]\w*):/.exec(line);
    if (key) {
      keys.length = key[1]!.length / 2;
      keys.push(key[2]!);
      continue;
    }
    const marker = /^( *)# example:\s*$/.exec(line);
    if (!marker) continue;
    const indent = marker[1]!;
    const first = lines[i + 1] ?? '';
    if (!new RegExp(`^${indent}# [A-Za-z]\\w*:`).test(first)) throw new Error(`line ${i + 2}: an example block starts with "${indent}# key:"`);
    const body = [first.slice(indent.length + 2)];
    let j = i + 2;
    for (; j < lines.length && lines[j]!.startsWith(`${indent}#   `); j++) body.push(lines[j]!.slice(indent.length + 2));
    blocks.push({ line: i + 1, parent: keys.slice(0, indent.length / 2), yaml: body.join('\n') });
    i = j - 1;
  }
  return blocks;
}

t.test('the values in example.yaml are exactly the schema defaults', async (t) => {
  t.same(loadConfig(EXAMPLE), defaults, 'example.yaml parses to what an empty config file gives');
  const raw = parse(text) as Plain;
  for (const path of leafPaths(raw)) {
    const alone = validateConfig(nest(path, at(raw, path))) as unknown as Plain;
    t.same(at(alone, path), at(defaults, path), `${path.join('.')}: the stated value is the default`);
  }
});

t.test('example.yaml states every key that has a default', async (t) => {
  const raw = parse(text) as Plain;
  const missing = leafPaths(defaults)
    .filter((path) => at(raw, path) === undefined)
    .map((p) => p.join('.'));
  t.same(missing, [], 'every key of the schema defaults appears in example.yaml with its value');
});

t.test('every example block is valid config for its key and is not the default', async (t) => {
  const blocks = exampleBlocks(text);
  const named = blocks.map((b) => [...b.parent, Object.keys(parse(b.yaml) as Plain)[0]].join('.'));
  // The values that used to be shown as if they were defaults are now examples.
  for (const key of ['gateway.hostname', 'smtp.localDomains', 'smtp.trustedNetworks', 'smtp.tls', 'smtp.auth', 'routes']) {
    t.ok(named.includes(key), `${key} has an example block`);
  }
  for (const block of blocks) {
    const value = parse(block.yaml) as Plain;
    t.equal(Object.keys(value).length, 1, `line ${block.line}: one key per example`);
    const [key] = Object.keys(value) as [string];
    const path = [...block.parent, key];
    const config = validateConfig(nest(path, value[key])) as unknown as Plain;
    t.notSame(at(config, path), at(defaults, path), `line ${block.line}: ${path.join('.')} example differs from the default`);
  }
});

t.test('the example marker parser finds nested blocks and their parents', async (t) => {
  const blocks = exampleBlocks('a:\n  b: 1\n  # example:\n  # b: 2\n  # prose\nc:\n  # example:\n  # d:\n  #   - x\n  #   - y\n');
  t.same(blocks, [
    { line: 3, parent: ['a'], yaml: 'b: 2' },
    { line: 7, parent: ['c'], yaml: 'd:\n  - x\n  - y' },
  ]);
  t.throws(() => exampleBlocks('a:\n  # example:\n  not yaml\n'), /starts with/);
});
