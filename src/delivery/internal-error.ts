import type { AttemptSignal } from './deadline.js';

/**
 * An internal error of an attempt round (not a next hop's reply): the queue logs it at
 * error level and records it as an attempt, so it is retried with backoff and bounces at
 * the lifetime.
 */
export class QueueInternalError extends Error {
  constructor(
    message: string,
    readonly code: 'ERR_MAILBAG_REWRITE_SPLIT' | 'ERR_MAILBAG_ATTEMPT_DEADLINE' | 'ERR_MAILBAG_NO_RESULT',
  ) {
    super(message);
  }
}

/** `promise`, or a rejection with `onAbort()` once `signal` aborts (the promise runs on). */
export function untilAborted<T>(promise: Promise<T>, signal: AttemptSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e as Error);
      },
    );
  });
}
