import type { Test } from 'tap';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { tempDir } from './gateway.js';

/** A store in a temp directory of its own, closed and removed when `t` ends. */
export function openTempStore(t: Test, prefix: string): Store {
  const { dir, cleanup } = tempDir(prefix);
  t.teardown(cleanup);
  const store = Store.open(join(dir, 'db.sqlite'));
  t.teardown(() => store.close());
  return store;
}
