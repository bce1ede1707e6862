import type { Config } from './schema.js';

/**
 * Keys whose values are secrets wherever they appear: auth passwords, tokens, and what a
 * rewrite module's free-form options may hold (API keys, private keys, credentials).
 */
const SECRET_KEY = /pass(word|phrase)?$|secret|token|credential|api[-_]?key|private[-_]?key/i;
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

function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !SECRET_PATH_KEY.test(key) && !NAMES_A_VARIABLE.test(key);
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isSecretKey(k) ? redactAll(v) : redact(v)]));
}

/** Under a secret's key every string and number is the secret or a part of it (a list of tokens, nested credentials). */
function redactAll(value: unknown): unknown {
  if (typeof value === 'string' || typeof value === 'number') return REDACTED;
  if (Array.isArray(value)) return value.map(redactAll);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactAll(v)]));
}
