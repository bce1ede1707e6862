import { createHash } from 'node:crypto';

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An array index ("0", "7", "42"): JavaScript objects list such keys first, in numeric order. */
function isIndexKey(k: string): boolean {
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(?:0|[1-9]\d{0,9})$/.test(k) && Number(k) < 4294967295;
}

/**
 * The key order of the canonical form: sorted, except that array-index keys come first in
 * numeric order, as in every object JavaScript builds. That is the order the first
 * implementation (a sorted copy written by JSON.stringify) produced, and stored content
 * hashes depend on it.
 */
function orderedKeys(value: JsonObject): string[] {
  const keys = Object.keys(value).sort();
  if (!keys.some(isIndexKey)) return keys;
  const index = keys.filter(isIndexKey).sort((a, b) => Number(a) - Number(b));
  return [...index, ...keys.filter((k) => !isIndexKey(k))];
}

/** `"key":` for keys seen before: events of one kind share most of their keys. */
const keyPrefixes = new Map<string, string>();

function keyPrefix(k: string): string {
  let p = keyPrefixes.get(k);
  if (p === undefined) {
    p = `${JSON.stringify(k)}:`;
    if (keyPrefixes.size < 10_000) keyPrefixes.set(k, p);
  }
  return p;
}

/**
 * JSON with object keys in a fixed order at every level, so two serialisations of one event
 * (other key order, other whitespace) give the same text and hash. Written in one pass,
 * without building a sorted copy (the hot path of every ingested event).
 */
export function canonicalJson(value: JsonValue): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) s += (i ? ',' : '') + canonicalJson(value[i]!);
    return `${s}]`;
  }
  const keys = orderedKeys(value);
  let s = '{';
  for (let i = 0; i < keys.length; i++) s += (i ? ',' : '') + keyPrefix(keys[i]!) + canonicalJson(value[keys[i]!]!);
  return `${s}}`;
}

/**
 * The canonical JSON of `value`, and of `value` without its member `omit`, in one pass
 * (the stored event and its content identity, which leaves out `ts`).
 */
export function canonicalJsonPair(value: JsonObject, omit: string): { full: string; without: string } {
  let full = '{';
  let without = '{';
  for (const k of orderedKeys(value)) {
    const member = keyPrefix(k) + canonicalJson(value[k]!);
    full += (full.length > 1 ? ',' : '') + member;
    if (k !== omit) without += (without.length > 1 ? ',' : '') + member;
  }
  return { full: `${full}}`, without: `${without}}` };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
