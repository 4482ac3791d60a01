// Applies `PORTCULLIS_<PATH>` environment variables onto the parsed file, before validation (env wins).
import { isScalar, parseDocument } from 'yaml';
import type { ConfigProblem } from './config-problem.ts';
import { describeValue, isMapping, joinIndex, joinKey } from './config-path.ts';
import { allowedKeys } from './read-with-schema.ts';
import type { AnySpec, RuntimeObjectSpec, StringSpec } from './schema-kinds.ts';
import { suggestKey } from './suggest-key.ts';

const PREFIX = 'PORTCULLIS_';
/** Names the config file; not an override. */
const CONFIG_FILE_VAR = 'PORTCULLIS_CONFIG';
/** Set by the primary of gateway workers for each worker it forks (its index); not an override. */
export const WORKER_INDEX_VAR = 'PORTCULLIS_GATEWAY_WORKER';
const NULL_WORDS = new Set(['null', 'Null', 'NULL', '~']);
/**
 * The docker-link variables Kubernetes sets for every Service in the namespace (unless a pod says
 * `enableServiceLinks: false`): a Service named `portcullis-gateway` gives PORTCULLIS_GATEWAY_SERVICE_HOST,
 * PORTCULLIS_GATEWAY_PORT_9000_TCP_ADDR, ... Not overrides (those separate levels with `__`, and no
 * top-level key ends like this): taking them as mistakes would stop every pod at start.
 */
const SERVICE_LINK = /^PORTCULLIS(?:_[A-Z0-9]+)*_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$/;

/** What applying the environment did. */
export interface EnvOverrideResult {
  problems: ConfigProblem[];
  /** Config path → the env var that set it, to name the source of a later problem. */
  origins: Map<string, string>;
}

/**
 * Writes every `PORTCULLIS_*` variable into `raw` (mutated), creating missing mappings on the way.
 * Variables are applied shortest path first, so `PORTCULLIS_CLUSTER={}` never erases a deeper override.
 */
export function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: Record<string, string | undefined>,
  schema: RuntimeObjectSpec,
): EnvOverrideResult {
  const result: EnvOverrideResult = { problems: [], origins: new Map() };
  const vars = Object.entries(env)
    .filter((e): e is [string, string] => e[0].startsWith(PREFIX) && e[0] !== CONFIG_FILE_VAR && e[0] !== WORKER_INDEX_VAR && e[1] !== undefined && !SERVICE_LINK.test(e[0]))
    .map(([name, value]) => ({ name, value, segments: name.slice(PREFIX.length).split('__') }))
    .sort((a, b) => a.segments.length - b.segments.length || (a.name < b.name ? -1 : 1));
  for (const v of vars) applyOne(raw, schema, v.name, v.value, v.segments, result);
  return result;
}

function applyOne(
  root: Record<string, unknown>,
  schema: RuntimeObjectSpec,
  name: string,
  value: string,
  segments: string[],
  result: EnvOverrideResult,
): void {
  let node: Record<string, unknown> | unknown[] = root;
  let spec: AnySpec = schema;
  let path = '';
  const resolved: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] ?? '';
    const last = i === segments.length - 1;
    if (spec.kind === 'object' && isMapping(node)) {
      const key = allowedKeys(spec).find((k) => k.toUpperCase() === segment.toUpperCase());
      if (key === undefined) {
        unknownVar(name, segment, path, allowedKeys(spec), resolved, segments.slice(i + 1), result);
        return;
      }
      const fieldSpec = specOfKey(spec, key);
      const fieldPath = joinKey(path, key);
      resolved.push(key.toUpperCase());
      if (last) {
        const parsed = parseEnvValue(value, fieldSpec, name, result);
        if (parsed === INVALID) return;
        node[key] = parsed;
        dropInlineOrFileTwin(node, key, spec, path, result.origins);
        result.origins.set(fieldPath, name);
        return;
      }
      const child = descend(node, key, fieldSpec, fieldPath, name, result);
      if (child === undefined) return;
      node = child;
      spec = fieldSpec;
      path = fieldPath;
    } else if ((spec.kind === 'list' || spec.kind === 'stringList') && Array.isArray(node)) {
      if (!/^\d+$/.test(segment)) {
        unknownVar(name, segment, path, [], resolved, [], result);
        return;
      }
      const index = Number(segment);
      const itemPath = joinIndex(path, index);
      if (index >= node.length) {
        result.problems.push({
          path: `env ${name}`,
          reason: `${itemPath} does not exist (${path} has ${node.length} item${node.length === 1 ? '' : 's'})`,
          fix:
            node.length === 0
              ? `define ${itemPath} in the config file first; env vars can only override existing list items`
              : `use an index from 0 to ${node.length - 1}, or define ${itemPath} in the config file first`,
        });
        return;
      }
      resolved.push(segment);
      if (spec.kind === 'stringList') {
        if (!last) {
          unknownVar(name, segments[i + 1] ?? '', itemPath, [], resolved, [], result);
          return;
        }
        node[index] = value;
        result.origins.set(itemPath, name);
        return;
      }
      const itemSpec: RuntimeObjectSpec = spec.item;
      if (last) {
        const parsed = parseEnvValue(value, itemSpec, name, result);
        if (parsed === INVALID) return;
        node[index] = parsed;
        result.origins.set(itemPath, name);
        return;
      }
      const item: unknown = node[index];
      if (item === null || item === undefined) {
        node[index] = {};
      } else if (!isMapping(item)) {
        notAMapping(name, itemPath, item, result);
        return;
      }
      node = node[index] as Record<string, unknown>;
      spec = itemSpec;
      path = itemPath;
    } else {
      // A scalar has no keys below it.
      unknownVar(name, segment, path, [], resolved, [], result);
      return;
    }
  }
}

function specOfKey(spec: RuntimeObjectSpec, key: string): AnySpec {
  const direct = spec.fields[key];
  if (direct) return direct;
  // `<secret>_file`: a plain nullable path.
  const fileSpec: StringSpec = { kind: 'string', what: 'a file path', nullable: true };
  return fileSpec;
}

/** Returns the mapping or list under `key`, creating it when absent; undefined after a problem. */
function descend(
  node: Record<string, unknown>,
  key: string,
  spec: AnySpec,
  path: string,
  name: string,
  result: EnvOverrideResult,
): Record<string, unknown> | unknown[] | undefined {
  const child = node[key];
  if (spec.kind === 'list' || spec.kind === 'stringList') {
    if (child === undefined || child === null) return [];
    if (Array.isArray(child)) return child;
    notAMapping(name, path, child, result, 'a list');
    return undefined;
  }
  // Below a scalar nothing exists: the caller reports the next segment as unknown.
  if (spec.kind !== 'object') return {};
  if (child === undefined || child === null) {
    // Env may create a section the file lacks (e.g. `cluster`).
    const created: Record<string, unknown> = {};
    node[key] = created;
    return created;
  }
  if (isMapping(child)) return child;
  notAMapping(name, path, child, result);
  return undefined;
}

/** Setting `client_secret` by env removes a `client_secret_file` from the file (and vice versa): env wins. */
function dropInlineOrFileTwin(
  node: Record<string, unknown>,
  key: string,
  spec: RuntimeObjectSpec,
  path: string,
  origins: Map<string, string>,
): void {
  const base = key.endsWith('_file') ? key.slice(0, -'_file'.length) : key;
  const baseSpec = spec.fields[base];
  if (baseSpec?.kind !== 'string' || !baseSpec.secretFile) return;
  const twin = key === base ? `${base}_file` : base;
  // Both set by env is the operator's own conflict: keep both and let the reader report it.
  if (!origins.has(joinKey(path, twin))) delete node[twin];
}

const INVALID: unique symbol = Symbol('invalid env value');

/**
 * Turns the env text into a value for `spec`: strings are taken literally (only null/~ mean null),
 * numbers and booleans are YAML scalars, lists of strings are comma-separated, mappings are YAML.
 */
function parseEnvValue(value: string, spec: AnySpec, name: string, result: EnvOverrideResult): unknown {
  switch (spec.kind) {
    case 'string':
      // Secrets may start with characters YAML would treat as syntax (#, &, *, !), so no YAML here.
      return NULL_WORDS.has(value) ? null : value;
    case 'stringList':
      if (NULL_WORDS.has(value)) return null;
      return value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    case 'int':
    case 'bool': {
      const doc = parseDocument(value, { version: '1.2' });
      // Unparsable text stays a string, and the type check then says what was expected.
      if (doc.errors.length > 0) return value;
      if (doc.contents === null) return null;
      return isScalar(doc.contents) ? doc.contents.value : value;
    }
    case 'object':
    case 'list': {
      const doc = parseDocument(value, { version: '1.2' });
      if (doc.errors.length === 0) return doc.toJS();
      result.problems.push({
        path: `env ${name}`,
        reason: `is not valid YAML: ${(doc.errors[0]?.message ?? '').split('\n')[0]}`,
        fix: `set ${name} to a YAML flow value such as {} or null, or set the keys below it with separate ${name}__<KEY> variables`,
      });
      return INVALID;
    }
  }
}

function unknownVar(
  name: string,
  segment: string,
  path: string,
  candidates: string[],
  resolved: string[],
  rest: string[],
  result: EnvOverrideResult,
): void {
  const guess = suggestKey(segment, candidates);
  const suggestion = guess ? PREFIX + [...resolved, guess.toUpperCase(), ...rest].join('__') : undefined;
  result.problems.push({
    path: `env ${name}`,
    reason: `names no configuration key (nothing called "${segment}" ${path === '' ? 'at the top level' : `under ${path}`})${
      suggestion ? `; did you mean ${suggestion}?` : ''
    }`,
    fix: suggestion
      ? `rename it to ${suggestion}`
      : 'remove it, or correct the name: upper-case keys joined by "__", list indexes as numbers (e.g. PORTCULLIS_PROVIDERS__0__CLIENT_SECRET)',
  });
}

function notAMapping(name: string, path: string, found: unknown, result: EnvOverrideResult, expected = 'a mapping'): void {
  result.problems.push({
    path: `env ${name}`,
    reason: `cannot be applied: ${path} in the config file is ${describeValue(found)}, not ${expected}`,
    fix: `correct ${path} in the config file`,
  });
}
