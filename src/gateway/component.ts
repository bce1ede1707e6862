// The gateway is a list of components started in order and stopped in reverse: store
// and spool, the delivery queue, the SMTP listener, the admin listener; the PoD
// consumer and publisher and the IMP listener join as one entry each. /healthz reports
// every component.

/** A component's part of /healthz: `reason` says what is wrong when `ok` is false. */
export type ComponentHealth = { ok: boolean; reason?: string } & Record<string, unknown>;

export interface GatewayComponent {
  /** Its key in /healthz's `components`. */
  readonly name: string;
  start(): Promise<void>;
  /** Graceful: work in flight gets up to `graceMs` to finish. Safe to call after a failed start. */
  stop(graceMs: number): Promise<void>;
  health(): ComponentHealth;
}

/**
 * Starts `components` in order. If one fails, the ones already started are stopped
 * (in reverse, no grace) and the start error is thrown as it was.
 */
export async function startComponents(components: readonly GatewayComponent[]): Promise<void> {
  const started: GatewayComponent[] = [];
  try {
    for (const c of components) {
      started.push(c);
      await c.start();
    }
  } catch (err) {
    for (const c of started.reverse()) await c.stop(0).catch(() => undefined);
    throw err;
  }
}

/** Stops `components` in reverse order of the list. */
export async function stopComponents(components: readonly GatewayComponent[], graceMs: number): Promise<void> {
  for (const c of [...components].reverse()) await c.stop(graceMs);
}

/** Every component's health; `ok` only when all are. A health() that throws is not ok. */
export function componentsHealth(components: readonly GatewayComponent[]): { ok: boolean; components: Record<string, ComponentHealth> } {
  const report: Record<string, ComponentHealth> = {};
  let ok = true;
  for (const c of components) {
    let h: ComponentHealth;
    try {
      h = c.health();
    } catch (err) {
      h = { ok: false, reason: (err as Error).message ?? String(err) };
    }
    report[c.name] = h;
    ok &&= h.ok;
  }
  return { ok, components: report };
}
