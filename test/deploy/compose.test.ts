// infra/compose: the full-cluster compose file validated by docker-compose (no engine needed), its topology, and the files it mounts.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { readDemoServerSettings } from '../../infra/compose/demo-servers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const COMPOSE_DIR = join(ROOT, 'infra', 'compose');
const CLUSTER = 'infra/compose/compose.yaml';
const OBSERVABILITY = 'infra/observability/compose.observability.yaml';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
  volumes?: Array<string | { type?: string; source?: string }>;
  environment?: Record<string, string>;
  read_only?: boolean;
  stop_grace_period?: string;
}

function dockerCompose(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('docker-compose', args, { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

const compose = parseYaml(readFileSync(join(ROOT, CLUSTER), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const named = (re: RegExp) => Object.keys(services).filter((n) => re.test(n));

t.test('docker-compose validates the cluster file, the observability file, and both combined', async (t) => {
  for (const files of [[CLUSTER], [OBSERVABILITY], [CLUSTER, OBSERVABILITY]]) {
    const r = dockerCompose(...files.flatMap((f) => ['-f', f]), 'config', '-q');
    t.equal(r.status, 0, `${files.join(' + ')}: ${r.stderr}`);
  }
});

t.test('topology: 3 NATS, Redis, 3 gateways, 2 auth, 2 session, nginx, IdP and upstream', async (t) => {
  t.same(named(/^nats-\d+$/), ['nats-1', 'nats-2', 'nats-3']);
  t.same(named(/^gateway-\d+$/), ['gateway-1', 'gateway-2', 'gateway-3']);
  t.same(named(/^auth-\d+$/), ['auth-1', 'auth-2']);
  t.same(named(/^session-\d+$/), ['session-1', 'session-2']);
  for (const s of ['redis', 'nginx', 'idp', 'upstream']) t.ok(services[s], s);
  for (const role of ['gateway', 'auth', 'session']) {
    for (const name of named(new RegExp(`^${role}-\\d+$`))) {
      t.same(services[name]?.command?.slice(-2), ['--services', role], `${name} runs only the ${role} role`);
      t.equal(services[name]?.read_only, true, `${name} has a read-only root FS`);
      for (const dep of ['nats-1', 'nats-2', 'nats-3', 'redis']) t.equal(services[name]?.depends_on?.[dep]?.condition, 'service_healthy', `${name} waits for ${dep}`);
    }
  }
  for (const g of named(/^gateway-\d+$/)) t.equal(services.nginx?.depends_on?.[g]?.condition, 'service_healthy', `nginx waits for ${g}`);
});

t.test('every service has a healthcheck and an image that is pinned or built here', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    t.ok(s.healthcheck?.test && s.healthcheck.test.length > 1, `${name} has a healthcheck`);
    if (s.build) t.ok(s.image?.startsWith('portcullis:'), `${name} is built from infra/docker/Dockerfile`);
    else t.match(s.image ?? '', /^[\w./-]+:\d+\.\d+\.\d+(-[\w.]+)?$/, `${name} pins an exact version`);
  }
});

t.test('Portcullis services are healthy when /ready says 200 (listeners bound, NATS and Redis answering): it gates nginx and the start order, and compose restarts nothing for it', async (t) => {
  for (const name of named(/^(gateway|auth|session)-\d+$/)) {
    const test = services[name]?.healthcheck?.test ?? [];
    const script = test.at(-1) ?? '';
    t.match(script, "fetch('http://127.0.0.1:9300/ready')", `${name}: the whole /ready`);
    t.notMatch(script, '/outpost.goauthentik.io/ping', `${name}: not the ping, which answers before the gateway listens`);
  }
});

t.test('every bind-mounted file and secret exists (paths resolved by docker-compose, observability included)', async (t) => {
  const r = dockerCompose('-f', CLUSTER, '-f', OBSERVABILITY, 'config');
  t.equal(r.status, 0, r.stderr);
  const merged = parseYaml(r.stdout) as { services: Record<string, Service>; secrets?: Record<string, { file?: string }> };
  const sources: string[] = [];
  for (const s of Object.values(merged.services)) {
    for (const v of s.volumes ?? []) {
      const source = typeof v === 'string' ? v.split(':')[0]! : v.type === 'bind' ? (v.source ?? '') : '';
      if (source.startsWith('/')) sources.push(source);
    }
  }
  for (const sec of Object.values(merged.secrets ?? {})) if (sec.file) sources.push(sec.file);
  t.ok(sources.some((s) => s.endsWith('infra/observability/prometheus.yml')), 'observability mounts resolve to infra/observability (.env)');
  t.ok(sources.length >= 10, 'bind mounts found');
  for (const s of sources) t.ok(existsSync(s), `${s} exists`);
});

t.test('nats.conf: valid for nats-server, JetStream on, routes to all three nodes', async (t) => {
  const r = spawnSync('nats-server', ['-t', '-c', join(COMPOSE_DIR, 'nats.conf')], { encoding: 'utf8', env: { ...process.env, NATS_SERVER_NAME: 'nats-1' } });
  t.equal(r.status, 0, r.stderr);
  const conf = readFileSync(join(COMPOSE_DIR, 'nats.conf'), 'utf8');
  t.match(conf, /jetstream\s*\{/);
  for (const n of [1, 2, 3]) t.match(conf, `nats-route://nats-${n}:6222`);
  for (const n of [1, 2, 3]) t.equal(services[`nats-${n}`]?.environment?.NATS_SERVER_NAME, `nats-${n}`);
});

t.test('portcullis.yaml passes check-config, with the three NATS nodes and Redis of the compose file', async (t) => {
  const cfg = parseYaml(readFileSync(join(COMPOSE_DIR, 'portcullis.yaml'), 'utf8')) as { cluster: { nats: { servers: string[] }; redis: { url: string } } };
  t.same(cfg.cluster.nats.servers, ['nats://nats-1:4222', 'nats://nats-2:4222', 'nats://nats-3:4222']);
  t.equal(cfg.cluster.redis.url, 'redis://redis:6379');
  const r = spawnSync('node', ['services/cli/bin/portcullis.mjs', 'check-config', 'infra/compose/portcullis.yaml'], {
    cwd: ROOT,
    encoding: 'utf8',
    // The secrets live in /run/secrets in the containers; here, in the folder compose mounts them from.
    env: {
      ...process.env,
      PORTCULLIS_PROVIDERS__0__CLIENT_SECRET_FILE: join(COMPOSE_DIR, 'secrets', 'client_secret'),
      PORTCULLIS_PROVIDERS__0__COOKIE_SECRET_FILE: join(COMPOSE_DIR, 'secrets', 'cookie_secret'),
    },
  });
  t.equal(r.status, 0, r.stdout + r.stderr);
});

t.test('docker waits longer than outpost.shutdown_grace_seconds before SIGKILL (stop_grace_period)', async (t) => {
  const cfg = parseYaml(readFileSync(join(COMPOSE_DIR, 'portcullis.yaml'), 'utf8')) as { outpost?: { shutdown_grace_seconds?: number } };
  // 10 is the schema's default; Docker's own default stop timeout is 10 s too.
  const grace = cfg.outpost?.shutdown_grace_seconds ?? 10;
  const seconds = (d: string | undefined) => {
    const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(d ?? '10s');
    return m ? Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) : Number.NaN;
  };
  for (const name of named(/^(gateway|auth|session)-\d+$/)) {
    const period = seconds(services[name]?.stop_grace_period);
    t.ok(period >= grace + 15, `${name}: stop_grace_period ${services[name]?.stop_grace_period ?? '(default 10s)'} leaves the ${grace} s grace and the stop time`);
  }
});

t.test('nginx.conf: round-robin over the three gateways, no stickiness, Host passed through', async (t) => {
  const conf = readFileSync(join(COMPOSE_DIR, 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
  const upstream = /upstream\s+portcullis_gateways\s*\{([^}]*)\}/.exec(conf)?.[1] ?? '';
  t.same([...upstream.matchAll(/server\s+([\w.-]+:\d+)/g)].map((m) => m[1]), ['gateway-1:9000', 'gateway-2:9000', 'gateway-3:9000']);
  t.notMatch(upstream, /\b(ip_hash|hash|sticky|least_conn)\b/);
  t.match(conf, /proxy_set_header\s+Host\s+\$http_host;/);
});

t.test('demo-servers.ts: the upstream starts as the container runs it, with the secret read from the compose secret file', async (t) => {
  const settings = readDemoServerSettings({ DEMO_CLIENT_SECRET_FILE: join(COMPOSE_DIR, 'secrets', 'client_secret') });
  t.equal(settings.clientSecret, readFileSync(join(COMPOSE_DIR, 'secrets', 'client_secret'), 'utf8').trim());
  t.equal(settings.issuer, 'http://idp.localhost:9100');
  t.throws(() => readDemoServerSettings({}), /DEMO_CLIENT_SECRET_FILE/);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = execFile('node', ['--import', 'tsx', 'infra/compose/demo-servers.ts', 'upstream'], {
    cwd: ROOT,
    env: { ...process.env, DEMO_BIND_HOST: '127.0.0.1', DEMO_UPSTREAM_PORT: String(port), DEMO_CLIENT_SECRET: 'x' },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let body = '';
  for (let i = 0; i < 100 && !body; i++) {
    await new Promise((r) => setTimeout(r, 200));
    body = await fetch(`http://127.0.0.1:${port}/hello`).then((r) => (r.ok ? r.text() : ''), () => '');
  }
  t.match(body, '/hello', 'the upstream echoes the request');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly on SIGTERM');
});
