/**
 * What a delivery attempt needs of its round's deadline: whether it has passed, and a
 * call when it does. An `AbortSignal` is one (tests and callers outside the queue pass
 * theirs); the queue passes a `RoundDeadline`, because in Node 20 each listener added to
 * and removed from an `AbortSignal` costs about 12 µs of CPU (EventTarget's bookkeeping),
 * and a round adds two per message on the queue thread's hot path.
 */
export interface AttemptSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * An attempt round's deadline: aborts `ms` after it is made, or when `abort()` is called.
 * Listeners run once, in the order they were added, as an `AbortSignal`'s do; one added
 * twice runs once, and one added after the abort never runs (check `aborted` first).
 * `clear()` stops the timer once the round is over.
 */
export class RoundDeadline implements AttemptSignal {
  private passed = false;
  private readonly listeners = new Set<() => void>();
  private readonly timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.timer = setTimeout(() => this.abort(), ms);
  }

  get aborted(): boolean {
    return this.passed;
  }

  /** Every listener runs at most once: `once` changes nothing. */
  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (!this.passed) this.listeners.add(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    this.listeners.delete(listener);
  }

  abort(): void {
    if (this.passed) return;
    this.passed = true;
    clearTimeout(this.timer);
    // as EventTarget does: a listener that throws does not keep the others from running,
    // and one that an earlier listener removed does not run
    let failure: { err: unknown } | undefined;
    for (const listener of [...this.listeners]) {
      if (!this.listeners.delete(listener)) continue;
      try {
        listener();
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
