// Human-friendly durations and sizes for the config file: operators write
// `5d` and `25MiB`, the code works in milliseconds and octets.

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1000,
  kib: 1024,
  m: 1_000_000,
  mb: 1_000_000,
  mib: 1024 * 1024,
  g: 1_000_000_000,
  gb: 1_000_000_000,
  gib: 1024 * 1024 * 1024,
};

/** Parses `250ms`, `30s`, `5m`, `2h`, `5d` or a plain number of milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

/** Parses `10485760`, `512KiB`, `25MiB`, `1GB` into octets. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(m[1]) * unit);
}
