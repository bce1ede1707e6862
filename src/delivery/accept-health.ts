import type { AcceptEnvelope, IncomingMessage } from './accept.js';
import { AcceptPath } from './accept.js';
import type { ImpOrigin } from '../store/queue-store.js';

/** This many accepts in a row failing on local storage make the accept path unhealthy. */
export const ACCEPT_FAILURES_UNHEALTHY = 3;

export interface AcceptHealth {
  ok: boolean;
  reason?: string;
  /** Accepts that failed on local storage (spool or store) since the last one that succeeded. */
  failedInARow: number;
  lastError?: string;
}

/**
 * The accept path that remembers whether it works. Opening the spool file and the
 * durable commit fail only on local trouble (disk full, read-only file system, store
 * errors), never because of the client, whose faults (disconnects, size, smuggling)
 * happen in between and end in abort(). When the last ACCEPT_FAILURES_UNHEALTHY of
 * them failed and none succeeded since, every client is getting a 4xx: /healthz says
 * so until an accept succeeds again.
 */
export class WatchedAcceptPath extends AcceptPath {
  private failedInARow = 0;
  private lastError: string | undefined;

  override async open(envelope: AcceptEnvelope, now = Date.now()): Promise<IncomingMessage> {
    try {
      return await super.open(envelope, now);
    } catch (err) {
      this.failed(err);
      throw err;
    }
  }

  override async commit(m: IncomingMessage, extra: { imp?: ImpOrigin } = {}): Promise<{ qid: string; size: number }> {
    try {
      const done = await super.commit(m, extra);
      this.failedInARow = 0;
      this.lastError = undefined;
      return done;
    } catch (err) {
      this.failed(err);
      throw err;
    }
  }

  health(): AcceptHealth {
    const state = { failedInARow: this.failedInARow, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}) };
    if (this.failedInARow < ACCEPT_FAILURES_UNHEALTHY) return { ok: true, ...state };
    return {
      ok: false,
      reason: `the last ${this.failedInARow} accepts failed with 451 (spool or store: ${this.lastError}) and none succeeded since`,
      ...state,
    };
  }

  private failed(err: unknown): void {
    this.failedInARow++;
    const e = err as { code?: string; message?: string };
    this.lastError = e.code && !String(e.message).includes(e.code) ? `${e.code}: ${e.message}` : String(e.message ?? err);
  }
}
