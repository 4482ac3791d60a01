// Walks raw parsed YAML along the schema: type checks, unknown keys, defaults, `*_file` secrets.
import type { ConfigProblem } from './config-problem.ts';
import { describeValue, isMapping, joinIndex, joinKey } from './config-path.ts';
import { readSecretFile } from './read-text-file.ts';
import type {
  AnySpec,
  BoolSpec,
  IntSpec,
  RuntimeListSpec,
  RuntimeObjectSpec,
  StringListSpec,
  StringSpec,
} from './schema-kinds.ts';
import { suggestKey } from './suggest-key.ts';

/**
 * Reads `raw` as described by `spec` and returns the value with defaults filled in. Every problem
 * is pushed to `problems`; a value with a problem comes back as undefined so later checks skip it.
 */
export function readWithSchema(raw: unknown, spec: RuntimeObjectSpec, problems: ConfigProblem[]): unknown {
  return readObject(raw, spec, '', problems);
}

/** The keys a mapping described by `spec` accepts, including `<secret>_file`. */
export function allowedKeys(spec: RuntimeObjectSpec): string[] {
  const keys: string[] = [];
  for (const [key, field] of Object.entries(spec.fields)) {
    keys.push(key);
    if (field.kind === 'string' && field.secretFile) keys.push(`${key}_file`);
  }
  return keys;
}

function readObject(raw: unknown, spec: RuntimeObjectSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === undefined || raw === null) {
    if (spec.default === null) return null;
    raw = {};
  }
  if (!isMapping(raw)) {
    problems.push({
      path: path || '(top level)',
      reason: `expected a mapping, got ${describeValue(raw)}`,
      fix: `write ${path || 'the file'} as ${spec.what}, one "key: value" per line indented under it`,
    });
    return undefined;
  }
  const allowed = allowedKeys(spec);
  for (const key of Object.keys(raw)) {
    if (allowed.includes(key)) continue;
    const guess = suggestKey(key, allowed);
    problems.push({
      path: joinKey(path, key),
      reason: `unknown key "${key}"${guess ? ` (did you mean "${guess}"?)` : ''}`,
      fix: guess ? `rename it to ${guess}` : `remove it; the keys allowed here are: ${allowed.join(', ')}`,
    });
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(spec.fields)) {
    out[key] = readField(raw, key, field, path, problems);
  }
  for (const [key, field] of Object.entries(spec.fields)) {
    // A derived default (application_slug ← name) needs the sibling already read.
    if (field.kind === 'string' && field.defaultFrom && raw[key] === undefined) {
      out[key] = out[field.defaultFrom];
    }
  }
  return out;
}

function readField(
  parent: Record<string, unknown>,
  key: string,
  spec: AnySpec,
  parentPath: string,
  problems: ConfigProblem[],
): unknown {
  const raw = parent[key];
  const path = joinKey(parentPath, key);
  switch (spec.kind) {
    case 'string': {
      if (!spec.secretFile) return readString(raw, spec, path, problems);
      const fileKey = `${key}_file`;
      return readSecret(raw, parent[fileKey], spec, path, joinKey(parentPath, fileKey), problems);
    }
    case 'int':
      return readInt(raw, spec, path, problems);
    case 'bool':
      return readBool(raw, spec, path, problems);
    case 'stringList':
      return readStringList(raw, spec, path, problems);
    case 'object':
      return readObject(raw, spec, path, problems);
    case 'list':
      return readList(raw, spec, path, problems);
  }
}

function readSecret(
  inline: unknown,
  file: unknown,
  spec: StringSpec,
  path: string,
  filePath: string,
  problems: ConfigProblem[],
): unknown {
  if (file === undefined || file === null) return readString(inline, spec, path, problems);
  const key = path.slice(path.lastIndexOf('.') + 1);
  if (inline !== undefined && inline !== null) {
    problems.push({
      path,
      reason: `both ${key} and ${key}_file are set`,
      fix: `remove one of them: ${key}_file to read the secret from a file, or ${key} to give it inline`,
    });
    return undefined;
  }
  if (typeof file !== 'string' || file === '') {
    problems.push({
      path: filePath,
      reason: `expected a file path, got ${describeValue(file)}`,
      fix: `set ${filePath} to the path of a file holding ${spec.what}`,
    });
    return undefined;
  }
  const read = readSecretFile(file);
  if (!read.ok) {
    problems.push({
      path: filePath,
      reason: `cannot read ${file}: ${read.message}`,
      fix: `make ${file} exist and be readable by the user running Portcullis, or correct ${filePath}`,
    });
    return undefined;
  }
  // As for an inline value: only whitespace is empty too.
  if (spec.required && read.text.trim() === '') {
    problems.push({ path: filePath, reason: `${file} is empty`, fix: `write ${spec.what} into ${file}` });
    return undefined;
  }
  return read.text;
}

function readString(raw: unknown, spec: StringSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === null && (spec.nullable || spec.default !== undefined || !spec.required)) {
    return spec.nullable ? null : nullProblem(spec, path, problems);
  }
  if (raw === undefined || raw === null) {
    if (spec.default !== undefined) return spec.default;
    if (spec.required) problems.push({ path, reason: 'is required', fix: `set ${path}${orFile(spec, path)} to ${describeTarget(spec)}` });
    // Otherwise defaultFrom fills it in after the siblings are read.
    return undefined;
  }
  if (typeof raw !== 'string') {
    const quoteHint = typeof raw === 'number' || typeof raw === 'boolean' ? `; quote it ("${String(raw)}") to keep it as text` : '';
    problems.push({
      path,
      reason: `expected a string, got ${describeValue(raw)}`,
      fix: `set ${path} to ${describeTarget(spec)}${quoteHint}`,
    });
    return undefined;
  }
  if (spec.required && raw.trim() === '') {
    problems.push({ path, reason: 'is empty', fix: `set ${path}${orFile(spec, path)} to ${describeTarget(spec)}` });
    return undefined;
  }
  if (spec.enum && !spec.enum.includes(raw)) {
    const guess = suggestKey(raw, spec.enum);
    problems.push({
      path,
      reason: `"${raw}" is not a valid value${guess ? ` (did you mean "${guess}"?)` : ''}`,
      fix: `set ${path} to one of: ${spec.enum.join(', ')}`,
    });
    return undefined;
  }
  return raw;
}

function readInt(raw: unknown, spec: IntSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === undefined) return spec.default;
  if (raw === null) return spec.nullable ? null : nullProblem(spec, path, problems);
  const fix = `set ${path} to a whole number from ${spec.min} to ${spec.max} (${spec.what})${spec.nullable ? ', or null' : ''}`;
  if (typeof raw !== 'number' || !Number.isInteger(raw)) {
    const unquoteHint = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? ', without quotes' : '';
    problems.push({ path, reason: `expected a whole number, got ${describeValue(raw)}`, fix: fix + unquoteHint });
    return undefined;
  }
  if (raw < spec.min || raw > spec.max) {
    problems.push({ path, reason: `${raw} is out of range (${spec.min}–${spec.max})`, fix });
    return undefined;
  }
  return raw;
}

function readBool(raw: unknown, spec: BoolSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === undefined) return spec.default;
  if (raw === null) return nullProblem(spec, path, problems);
  if (typeof raw !== 'boolean') {
    problems.push({
      path,
      // YAML 1.2 reads yes/no/on/off as strings, unlike YAML 1.1.
      reason: `expected true or false, got ${describeValue(raw)}`,
      fix: `set ${path} to true or false (${spec.what}), without quotes`,
    });
    return undefined;
  }
  return raw;
}

function readStringList(raw: unknown, spec: StringListSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === undefined) return spec.default === null ? null : [...spec.default];
  if (raw === null) return spec.nullable ? null : nullProblem(spec, path, problems);
  if (!Array.isArray(raw)) {
    problems.push({
      path,
      reason: `expected a list, got ${describeValue(raw)}`,
      fix: `set ${path} to ${spec.what}: a YAML list, in brackets or one "- item" per line`,
    });
    return undefined;
  }
  let ok = true;
  raw.forEach((item: unknown, i) => {
    if (typeof item === 'string' && item.trim() !== '') return;
    ok = false;
    const itemPath = joinIndex(path, i);
    problems.push({
      path: itemPath,
      reason: `expected a non-empty string, got ${describeValue(item)}`,
      fix: `set ${itemPath} to a non-empty string (quote it if YAML reads it as something else)`,
    });
  });
  return ok ? [...raw] : undefined;
}

function readList(raw: unknown, spec: RuntimeListSpec, path: string, problems: ConfigProblem[]): unknown {
  if (raw === undefined || raw === null) raw = [];
  if (!Array.isArray(raw)) {
    problems.push({
      path,
      reason: `expected a list, got ${describeValue(raw)}`,
      fix: `write ${path} as ${spec.what}, each item starting with "- "`,
    });
    return undefined;
  }
  if (raw.length < spec.minItems) {
    problems.push({
      path,
      reason: `at least ${spec.minItems} item${spec.minItems === 1 ? ' is' : 's are'} required, found ${raw.length}`,
      fix: `add ${spec.what} under ${path}, each an item starting with "- "`,
    });
  }
  return raw.map((item: unknown, i) => readObject(item, spec.item, joinIndex(path, i), problems));
}

/** An explicit null on a key that cannot be null: most likely an intent to turn something off that cannot be. */
function nullProblem(spec: StringSpec | IntSpec | BoolSpec | StringListSpec, path: string, problems: ConfigProblem[]): undefined {
  const byDefault = spec.default === undefined ? '' : `remove ${path} to get the default (${JSON.stringify(spec.default)}), or `;
  problems.push({ path, reason: 'may not be null', fix: `${byDefault}set ${path} to ${spec.what}` });
  return undefined;
}

function describeTarget(spec: StringSpec): string {
  return spec.enum ? `one of: ${spec.enum.join(', ')}` : spec.what;
}

/** " (or client_secret_file)" for secrets, so the operator learns the file alternative where it matters. */
function orFile(spec: StringSpec, path: string): string {
  return spec.secretFile ? ` (or ${path.slice(path.lastIndexOf('.') + 1)}_file)` : '';
}
