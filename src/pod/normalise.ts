import { PodError } from './errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

/**
 * Quirks of real PoD events, fixed before schema validation so the document's schemas stay
 * the contract. Normalisation only fills in and retypes; it never drops a member, so the
 * stored event still holds everything the agent sent. The input is not modified.
 */

/** Newer agents (PPS 8.21+) send `metadata.origin.data` instead of `pps{}`. */
function withPps(event: JsonObject, members: readonly string[]): JsonObject {
  if (event['pps'] !== undefined) return event;
  const metadata = event['metadata'];
  const origin = isJsonObject(metadata) ? metadata['origin'] : undefined;
  const data = isJsonObject(origin) ? origin['data'] : undefined;
  if (!isJsonObject(data)) return event;
  const pps: JsonObject = {};
  for (const k of members) if (data[k] !== undefined) pps[k] = data[k]!;
  return { ...event, pps };
}

/** `"120812"` and `120812` alike; anything else is not a count sendmail would print. */
function asInteger(value: JsonValue, path: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^\s*-?\d{1,15}\s*$/.test(value)) return Number(value);
  throw new PodError('ERR_POD_NORMALISE', `${path} is ${JSON.stringify(value).slice(0, 40)}, not an integer`);
}

// Strings in newer maillog events, numbers in older ones (and in the document's schema).
const MAILLOG_INTEGERS = ['pri', 'sizeBytes', 'nrcpts', 'class'] as const;

export function normaliseMaillog(event: JsonObject): JsonObject {
  let out = withPps(event, ['agent', 'cid']);
  const sm = out['sm'];
  if (!isJsonObject(sm)) return out; // the schema says why
  let fixed: JsonObject | undefined;
  for (const k of MAILLOG_INTEGERS) {
    const v = sm[k];
    if (v === undefined || (typeof v === 'number' && Number.isInteger(v))) continue;
    fixed ??= { ...sm };
    fixed[k] = asInteger(v, `sm.${k}`);
  }
  // Newer agents put tls{} beside sm{}; the document has it under sm. The top-level copy stays.
  const tls = out['tls'];
  if (sm['tls'] === undefined && isJsonObject(tls)) {
    fixed ??= { ...sm };
    fixed['tls'] = tls;
  }
  if (fixed) out = { ...out, sm: fixed };
  return out;
}

function asBoolean(value: JsonValue): JsonValue {
  if (typeof value !== 'string') return value;
  const lower = value.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : value;
}

export function normaliseMessage(event: JsonObject): JsonObject {
  const out = withPps(event, ['agent', 'cid', 'version']);
  const filter = out['filter'];
  const actions = isJsonObject(filter) ? filter['actions'] : undefined;
  if (!isJsonObject(filter) || !Array.isArray(actions)) return out;
  if (!actions.some((a) => isJsonObject(a) && typeof a['isFinal'] === 'string')) return out;
  // Some agents send isFinal as "True"/"False".
  const fixedActions = actions.map((a) => (isJsonObject(a) && a['isFinal'] !== undefined ? { ...a, isFinal: asBoolean(a['isFinal']!) } : a));
  return { ...out, filter: { ...filter, actions: fixedActions } };
}
