// An attempt round's deadline (src/delivery/deadline.ts): what the transports and
// `untilAborted` use of an AbortSignal, without EventTarget's cost per listener. Events
// are ordered, never timed.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { RoundDeadline } from '../src/delivery/deadline.js';
import { untilAborted } from '../src/delivery/internal-error.js';

t.test('the deadline passes: listeners run once, in the order they were added', async (t) => {
  const deadline = new RoundDeadline(1);
  const calls: string[] = [];
  const first = () => calls.push('first');
  deadline.addEventListener('abort', first, { once: true });
  deadline.addEventListener('abort', first);
  const passed = new Promise<void>((resolve) => deadline.addEventListener('abort', () => (calls.push('second'), resolve())));
  t.notOk(deadline.aborted);
  await passed;
  t.ok(deadline.aborted);
  t.same(calls, ['first', 'second'], 'a listener added twice runs once');
  deadline.abort();
  t.same(calls, ['first', 'second'], 'aborting again runs nothing');
});

t.test('a removed listener, and one added after the abort, never run', async (t) => {
  const deadline = new RoundDeadline(60_000);
  const calls: string[] = [];
  const removed = () => calls.push('removed');
  deadline.addEventListener('abort', removed);
  deadline.addEventListener('abort', () => calls.push('kept'));
  deadline.removeEventListener('abort', removed);
  deadline.abort();
  deadline.addEventListener('abort', () => calls.push('late'));
  t.same(calls, ['kept']);
  t.ok(deadline.aborted);
});

t.test('clear() stops the timer: the round is over, the deadline never passes', async (t) => {
  const deadline = new RoundDeadline(1);
  let ran = false;
  deadline.addEventListener('abort', () => (ran = true));
  deadline.clear();
  // a timer due after the deadline's: had the deadline's fired, it would have fired first
  await sleep(20);
  t.notOk(deadline.aborted);
  t.notOk(ran);
});

t.test('a listener removed by an earlier one during the abort does not run, as with an AbortSignal', async (t) => {
  for (const signal of [new RoundDeadline(60_000), new AbortController()]) {
    const calls: string[] = [];
    const second = () => calls.push('second');
    const target = signal instanceof RoundDeadline ? signal : signal.signal;
    target.addEventListener('abort', () => (calls.push('first'), target.removeEventListener('abort', second)));
    target.addEventListener('abort', second);
    signal.abort();
    if (signal instanceof RoundDeadline) signal.clear();
    t.same(calls, ['first'], signal.constructor.name);
  }
});

t.test('a listener that throws does not keep the others from running; abort() throws its error after', async (t) => {
  const deadline = new RoundDeadline(60_000);
  const calls: string[] = [];
  deadline.addEventListener('abort', () => {
    calls.push('throws');
    throw new Error('listener failed');
  });
  deadline.addEventListener('abort', () => calls.push('runs'));
  t.throws(() => deadline.abort(), /listener failed/);
  t.same(calls, ['throws', 'runs']);
  t.ok(deadline.aborted);
});

t.test('untilAborted with a round deadline: rejects when it passes, and lets go of its listener when the promise settles', async (t) => {
  const deadline = new RoundDeadline(60_000);
  let settle!: (v: string) => void;
  const pending = untilAborted(new Promise<string>((resolve) => (settle = resolve)), deadline, () => new Error('deadline passed'));
  deadline.abort();
  await t.rejects(pending, /deadline passed/);
  settle('too late');

  const other = new RoundDeadline(60_000);
  const removed: unknown[] = [];
  const remove = other.removeEventListener.bind(other);
  other.removeEventListener = (type, listener) => (removed.push(listener), remove(type, listener));
  t.equal(await untilAborted(Promise.resolve('done'), other, () => new Error('no')), 'done');
  t.equal(removed.length, 1, 'the listener it added is removed once the promise settled');
  other.clear();
  await t.rejects(untilAborted(Promise.resolve('x'), deadline, () => new Error('already passed')), /already passed/);
});
