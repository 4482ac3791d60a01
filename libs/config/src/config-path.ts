// Builds problem paths (`providers[0].tls.cert_file`) and describes offending values in reasons.

/** `parent.key`, or `key` at the top level. */
export function joinKey(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/** `parent[index]`. */
export function joinIndex(parent: string, index: number): string {
  return `${parent}[${index}]`;
}

/** A short description of a value for "expected X, got Y" reasons. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** True for a mapping as produced by the YAML parser (not a list, not null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
