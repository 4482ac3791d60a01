// Deep merge of JSON objects, used to combine scope-mapping results (later wins) and, by callers, claims.

// Keys that could reach or replace an object's prototype when copied onto a plain object.
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Merges `overlay` over `base` into a new object. Plain objects merge key by key, recursively;
 * arrays, scalars and null in `overlay` replace what `base` had; an `undefined` in `overlay` counts
 * as absent (JSON has no undefined). Neither input is mutated and the result shares no object or
 * array with them. `__proto__`, `constructor` and `prototype` keys are dropped at every depth.
 */
export function deepMerge(base: Record<string, unknown>, overlay: Record<string, unknown>): Record<string, unknown> {
  const result = copyPlainObject(base);
  for (const [key, value] of Object.entries(overlay)) {
    if (FORBIDDEN_KEYS.has(key) || value === undefined) continue;
    const existing = result[key];
    result[key] = isPlainObject(existing) && isPlainObject(value) ? deepMerge(existing, value) : copyValue(value);
  }
  return result;
}

/** True for `{}`-style objects (prototype Object.prototype or null), the only ones merged key by key. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function copyPlainObject(source: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (!FORBIDDEN_KEYS.has(key)) copy[key] = copyValue(value);
  }
  return copy;
}

function copyValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyValue);
  if (isPlainObject(value)) return copyPlainObject(value);
  return value;
}
