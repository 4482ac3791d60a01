// The cluster the scenarios run against: 3 nats-server nodes, redis-server, an IdP and an upstream in their own processes, and Portcullis members.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsBus, createNatsBus } from '@portcullis/bus';
import { type RedisStore, createRedisStore } from '@portcullis/store';
import { streamMaxAgeSeconds } from '@portcullis/cli';
import { type PortcullisConfig, loadConfig } from '@portcullis/config';
import { type NatsCluster, type RedisServer, getFreePort, startNatsCluster, startRedisServer } from '@portcullis/testkit';
import { type BenchChild, ROOT, spawnChild, startHelper } from './processes.ts';

export const COOKIE_SECRET = 'bench-cookie-secret-0123456789abcdef-xyz';
/** Paths the forward-auth provider lets through without a session. */
export const SKIP_REGEX = '^/public/';

export type Role = 'gateway' | 'auth' | 'session';

/** One `portcullis run --services <role>` process. */
export interface Member {
  role: Role;
  index: number;
  http: number;
  metrics: number;
  proc: BenchChild;
}

/** Everything a scenario needs. */
export interface Environment {
  nats: NatsCluster;
  redis: RedisServer;
  upstream: BenchChild & { port: number };
  idp: BenchChild & { issuer: string };
  /** Port of gateway 0; the providers' external hosts name it. */
  gatewayPort: number;
  /** Host header of the proxy-mode provider (`app`). */
  appHost: string;
  /** Host header of the forward_single provider (`fwd`). */
  fwdHost: string;
  config: PortcullisConfig;
  configFile: string;
  members: Member[];
  gateways(): Member[];
  /** The bench's own NATS connection (appends sessions straight into the log). */
  bus: NatsBus;
  /** The bench's own view of the projection (waits for applies, reads records). */
  store: RedisStore;
  /** Starts one more member (e.g. a profiled gateway); it stays in `members` until stopped. */
  startMember(role: Role, opts?: { nodeArgs?: string[]; env?: Record<string, string> }): Promise<Member>;
  stopMember(m: Member): Promise<void>;
  close(): Promise<void>;
}

const BIN = join(ROOT, 'node_modules', '@portcullis', 'cli', 'bin', 'portcullis.mjs');

/** Starts NATS (3 nodes), Redis, the upstream, the IdP, then session, auth and `gateways` gateway processes. */
/**
 * Whether a member is up: its metrics port answers ping and, for a gateway, its own port too (the
 * metrics listener answers before the gateway's listeners are bound; a first request then met ECONNREFUSED).
 */
export async function answersPing(metricsPort: number, gatewayPort: number | null): Promise<boolean> {
  for (const port of gatewayPort === null ? [metricsPort] : [metricsPort, gatewayPort]) {
    const r = await fetch(`http://127.0.0.1:${port}/outpost.goauthentik.io/ping`).catch(() => null);
    if (r?.status !== 204) return false;
  }
  return true;
}

export async function startEnvironment(opts: { gateways: number }): Promise<Environment> {
  const gatewayPort = await getFreePort();
  const appHost = `app.localhost:${gatewayPort}`;
  const fwdHost = `fwd.localhost:${gatewayPort}`;
  const [nats, redis, upstream, idp] = await Promise.all([
    startNatsCluster(3),
    startRedisServer(),
    startHelper('upstream', 'servers/bare-upstream.ts'),
    startHelper('idp', 'servers/idp.ts', [
      JSON.stringify([
        { client_id: 'app', client_secret: 'app-secret', redirect_uris: [`http://${appHost}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`] },
        { client_id: 'fwd', client_secret: 'fwd-secret', redirect_uris: [`http://${fwdHost}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`] },
      ]),
    ]),
  ]);
  const upstreamPort = (upstream.ready as { port: number }).port;
  const issuer = (idp.ready as { issuer: string }).issuer;
  const yaml = `
log_level: warn
outpost:
  listen: { http: "127.0.0.1:${gatewayPort}", https: null, metrics: "127.0.0.1:1" }
  signout_propagation_timeout_ms: 250
cluster:
  nats: { servers: ${JSON.stringify(nats.urls)}, stream: PORTCULLIS_SESSIONS }
  redis: { url: "${redis.url}" }
providers:
  - name: app
    mode: proxy
    external_host: http://${appHost}
    internal_host: http://127.0.0.1:${upstreamPort}
    issuer: ${issuer}
    client_id: app
    client_secret: app-secret
    cookie_secret: ${COOKIE_SECRET}
  - name: fwd
    mode: forward_single
    external_host: http://${fwdHost}
    issuer: ${issuer}
    client_id: fwd
    client_secret: fwd-secret
    cookie_secret: ${COOKIE_SECRET}
    skip_path_regex: "${SKIP_REGEX}"
`;
  const loaded = loadConfig({ text: yaml, env: {} });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  const config = loaded.config;
  const configFile = join(mkdtempSync(join(tmpdir(), 'portcullis-bench-')), 'portcullis.yaml');
  writeFileSync(configFile, yaml);
  const bus = await createNatsBus({ nats: config.cluster!.nats, name: 'bench', streamMaxAgeSeconds: streamMaxAgeSeconds(config) });

  const store = await createRedisStore({ redis: config.cluster!.redis });
  const members: Member[] = [];
  const startMember: Environment['startMember'] = async (role, o = {}) => {
    const http = role === 'gateway' && !members.some((m) => m.role === 'gateway') ? gatewayPort : await getFreePort();
    const metrics = await getFreePort();
    const proc = await spawnChild({
      name: `${role}@${http}`,
      command: process.execPath,
      args: [...(o.nodeArgs ?? []), BIN, 'run', '--config', configFile, '--services', role],
      env: {
        ...process.env,
        PORTCULLIS_OUTPOST__LISTEN__HTTP: `127.0.0.1:${http}`,
        PORTCULLIS_OUTPOST__LISTEN__METRICS: `127.0.0.1:${metrics}`,
        ...o.env,
      },
      isReady: () => answersPing(metrics, role === 'gateway' ? http : null),
      timeoutMs: 60_000,
    });
    const m: Member = { role, index: members.filter((x) => x.role === role).length, http, metrics, proc };
    members.push(m);
    return m;
  };
  const env: Environment = {
    nats,
    redis,
    upstream: Object.assign(upstream, { port: upstreamPort }),
    idp: Object.assign(idp, { issuer }),
    gatewayPort,
    appHost,
    fwdHost,
    config,
    configFile,
    members,
    gateways: () => members.filter((m) => m.role === 'gateway'),
    bus,
    store,
    startMember,
    async stopMember(m) {
      await m.proc.stop();
      members.splice(members.indexOf(m), 1);
    },
    async close() {
      await Promise.all(members.map((m) => m.proc.stop()));
      await bus.close().catch(() => {});
      await store.close().catch(() => {});
      await Promise.all([upstream.stop(), idp.stop(), redis.stop(), nats.stop()]);
    },
  };
  try {
    await startMember('session');
    await startMember('auth');
    // Gateway 0 first: it takes the port the external hosts name.
    await startMember('gateway');
    await Promise.all(Array.from({ length: opts.gateways - 1 }, () => startMember('gateway')));
  } catch (err) {
    await env.close();
    throw err;
  }
  return env;
}
