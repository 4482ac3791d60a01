// infra/docker/Dockerfile and .dockerignore: stages, non-root user, healthcheck, ports and entrypoint, checked without a Docker engine.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { getFreePort } from '@portcullis/testkit';

const ROOT = join(import.meta.dirname, '..', '..');

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  instructions: Instruction[];
}

/** Parses a Dockerfile into stages: line continuations joined, comments dropped, ARG before FROM substituted. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`cannot parse Dockerfile line: ${line}`);
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!;
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) throw new Error(`bad FROM: ${args}`);
      const from = f[1]!.replace(/\$\{(\w+)\}/g, (_s, name: string) => globalArgs[name] ?? '');
      stages.push({ from, name: f[2] ?? String(stages.length), instructions: [] });
    } else if (stages.length === 0 && keyword === 'ARG') {
      const [name, value] = args.split('=');
      globalArgs[name!] = value ?? '';
    } else {
      stages.at(-1)?.instructions.push({ keyword, args });
    }
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'infra/docker/Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
/** Instructions of a stage including those it inherits from its FROM stage chain. */
const effective = (name: string): Instruction[] => {
  const s = stage(name);
  const parent = stages.find((x) => x.name === s.from);
  return [...(parent ? effective(parent.name) : []), ...s.instructions];
};
const last = (name: string, keyword: string): string | undefined => effective(name).filter((i) => i.keyword === keyword).at(-1)?.args;
const jsonArgs = (text: string | undefined): string[] => JSON.parse(text ?? 'null') as string[];

t.test('stages: deps installs production dependencies, runtime is the default (last) target, demo is a separate target', async (t) => {
  t.same(
    stages.map((s) => s.name),
    ['deps', 'app', 'demo', 'runtime'],
  );
  t.equal(stages.at(-1)?.name, 'runtime', 'a plain `docker build` produces the runtime image, not the demo');
  for (const s of ['deps', 'app']) t.match(stage(s).from, /^node:24\.\d+\.\d+-bookworm-slim$/, `${s} on a pinned node 24 (LTS) slim image`);
  const install = stage('deps').instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' ');
  t.match(install, /npm ci --omit=dev/);
  const copies = stage('app').instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args.split(/\s+/).slice(-2).join(' '));
  t.same(copies.sort(), ['./libs', './node_modules', './package.json', './services'].map((d) => `/app/${d.slice(2)} ${d}`).sort(), 'runtime copies only libs, services, node_modules and package.json');
});

t.test('runtime: non-root uid 10001, NODE_ENV=production, ports 9000 9443 9300, entrypoint and default command', async (t) => {
  const user = last('runtime', 'USER') ?? '';
  t.match(user, /^10001(:10001)?$/);
  t.notMatch(user, /^(0|root)\b/);
  t.match(effective('runtime').filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' '), /NODE_ENV=production/);
  t.equal(last('runtime', 'WORKDIR'), '/app');
  t.same(last('runtime', 'EXPOSE')?.split(/\s+/), ['9000', '9443', '9300']);
  t.same(jsonArgs(last('runtime', 'ENTRYPOINT')), ['node', 'services/cli/bin/portcullis.mjs']);
  t.same(jsonArgs(last('runtime', 'CMD')), ['run', '--config', '/etc/portcullis/portcullis.yaml', '--services', 'all']);
  t.same(jsonArgs(last('demo', 'ENTRYPOINT')), ['npm', 'start']);
});

t.test('the ENTRYPOINT command runs from the repository root, as it does from /app in the image', async (t) => {
  const [cmd, ...args] = jsonArgs(last('runtime', 'ENTRYPOINT'));
  const version = JSON.parse(readFileSync(join(ROOT, 'services/cli/package.json'), 'utf8')).version as string;
  const r = spawnSync(cmd!, [...args, '--version'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_ENV: 'production' } });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), version);
});

t.test('tsx needs a writable TMPDIR (hence the tmpfs / emptyDir under a read-only root FS)', async (t) => {
  const [cmd, ...args] = jsonArgs(last('runtime', 'ENTRYPOINT'));
  const writable = mkdtempSync(join(tmpdir(), 'portcullis-tmpdir-'));
  t.teardown(() => rmSync(writable, { recursive: true, force: true }));
  // A path below a regular file can never be created, like any path on a read-only root FS.
  const unwritable = join(ROOT, 'package.json', 'tmp');
  const ok = spawnSync(cmd!, [...args, '--version'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TMPDIR: writable } });
  t.equal(ok.status, 0, ok.stderr);
  t.ok(readdirSync(writable).some((d) => d.startsWith('tsx')), 'tsx wrote its cache under TMPDIR');
  const broken = spawnSync(cmd!, [...args, '--version'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TMPDIR: unwritable } });
  t.not(broken.status, 0, 'without a writable TMPDIR the process cannot start');
});

t.test('HEALTHCHECK: node fetch of /ready?scope=listeners on the metrics port (the real listeners, not the ping that answers before them), healthy only on 200', async (t) => {
  const hc = last('runtime', 'HEALTHCHECK') ?? '';
  t.match(hc, /--interval=\d+s/);
  const exec = JSON.parse(hc.slice(hc.indexOf('CMD') + 3).trim()) as string[];
  t.equal(exec[0], 'node', 'no curl or wget in the slim image');
  const script = exec.at(-1)!;
  t.match(script, '/ready?scope=listeners');
  t.match(script, "|| '0.0.0.0:9300'", 'without the variable: the metrics listener\'s default, 9300');
  t.notMatch(script, '/outpost.goauthentik.io/ping', 'not the ping: the metrics listener answers it before the gateway listeners are bound, and while they are closed');
  // Run the very command against a local server standing in for the metrics port, placed by the variable.
  let status = 200;
  const server = createServer((req, res) => res.writeHead(req.url === '/ready?scope=listeners' ? status : 404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // Asynchronously: the server answering it lives on this very event loop.
  const probe = (metrics: string): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      const env = { ...process.env, PORTCULLIS_OUTPOST__LISTEN__METRICS: metrics };
      let stderr = '';
      const child = execFile('node', [...exec.slice(1, -1), script], { timeout: 20_000, env });
      child.stderr?.on('data', (d: Buffer) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
  t.equal((await probe(`127.0.0.1:${port}`)).code, 0, '200 → healthy');
  t.equal((await probe(`0.0.0.0:${port}`)).code, 0, 'a wildcard address is asked on 127.0.0.1');
  t.equal((await probe(`:${port}`)).code, 0, 'so is an address with no host');
  t.equal((await probe(`[::]:${port}`)).code, 0, 'and the IPv6 wildcard');
  const other = await probe(`127.0.0.1:${await getFreePort()}`);
  t.equal(other.code, 1, 'another port from the variable is asked (nothing listens there) → unhealthy');
  t.match(other.stderr, /ECONNREFUSED/, 'and says why');
  const off = await probe('null');
  t.equal(off.code, 1, 'metrics listener off → unhealthy');
  t.match(off.stderr, /PORTCULLIS_OUTPOST__LISTEN__METRICS=null is off or not host:port; .*override HEALTHCHECK/, 'naming the fix');
  status = 503;
  const starting = await probe(`127.0.0.1:${port}`);
  t.equal(starting.code, 1, '503 (starting or stopping) → unhealthy');
  t.match(starting.stderr, /answered 503/);
  status = 204;
  t.equal((await probe(`127.0.0.1:${port}`)).code, 1, 'only 200 counts');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.equal((await probe(`127.0.0.1:${port}`)).code, 1, 'nothing listening → unhealthy');
});

t.test('.dockerignore keeps node_modules, VCS data, tests and their artifacts out of the build context', async (t) => {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const p of ['**/node_modules', '.git', 'test', '**/*.test.ts', '**/test-harness.ts', '**/*-contract.ts', '.tap', 'coverage', 'test/artifacts', '.tmp']) t.ok(patterns.includes(p), `ignores ${p}`);
  for (const p of patterns) t.notMatch(p, /^!?(libs|services|package\.json|package-lock\.json)\/?$/, `${p} does not drop what the image needs`);
});

t.test('npm ci --omit=dev is enough: runtime code imports no package that only dev dependencies bring', async (t) => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  /** Whether a bare import from workspace `ws` resolves to a dev-only package: its own node_modules first, then the root's. */
  const isDevOnly = (ws: string, name: string): boolean => (lock.packages[`${ws}/node_modules/${name}`] ?? lock.packages[`node_modules/${name}`])?.dev === true;
  const files: string[] = [];
  for (const top of ['libs', 'services']) {
    for (const pkg of readdirSync(join(ROOT, top))) {
      const src = join(ROOT, top, pkg, 'src');
      const walk = (dir: string): void => {
        for (const name of readdirSync(dir)) {
          const full = join(dir, name);
          if (statSync(full).isDirectory()) walk(full);
          else if (name.endsWith('.ts') && !/(\.test|-contract)\.ts$|^test-harness\.ts$/.test(name)) files.push(full);
        }
      };
      try {
        walk(src);
      } catch {
        // a package without src/
      }
    }
  }
  t.ok(files.length > 20, 'runtime sources found');
  const offenders: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // Value imports only: `import type` is erased and never loads the package.
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^'.][^']*)'|\bimport\(\s*'([^'.][^']*)'\s*\)/gm)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('node:')) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      const ws = file.slice(ROOT.length + 1).split('/').slice(0, 2).join('/');
      if (isDevOnly(ws, name)) offenders.push(`${file.slice(ROOT.length + 1)} imports ${name}`);
    }
  }
  t.same(offenders, [], 'no runtime import of a dev-only package');
});
