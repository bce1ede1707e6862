/**
 * Connections per client address per time window, counted as Postfix's anvil does
 * (smtpd_client_connection_rate_limit): a window opens with a client's first
 * connection and lasts `windowMs`; within it at most `limit` connections are admitted.
 * Refused attempts count too, so a client hammering the port stays refused until its
 * window ends. Memory is one small entry per address seen in the last window.
 */
export class ConnectionRateLimit {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private nextSweep = 0;

  constructor(
    /** Connections admitted per window; 0 admits every connection. */
    readonly limit: number,
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one connection from `ip`; false when it is over the limit. */
  admit(ip: string): boolean {
    if (this.limit <= 0) return true;
    const now = this.now();
    this.sweep(now);
    let w = this.windows.get(ip);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(ip, w);
    }
    w.count++;
    return w.count <= this.limit;
  }

  /** Addresses with a window still open (for tests and introspection). */
  get tracked(): number {
    return this.windows.size;
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.windowMs;
    for (const [ip, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(ip);
  }
}
