// The dependency rules of ARCHITECTURE.md, checked on the source: who may import what.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';

const ROOT = join(import.meta.dirname, '..');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

const packages = [...readdirSync(join(ROOT, 'libs')).map((n) => `libs/${n}`), ...readdirSync(join(ROOT, 'services')).map((n) => `services/${n}`)];
const all = packages.flatMap((pkg) => sourceFiles(join(ROOT, pkg, 'src')).map((f) => ({ pkg, file: relative(ROOT, f), imports: importsOf(f) })));

const OWNERS: Record<string, string[]> = {
  '@nats-io/': ['libs/bus', 'libs/testkit'],
  ioredis: ['libs/store'],
  'openid-client': ['services/auth'],
  'oidc-provider': ['libs/testkit'],
  '@opentelemetry/': ['libs/telemetry'],
};

t.test('each infrastructure client is imported by its one wrapping package only', async (t) => {
  for (const { pkg, file, imports } of all) {
    for (const spec of imports) {
      for (const [prefix, owners] of Object.entries(OWNERS)) {
        if (spec.startsWith(prefix) && !owners.includes(pkg)) t.fail(`${file} imports ${spec} (only ${owners.join(', ')} may)`);
      }
    }
  }
  t.pass('checked');
});

t.test('services import libs, never each other (the CLI and demo compose them)', async (t) => {
  for (const { pkg, file, imports } of all) {
    if (!pkg.startsWith('services/') || pkg === 'services/cli' || pkg === 'services/demo') continue;
    // Test harnesses (imported by tests only) may start a sibling service to drive this one.
    if (/test-(support|harness)\.ts$/.test(file)) continue;
    for (const spec of imports) {
      for (const other of ['@portcullis/gateway', '@portcullis/auth', '@portcullis/session']) {
        if (spec === other && `services/${other.split('/')[1]}` !== pkg) t.fail(`${file} imports ${spec}`);
      }
    }
  }
  t.pass('checked');
});

t.test('pure libraries do no network I/O and import no infrastructure client', async (t) => {
  for (const { pkg, file, imports } of all) {
    if (!['libs/events', 'libs/protocol', 'libs/expressions', 'libs/config'].includes(pkg)) continue;
    for (const spec of imports) {
      // node:net is allowed: isIP and BlockList only parse addresses.
      if (/^(node:)?(http|https|dgram|tls|child_process)$/.test(spec)) t.fail(`${file} imports ${spec}`);
      if (spec.startsWith('@nats-io/') || spec === 'ioredis' || spec === 'undici' || spec === 'fastify') t.fail(`${file} imports ${spec}`);
    }
  }
  t.pass('checked');
});

t.test('the gateway never evaluates expressions or talks to an IdP on the request path', async (t) => {
  for (const { pkg, file, imports } of all) {
    if (pkg !== 'services/gateway') continue;
    for (const spec of imports) {
      if (spec === '@portcullis/expressions' || spec === 'openid-client') t.fail(`${file} imports ${spec}`);
    }
  }
  t.pass('checked');
});

t.test('every source file starts with a one-line comment saying what it is for', async (t) => {
  for (const { file } of all) {
    const first = readFileSync(join(ROOT, file), 'utf8').split('\n')[0] ?? '';
    t.ok(first.startsWith('//') || first.startsWith('#!'), file);
  }
});
