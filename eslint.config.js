// ESLint flat config: type-aware typescript-eslint rules over every TypeScript file of
// the tsconfig (src, test, bench). `npm run lint`; part of `npm test`.
//
// TypeScript 7's `typescript` package has no JavaScript compiler API (its tsc is
// native), and typescript-eslint needs that API. So, as TypeScript 7's release notes
// describe for tools that still need it, `typescript` resolves to the official
// TypeScript 6 compatibility package (@typescript/typescript6: the JS API, and a `tsc6`
// binary), while TypeScript 7 is installed as `@typescript/native` and provides `tsc`
// (type checking and the build). typescript-eslint loads `typescript` as usual.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'var/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits loses its rejection (an unhandled rejection ends the
      // process) and its ordering: await it, or `void` it with a comment saying why.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap queues subtests and reports their failures itself: t.test() need not be awaited.
          allowForKnownSafeCalls: [{ from: 'package', name: 'test', package: '@tapjs/test' }],
        },
      ],
      // A switch over a union handles every member: a new message or state kind added
      // later is a compile-time finding, not a silently ignored case.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
