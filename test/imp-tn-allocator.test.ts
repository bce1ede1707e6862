// Transaction numbers (RFC 753 section 3.7): sequential, wrapping, never one awaiting its reply.
import t from 'tap';
import { join } from 'node:path';
import { TN_COUNT, TnAllocator } from '../src/imp/shipper/tn-allocator.js';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/gateway.js';

t.test('sequential from the start, wrapping from 65535 to 0', async (t) => {
  const a = new TnAllocator({ ihn: 0xa0000f4 + 0, start: 65533 });
  const got = [a.allocate(), a.allocate(), a.allocate(), a.allocate()].map((x) => x!.tn);
  t.same(got, [65533, 65534, 65535, 0]);
  t.equal(a.allocate()!.ihn, 0xa0000f4, 'our ihn in the tid');
  t.throws(() => new TnAllocator({ ihn: 1, start: 65536 }), RangeError);
});

t.test('a tn awaiting its reply is skipped after the wrap; a released one is used again in sequence', async (t) => {
  const a = new TnAllocator({ ihn: 1, start: 65535 });
  t.equal(a.allocate()!.tn, 65535);
  const zero = a.allocate()!.tn;
  t.equal(zero, 0);
  // Go round once: everything but 0 answered.
  for (let i = 1; i < TN_COUNT - 1; i++) a.release(a.allocate()!.tn);
  a.release(65535);
  t.equal(a.next, 65535);
  t.equal(a.allocate()!.tn, 65535);
  t.equal(a.allocate()!.tn, 1, '0 still awaits its reply: skipped');
  a.release(zero);
  a.release(65535);
  a.release(1);
  for (let tn = 2; tn < TN_COUNT; tn++) a.release(a.allocate()!.tn);
  t.equal(a.allocate()!.tn, 0, 'released: used again when the sequence comes round');
});

t.test('all 65,536 awaiting: no tn rather than a reused one', async (t) => {
  const a = new TnAllocator({ ihn: 1 });
  let handed = 0;
  for (let i = 0; i < TN_COUNT; i++) if (a.allocate()) handed++;
  t.equal(handed, TN_COUNT);
  t.equal(a.awaiting, TN_COUNT);
  t.equal(a.allocate(), undefined);
  a.release(4711);
  t.equal(a.allocate()!.tn, 4711);
});

t.test('the high-water mark is reserved a block ahead, so a restart never reuses a tn handed out', async (t) => {
  let saved: number | undefined;
  const saves: number[] = [];
  const hw = {
    load: () => saved,
    reserve: (from: number, block: number) => {
      saves.push((saved = (from + block) % TN_COUNT));
      return from;
    },
  };
  const a = new TnAllocator({ ihn: 1, highWater: hw, block: 4 });
  const first = [0, 1, 2, 3, 4].map(() => a.allocate()!.tn);
  t.same(first, [0, 1, 2, 3, 4]);
  t.same(saves, [4, 8], 'one write per block, before its first tn is handed out');
  // "crash": a new allocator resumes at the saved mark, past everything used.
  const b = new TnAllocator({ ihn: 1, highWater: hw, block: 4 });
  t.equal(b.allocate()!.tn, 8);
  t.same(saves, [4, 8, 12]);
  // Near the wrap the mark wraps too.
  const c = new TnAllocator({ ihn: 1, highWater: hw, block: 4, start: 65534 });
  t.same([c.allocate()!.tn, c.allocate()!.tn, c.allocate()!.tn], [65534, 65535, 0]);
  t.equal(saved, 2);
  // A failing reservation hands out nothing.
  const d = new TnAllocator({ ihn: 1, highWater: { load: () => 0, reserve: () => { throw new Error('disk full'); } } });
  t.throws(() => d.allocate(), /disk full/);
  t.equal(d.awaiting, 0);
});

t.test('two allocators on one store (a gateway and `imp send`) never hand out the same tn', async (t) => {
  const { dir, cleanup } = tempDir('tn');
  const store = Store.open(join(dir, 'mailbag.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  const hw = (ihn: number) => ({ load: () => store.impTns.mark(ihn), reserve: (from: number, block: number) => store.impTns.reserve(ihn, from, block) });
  const gateway = new TnAllocator({ ihn: 7, highWater: hw(7), block: 8 });
  t.same([0, 1, 2].map(() => gateway.allocate()!.tn), [0, 1, 2]);
  const cli = new TnAllocator({ ihn: 7, highWater: hw(7), block: 1 });
  t.equal(cli.allocate()!.tn, 8, 'the other process starts past the block the gateway reserved');
  const rest = Array.from({ length: 7 }, () => gateway.allocate()!.tn);
  t.same(rest, [3, 4, 5, 6, 7, 9, 10], 'the gateway finishes its block, then skips the tn the CLI took');
  t.equal(store.impTns.mark(7), 17);
  t.equal(store.impTns.mark(8), undefined, 'marks are per ihn');
  const restarted = new TnAllocator({ ihn: 7, highWater: hw(7), block: 8 });
  t.equal(restarted.allocate()!.tn, 17, 'a restart resumes at the mark');
});
