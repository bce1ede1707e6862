import { createHash } from 'node:crypto';

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy with every object's keys inserted in sorted order. */
function sortedCopy(value: JsonValue): JsonValue {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out: JsonValue[] = new Array<JsonValue>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = sortedCopy(value[i]!);
    return out;
  }
  // Null prototype: a "__proto__" member stays a member instead of setting the prototype.
  const out = Object.create(null) as JsonObject;
  for (const k of Object.keys(value).sort()) out[k] = sortedCopy(value[k]!);
  return out;
}

/**
 * JSON with object keys in a fixed order at every level, so two serialisations of one event
 * (other key order, other whitespace) give the same text and hash. Sorting a copy and letting
 * the native JSON.stringify write it is about three times faster than writing it in script.
 */
export function canonicalJson(value: JsonValue): string {
  return JSON.stringify(sortedCopy(value));
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
