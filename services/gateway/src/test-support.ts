// Test helpers for the gateway: a validated config from YAML, and sessions started through the real log.
import { type Bus, type RequestBus, createMemoryBus } from '@portcullis/bus';
import { type PortcullisConfig, loadConfig } from '@portcullis/config';
import { AUTH_SUBJECTS, createEvent, type HeaderAuthReply, type SessionStartedData } from '@portcullis/events';
import { signSessionCookie, sessionCookieName } from '@portcullis/protocol';
import { createSessionService } from '@portcullis/session';
import { createMemoryStore } from '@portcullis/store';
import { getFreePort } from '@portcullis/testkit';
import type { Test } from 'tap';
import { type Gateway, type GatewayDeps, createGateway } from './server.ts';

export const SECRET = 'test-cookie-secret-0123456789abcdef';

/** Loads a config through the real loader; fails the test run with every problem listed. */
export function testConfig(yaml: string): PortcullisConfig {
  const r = loadConfig({ text: yaml, env: {} });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  return r.config;
}

/** A provider block with the boilerplate filled in. */
export function providerYaml(fields: Record<string, string>): string {
  const base: Record<string, string> = {
    issuer: 'http://127.0.0.1:1/',
    client_id: 'client-a',
    client_secret: 'secret',
    cookie_secret: SECRET,
    ...fields,
  };
  return `  - ${Object.entries(base)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n    ')}\n`;
}

/** A gateway over the embedded bus and store, with sessions that tests start directly in the log. */
export async function startTestGateway(
  config: PortcullisConfig,
  opts: {
    https?: boolean;
    directPath?: boolean;
    frontEnd?: boolean;
    observeRequest?: GatewayDeps['observeRequest'];
    observeUpstream?: GatewayDeps['observeUpstream'];
    /** What the auth service answers to a header check (default: a refusal of every credential). */
    headerAuthReply?: HeaderAuthReply;
  } = {},
): Promise<{
  gateway: Gateway;
  /** The embedded bus the gateway uses (its log is the one sessions are projected from). */
  bus: Bus;
  /** Stops the session projector: events appended from now on are never applied to the store. */
  stopProjection(): Promise<void>;
  login(providerName: string, claims: Record<string, unknown>, over?: Partial<SessionStartedData>): Promise<string>;
  signOut(sub: string): Promise<void>;
  /** Messages logged at warn or error. */
  warnings: string[];
  /** Messages logged at error only. */
  errors: string[];
  close(): Promise<void>;
}> {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const session = createSessionService({ log: bus.log, store });
  await session.start();
  // These unit tests run without an IdP: the auth service's header check refuses every credential.
  // (End-to-end tests in test/ run the real auth service against a real IdP.)
  bus.rpc.serve(AUTH_SUBJECTS.headerAuth, async (): Promise<HeaderAuthReply> => opts.headerAuthReply ?? { ok: false, reason: 'no IdP in gateway unit tests' });
  const warnings: string[] = [];
  const errors: string[] = [];
  const gateway = await createGateway({
    config: opts.https ? config : { ...config, outpost: { ...config.outpost, listen: { ...config.outpost.listen, https: null } } },
    rpc: bus.rpc,
    store,
    version: 'portcullis/test',
    waitForRevocation: async (seq) => ((await store.waitForApplied(seq, 250)) ? 'propagated' : 'unprojected'),
    log: {
      warn: (_o, m) => warnings.push(m),
      error: (_o, m) => {
        warnings.push(m);
        errors.push(m);
      },
    },
    ...(opts.directPath === undefined ? {} : { directPath: opts.directPath }),
    ...(opts.frontEnd === undefined ? {} : { frontEnd: opts.frontEnd }),
    ...(opts.observeRequest ? { observeRequest: opts.observeRequest } : {}),
    ...(opts.observeUpstream ? { observeUpstream: opts.observeUpstream } : {}),
  });
  return {
    gateway,
    bus,
    stopProjection: () => session.stop(),
    warnings,
    errors,
    async login(providerName, claims, over = {}) {
      const p = config.providers.find((x) => x.name === providerName)!;
      const sessionId = over.sessionId ?? `sess${Math.random().toString(36).slice(2)}`;
      const now = Date.now();
      const seq = await bus.log.append(
        createEvent('SessionStarted', {
          sessionId,
          provider: providerName,
          issuer: p.issuer,
          sub: String(claims.sub),
          sid: null,
          claims,
          accessToken: 'access-token-123',
          idToken: 'id-token',
          jwksUri: 'http://idp.test/jwks',
          createdAt: now,
          expiresAt: now + 3_600_000,
          ...over,
        }),
      );
      await store.waitForApplied(seq, 1000);
      return `${sessionCookieName(p.client_id)}=${signSessionCookie(p.cookie_secret, { sessionId, seq })}`;
    },
    async signOut(sub) {
      const seq = await bus.log.append(createEvent('UserSignedOut', { sub, provider: 'test', reason: 'test' }));
      await store.waitForApplied(seq, 1000);
    },
    async close() {
      await gateway.stop();
      await session.stop();
      await store.close();
    },
  };
}

/**
 * A started proxy-mode gateway (provider `app` on https://app.company) listening on a free port in
 * front of the upstream on `upstreamPort`, with alice logged in: for tests that talk raw HTTP to it.
 */
export async function startProxyGateway(
  t: { teardown(fn: () => unknown): void },
  upstreamPort: number,
): Promise<{ port: number; gw: Awaited<ReturnType<typeof startTestGateway>>; cookie: string }> {
  const port = await getFreePort();
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:${port}", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'https://app.company', internal_host: `http://127.0.0.1:${upstreamPort}` })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  await gw.gateway.start();
  const cookie = await gw.login('app', { sub: 'alice', preferred_username: 'alice' });
  return { port, gw, cookie };
}

/** A request bus whose every request fails, as when no auth service answers (for handlers built by hand). */
export const unreachableRpc: RequestBus = {
  request: async () => Promise.reject(new Error('down')),
  serve: () => ({ close: async () => {} }),
  listen: () => ({ close: async () => {} }),
  publish: () => {},
  gather: async () => [],
  ping: async () => {},
};

/**
 * A test gateway listening on a free port whose request and upstream timings are recorded: each request
 * as "METHOD host type" (its duration checked to be seconds), each upstream exchange as "METHOD host ok|failed".
 */
export async function startTimedGateway(
  t: Test,
  config: PortcullisConfig,
  opts: { directPath?: boolean; label?: string } = {},
): Promise<{ gw: Awaited<ReturnType<typeof startTestGateway>>; port: number; requests: string[]; upstreams: string[] }> {
  const requests: string[] = [];
  const upstreams: string[] = [];
  const prefix = opts.label ? `${opts.label}: ` : '';
  const gw = await startTestGateway(config, {
    ...(opts.directPath === undefined ? {} : { directPath: opts.directPath }),
    observeRequest: (method, host, type, seconds) => {
      t.ok(Number.isFinite(seconds) && seconds >= 0 && seconds < 10, `${prefix}a duration in seconds (${seconds})`);
      requests.push(`${method} ${host} ${type}`);
    },
    observeUpstream: (answer, method, _seconds, error) => upstreams.push(`${method} ${answer.metricHost} ${error ? 'failed' : 'ok'}`),
  });
  t.teardown(() => gw.close());
  await gw.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  return { gw, port: (gw.gateway.http.server.address() as { port: number }).port, requests, upstreams };
}
