// The toolchain split: `tsc` is TypeScript 7 (native), while `typescript` (the JS
// compiler API typescript-eslint loads) is TypeScript 6. A reinstall that let the
// TypeScript 6 `tsc` win the bin link would type-check with the wrong compiler.
import t from 'tap';
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

t.test('tsc is TypeScript 7; the typescript JS API is 6.x for typescript-eslint', async (t) => {
  // node_modules/.bin/tsc -> <package>/bin/tsc
  const pkgDir = dirname(dirname(realpathSync(join(root, 'node_modules/.bin/tsc'))));
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { name: string; version: string };
  t.match(pkg, { name: 'typescript', version: /^7\./ }, 'the tsc binary comes from TypeScript 7');
  const ts = createRequire(join(root, 'package.json'))('typescript') as { version: string; SyntaxKind?: object };
  t.match(ts.version, /^6\./, 'require("typescript") is the TypeScript 6 API');
  t.type(ts.SyntaxKind, 'object', 'with a compiler API');
});
