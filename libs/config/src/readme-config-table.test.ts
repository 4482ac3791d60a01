// The root README's configuration reference (the table and the cluster keys) names every schema key with the schema's default.
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { AnySpec, RuntimeObjectSpec } from './schema-kinds.ts';
import { CONFIG_SCHEMA, DEFAULT_STRIP_HEADERS } from './schema.ts';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('### Configuration'), readme.indexOf('### What it does'));

/** Every key below `spec` (lists as `[]`), with its spec. */
function schemaKeys(spec: RuntimeObjectSpec, prefix = ''): Map<string, AnySpec> {
  const out = new Map<string, AnySpec>();
  for (const [key, field] of Object.entries(spec.fields)) {
    const path = prefix + key;
    if (field.kind === 'list') {
      out.set(`${path}[]`, field);
      for (const [k, v] of schemaKeys(field.item, `${path}[].`)) out.set(k, v);
    } else {
      out.set(path, field);
      if (field.kind === 'object') for (const [k, v] of schemaKeys(field, `${path}.`)) out.set(k, v);
    }
  }
  return out;
}
const schema = schemaKeys(CONFIG_SCHEMA);

/** Table rows: key (a `` `a` / `b` `` cell names siblings) → the default cell. */
const rows = new Map<string, string>();
for (const line of section.split('\n')) {
  const m = /^\| (`[^|]+`) \| ([^|]+) \|/.exec(line);
  if (!m) continue;
  const names = [...m[1]!.matchAll(/`([^`]+)`/g)].map((n) => n[1]!);
  const first = names[0]!;
  const parent = first.slice(0, first.lastIndexOf('.') + 1);
  rows.set(first, m[2]!.trim());
  for (const sibling of names.slice(1)) rows.set(parent + sibling, m[2]!.trim());
}

/** What the README must write in the default cell for a spec. */
function documentedDefault(spec: AnySpec): string | null {
  switch (spec.kind) {
    case 'object':
    case 'list':
      return null;
    case 'string':
      if (spec.default !== undefined) return spec.default === null ? '`null`' : `\`${spec.default === '' ? '""' : spec.default}\``;
      if (spec.required) return 'required';
      return null;
    case 'int':
    case 'bool':
      return `\`${spec.default}\``;
    case 'stringList':
      if (spec.default === null) return '`null`';
      return null;
  }
}

/** Keys described elsewhere than in the table: the cluster block has its own paragraph; list items as `{name, expression}`. */
const inParagraph = (key: string) => key.startsWith('cluster.') || key.startsWith('providers[].scope_mappings[].');

t.test('every row of the configuration table is a schema key', async (t) => {
  t.ok(rows.size > 30, `the table was found (${rows.size} rows)`);
  for (const key of rows.keys()) t.ok(schema.has(key), `${key} is a configuration key`);
});

t.test('every schema key is in the table or the cluster keys paragraph', async (t) => {
  for (const key of schema.keys()) {
    const spec = schema.get(key)!;
    if (spec.kind === 'object' && key !== 'cluster') continue;
    if (inParagraph(key)) {
      const leaf = key.slice(key.lastIndexOf('.') + 1).replace('[]', '');
      t.match(section, new RegExp(`(?<![a-z_])${leaf}(?![a-z_])`), `${key} is named in the README`);
      continue;
    }
    t.ok(rows.has(key), `${key} has a row in the configuration table`);
  }
});

t.test('the table gives the schema default of every key', async (t) => {
  for (const [key, cell] of rows) {
    const spec = schema.get(key);
    if (!spec) continue;
    if (spec.kind === 'string' && spec.defaultFrom) {
      t.equal(cell, `the ${spec.defaultFrom}`, `${key} defaults to ${spec.defaultFrom}`);
      continue;
    }
    if (spec.kind === 'stringList' && spec.default !== null) {
      const listed = key.endsWith('strip_headers')
        ? [...section.matchAll(/`strip_headers` defaults to ([^.]+)\./g)].map((m) => m[1]!.replace(/`/g, ''))[0]
        : cell.replace(/^`\[?|\]?`$/g, '');
      const want = spec.default.join(', ');
      t.equal(listed?.replace(/\s+/g, ' '), key.endsWith('strip_headers') ? DEFAULT_STRIP_HEADERS.join(', ') : want, `${key} default`);
      continue;
    }
    if (spec.kind === 'object' && key === 'cluster') {
      t.equal(cell, 'absent', 'cluster is absent by default');
      continue;
    }
    const want = documentedDefault(spec);
    if (want === null) continue;
    t.equal(cell, want, `${key} default`);
  }
});

t.test('the table gives the schema bounds of every int key it names bounds for', async (t) => {
  let checked = 0;
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \|[^|]+\|[^|]*\((?:[a-z]+, )?(\d[\d ]*) – (\d[\d ]*)\)/.exec(line);
    if (!m) continue;
    const spec = schema.get(m[1]!);
    if (spec?.kind !== 'int') {
      t.fail(`${m[1]} has bounds in the README but is not an int key`);
      continue;
    }
    t.same([Number(m[2]!.replace(/ /g, '')), Number(m[3]!.replace(/ /g, ''))], [spec.min, spec.max], `${m[1]} bounds`);
    checked++;
  }
  t.ok(checked >= 4, `bounds found (${checked})`);
});

t.test('the cluster keys paragraph gives the schema defaults it names', async (t) => {
  const para = section.slice(section.indexOf('*Cluster keys*'));
  const cluster = CONFIG_SCHEMA.fields.cluster as RuntimeObjectSpec;
  const nats = cluster.fields.nats as RuntimeObjectSpec;
  const redis = cluster.fields.redis as RuntimeObjectSpec;
  const defaultOf = (spec: AnySpec | undefined) => (spec && 'default' in spec ? spec.default : undefined);
  const documented = [...para.matchAll(/`([a-z_.]+)`\s*\(`([^`]+)`\)/g)].map((m) => [m[1]!, m[2]!] as const);
  t.ok(documented.length >= 5, 'defaults found');
  for (const [key, text] of documented) {
    const leaf = key.slice(key.lastIndexOf('.') + 1);
    const spec = key.includes('redis') || !(leaf in nats.fields) ? (redis.fields[leaf] ?? nats.fields[leaf]) : nats.fields[leaf];
    const value = defaultOf(spec);
    const shown = Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
    t.equal(text, shown, `${key} default`);
  }
});
