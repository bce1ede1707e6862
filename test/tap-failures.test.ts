// The failure recap `npm test` prints after a failed tap run (test/helpers/tap-failures.ts).
import t from 'tap';
import { failuresOf } from './helpers/tap-failures.js';

const tap = `TAP version 14
# Subtest: good
    ok 1 - fine
    1..1
ok 1 - good # time=1.2ms

# Subtest: outer
    # Subtest: inner
        not ok 1 - one is two
          ---
          compare: ===
          diff: |
            -2
            +1
          ...
        1..1
    not ok 1 - inner # time=3ms
    ok 2 - after
    1..2
not ok 2 - outer # time=5.5ms

# Subtest: timed out
    ok 1 - started
    1..1
not ok 3 - timed out # time=120000ms
  ---
  message: timeout!
  ...

1..3
`;

t.test('each innermost failure, with its subtests and diagnostics; parents whose children failed are not repeated', async (t) => {
  t.same(failuresOf(tap), [
    'outer > inner > one is two\n    compare: ===\n    diff: |\n      -2\n      +1',
    'timed out\n    message: timeout!',
  ]);
});

t.test("a subtest that failed on its own is not hidden by an earlier failed sibling whose name it begins", async (t) => {
  const siblings = `# Subtest: send again
    not ok 1 - refused
    1..1
not ok 1 - send again

# Subtest: send
    ok 1 - fine
    1..1
not ok 2 - send # time=120000ms
  ---
  message: timeout!
  ...
`;
  t.same(failuresOf(`TAP version 14\n${siblings}1..2\n`), ['send again > refused', 'send\n    message: timeout!']);
});

t.test('a passing file has none', async (t) => {
  t.same(failuresOf('TAP version 14\nok 1 - a\n1..1\n'), []);
});
