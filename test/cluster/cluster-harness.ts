// Starts a real Portcullis cluster as separate processes: 3 nats-server nodes, redis-server, an IdP,
// an upstream, and N gateway / M auth / K session processes of the `portcullis` command.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Browser,
  type CookieJar,
  type Idp,
  type IdpUser,
  type NatsCluster,
  type RedisServer,
  type Upstream,
  createBrowser,
  createCookieJar,
  getFreePort,
  startIdp,
  startNatsCluster,
  startRedisServer,
  startUpstream,
} from '@portcullis/testkit';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');
export const COOKIE_SECRET = 'cluster-test-cookie-secret-0123456789abcdef';
export const ALICE = { username: 'alice', password: 'alice-password' };

export type Role = 'gateway' | 'auth' | 'session';

/** One line the process logged (pino JSON), with the test-clock time it was read at. */
export interface LogLine {
  /** `performance.now()` in the test process when the line arrived. */
  at: number;
  level: number;
  msg: string;
}

/** One `portcullis run --services <role>` process. */
export interface Member {
  role: Role;
  index: number;
  http: number;
  metrics: number;
  child: ChildProcess;
  /** Extra environment of this member, applied at every (re)start: set it before `start` to change it. */
  env: Record<string, string>;
  output(): string;
  /** Every log line of the current run (kept whole: tests look for state changes such as 'session cache trusted'). */
  logLines(): LogLine[];
}

/** Options of {@link startCluster}: member counts (default 3 gateways, 2 auth, 2 session) and fault-test hooks. */
export interface ClusterOptions {
  gateway?: number;
  auth?: number;
  session?: number;
  /** The IdP's users (default: the demo users alice, bob, carol). */
  users?: IdpUser[];
  /** Per-member environment, e.g. `PORTCULLIS_CLUSTER__NATS__SERVERS` to pin a member to one NATS node. */
  env?: (m: Member, nats: NatsCluster) => Record<string, string> | undefined;
  /** Runs after NATS, Redis and the IdP are up and before any member starts (e.g. to place the stream leader). */
  beforeMembers?: (nats: NatsCluster) => Promise<void>;
  /** Extra keys of the `app` provider, e.g. `{ refresh: true, idle_timeout: 10 }` (written as YAML flow values). */
  appProvider?: Record<string, string | number | boolean | null>;
  /** Token lifetimes of the IdP (seconds). */
  idpTtl?: { AccessToken?: number; IdToken?: number };
  /** The IdP issues a new refresh token at each refresh and refuses a reused one. */
  rotateRefreshTokens?: boolean;
}

export interface Cluster {
  nats: NatsCluster;
  redis: RedisServer;
  idp: Idp;
  upstream: Upstream;
  /** The provider's external host (served by every gateway). */
  appHost: string;
  app: string;
  configFile: string;
  members: Member[];
  gateways(): Member[];
  /** A browser whose requests go to gateway `i`, sharing `jar` (the same user on another replica). */
  browserOn(i: number, jar?: CookieJar): Browser;
  newJar(): CookieJar;
  /** Starts (or restarts) the member; resolves when it answers its ping. */
  start(m: Member): Promise<void>;
  stop(m: Member, signal?: NodeJS.Signals): Promise<number | null>;
  close(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A SIGTERM'd member that has not exited after this long is killed (so a hung stop fails a test instead of hanging it). */
const STOP_TIMEOUT_MS = 20_000;

/** Starts everything; counts default to 3 gateways, 2 auth, 2 session. */
export async function startCluster(counts: ClusterOptions = {}): Promise<Cluster> {
  const nats = await startNatsCluster(3);
  const redis = await startRedisServer();
  const upstream = await startUpstream({ name: 'upstream' });
  const firstGatewayPort = await getFreePort();
  const appHost = `app.localhost:${firstGatewayPort}`;
  const app = `http://${appHost}`;
  const idp = await startIdp({
    ...(counts.users ? { users: counts.users } : {}),
    ...(counts.idpTtl ? { ttl: counts.idpTtl } : {}),
    ...(counts.rotateRefreshTokens ? { rotateRefreshTokens: true } : {}),
    clients: [
      {
        client_id: 'app',
        client_secret: 'app-secret',
        redirect_uris: [`${app}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`],
        // Reachable from the IdP (Node resolves loopback literals only): any gateway serves it.
        backchannel_logout_uri: `http://127.0.0.1:${firstGatewayPort}/outpost.goauthentik.io/backchannel-logout`,
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cluster-'));
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(
    configFile,
    `
log_level: info
outpost:
  listen: { http: "127.0.0.1:${firstGatewayPort}", https: null, metrics: "127.0.0.1:1" }
  signout_propagation_timeout_ms: 250
cluster:
  nats: { servers: ${JSON.stringify(nats.urls)}, stream: PORTCULLIS_SESSIONS }
  redis: { url: "${redis.url}" }
providers:
  - name: app
    mode: proxy
    external_host: ${app}
    internal_host: ${upstream.url}
    issuer: ${idp.issuer}
    client_id: app
    client_secret: app-secret
    cookie_secret: ${COOKIE_SECRET}
    scopes: [openid, profile, email, groups]
${Object.entries(counts.appProvider ?? {})
  .map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`)
  .join('')}  - name: bcl
    mode: proxy
    external_host: http://127.0.0.1:${firstGatewayPort}
    internal_host: ${upstream.url}
    issuer: ${idp.issuer}
    client_id: app
    client_secret: app-secret
    cookie_secret: ${COOKIE_SECRET}
`,
  );

  const members: Member[] = [];
  const roles: Array<[Role, number]> = [
    ['gateway', counts.gateway ?? 3],
    ['auth', counts.auth ?? 2],
    ['session', counts.session ?? 2],
  ];
  for (const [role, n] of roles) {
    for (let i = 0; i < n; i++) {
      const http = role === 'gateway' && i === 0 ? firstGatewayPort : await getFreePort();
      const m: Member = {
        role,
        index: i,
        http,
        metrics: await getFreePort(),
        child: undefined as unknown as ChildProcess,
        env: {},
        output: () => '',
        logLines: () => [],
      };
      m.env = counts.env?.(m, nats) ?? {};
      members.push(m);
    }
  }

  const cluster: Cluster = {
    nats,
    redis,
    idp,
    upstream,
    appHost,
    app,
    configFile,
    members,
    gateways: () => members.filter((m) => m.role === 'gateway'),
    newJar: () => createCookieJar(),
    browserOn(i, jar) {
      const gw = cluster.gateways()[i]!;
      return createBrowser({ resolve: { 'app.localhost': gw.http }, ...(jar ? { jar } : {}) });
    },
    async start(m) {
      let out = '';
      let partial = '';
      const lines: LogLine[] = [];
      const child = spawn(BIN, ['run', '--config', configFile, '--services', m.role], {
        cwd: ROOT,
        env: {
          ...process.env,
          PORTCULLIS_OUTPOST__LISTEN__HTTP: `127.0.0.1:${m.http}`,
          PORTCULLIS_OUTPOST__LISTEN__METRICS: `127.0.0.1:${m.metrics}`,
          ...m.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const keep = (d: Buffer) => {
        const text = d.toString();
        out = (out + text).slice(-20_000);
        const at = performance.now();
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          if (!line.startsWith('{')) continue;
          try {
            const j = JSON.parse(line) as { level?: unknown; msg?: unknown };
            lines.push({ at, level: Number(j.level ?? 0), msg: String(j.msg ?? '') });
          } catch {
            // Not a log record (a stack trace line, a warning from Node): kept in output() only.
          }
        }
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      m.child = child;
      m.output = () => out;
      m.logLines = () => lines;
      await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`${m.role}[${m.index}] exited ${child.exitCode}:\n${out}`);
        const r = await fetch(`http://127.0.0.1:${m.metrics}/outpost.goauthentik.io/ping`);
        if (r.status !== 204) return false;
        // The metrics listener can answer before a gateway's own listener is bound: a test's first
        // request would then meet ECONNREFUSED. A gateway is started once it answers on its own port.
        if (m.role !== 'gateway') return true;
        const own = await fetch(`http://127.0.0.1:${m.http}/outpost.goauthentik.io/ping`).catch(() => null);
        return own?.status === 204;
      }, `${m.role}[${m.index}] to start`).catch((err: Error) => {
        throw new Error(`${err.message}\n${out}`);
      });
    },
    async stop(m, signal = 'SIGTERM') {
      if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) return m.child?.exitCode ?? null;
      const exited = new Promise<number | null>((resolve) => m.child.once('exit', (code) => resolve(code)));
      m.child.kill(signal);
      const timer = setTimeout(() => m.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await Promise.all(members.map((m) => cluster.stop(m, 'SIGKILL')));
      await upstream.close();
      await idp.close();
      await redis.stop();
      await nats.stop();
    },
  };
  try {
    await counts.beforeMembers?.(nats);
    // Session and auth first, so gateways find them; all of one role in parallel.
    for (const role of ['session', 'auth', 'gateway'] as Role[]) {
      await Promise.all(members.filter((m) => m.role === role).map((m) => cluster.start(m)));
    }
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
