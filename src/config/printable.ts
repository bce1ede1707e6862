import type { Config } from './schema.js';

/** Keys whose values are secrets wherever they appear (auth passwords, tokens). */
const SECRET_KEY = /pass(word|phrase)?$|secret|token/i;
/** Paths of files that hold a secret (`pod.publisher.secretFile`) are not secrets themselves. */
const SECRET_PATH_KEY = /File$/;
/** ...except the names of environment variables that hold one (`tokenEnv`): a name is not a secret. */
const NAMES_A_VARIABLE = /Env$/;
export const REDACTED = '<redacted>';

/**
 * The effective config in the form a config file takes, so `config show` output passes
 * `config check`: next hops as their URLs, durations in ms and sizes in octets (both
 * valid input), and secrets replaced by REDACTED.
 */
export function printableConfig(config: Config): Record<string, unknown> {
  const plain = { ...config, routes: config.routes.map((r) => ({ ...r, nexthop: r.nexthop.url })) };
  return redact(plain) as Record<string, unknown>;
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && !SECRET_PATH_KEY.test(k) && !NAMES_A_VARIABLE.test(k) && (typeof v === 'string' || typeof v === 'number') ? REDACTED : redact(v)]),
  );
}
