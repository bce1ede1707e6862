// `npm run bench [-- NAME...]`: runs every benchmark under bench/ (or the named
// ones), each in its own process so one's heap does not colour another's figures.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((name) => name !== 'run.ts' && name !== 'lib')
  .flatMap((name) => {
    const full = join(here, name);
    if (statSync(full).isDirectory()) return [{ name, file: join(full, 'index.ts') }];
    return name.endsWith('.ts') ? [{ name: name.slice(0, -3), file: full }] : [];
  });

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !available.some((b) => b.name === w));
if (unknown.length) {
  process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')} (have: ${available.map((b) => b.name).join(', ')})\n`);
  process.exit(2);
}
let failed = 0;
for (const bench of available.filter((b) => wanted.length === 0 || wanted.includes(b.name))) {
  process.stdout.write(`\n## ${bench.name}\n\n`);
  const r = spawnSync(process.execPath, ['--import=tsx', '--expose-gc', bench.file], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`bench: ${bench.name} exited ${r.status ?? r.signal}\n`);
  }
}
process.exit(failed ? 1 : 0);
