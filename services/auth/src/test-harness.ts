// Test-only wiring: a real dev IdP, the embedded bus/store, the session projector and the auth service under test.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Bus, createMemoryBus } from '@portcullis/bus';
import type { PortcullisConfig, ProviderConfig } from '@portcullis/config';
import { AUTH_SUBJECTS, type AuthReply, type CallbackRequest, type SignOutRequest } from '@portcullis/events';
import { createSessionService, type SessionService } from '@portcullis/session';
import { createMemoryStore, createRedisStore, type RedisStore, type SessionStore } from '@portcullis/store';
import { type Browser, createBrowser, DEMO_USERS, type Idp, type IdpClient, loginThroughIdp, startIdp, startRedisServer } from '@portcullis/testkit';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { type AuthLogger, type AuthService, createAuthService } from './app.ts';
import { buildRedirectUri } from './provider-runtime.ts';

export const CLIENT_ID = 'portcullis-test-client';
export const CLIENT_SECRET = 'portcullis-test-client-secret-0123456789';
export const COOKIE_SECRET = 'cookie-secret-for-tests-0123456789abcdef';
export const EXTERNAL_HOST = 'http://app.localhost:18080';
export const POST_LOGOUT_URI = `${EXTERNAL_HOST}/signed-out`;

/** A provider with every field filled; override what a test is about. */
export function buildProvider(issuer: string, overrides: Partial<ProviderConfig> = {}): ProviderConfig {
  return {
    name: 'app',
    application_slug: 'app',
    mode: 'proxy',
    external_host: EXTERNAL_HOST,
    internal_host: 'http://127.0.0.1:1',
    internal_host_ssl_validation: true,
    issuer,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    scopes: ['openid', 'profile', 'email', 'groups', 'ak_proxy'],
    cookie_secret: COOKIE_SECRET,
    cookie_domain: '',
    skip_path_regex: '',
    access_token_validity: 3600,
    refresh: false,
    refresh_interval: null,
    idle_timeout: null,
    basic_auth_enabled: false,
    basic_auth_user_attribute: '',
    basic_auth_password_attribute: '',
    intercept_header_auth: true,
    post_logout_redirect_uri: null,
    backchannel_logout_max_age: 300,
    header_auth_cache_seconds: 60,
    strip_headers: [],
    tls: { cert_file: null, key_file: null },
    scope_mappings: [],
    ...overrides,
  };
}

/** A whole config around some providers (embedded mode). */
export function buildConfig(providers: ProviderConfig[]): PortcullisConfig {
  return {
    log_level: 'silent',
    outpost: {
      name: 'test-outpost',
      listen: { http: '127.0.0.1:0', https: null, metrics: null },
      trusted_proxy_cidrs: [],
      signout_propagation_timeout_ms: 1000,
      shutdown_grace_seconds: 10,
      workers: 1,
      certificate_watch_interval_seconds: 0,
    },
    cluster: null,
    providers,
  };
}

/** The IdP client matching {@link buildProvider} for an external host. */
export function idpClientFor(externalHost = EXTERNAL_HOST, clientId = CLIENT_ID): IdpClient {
  return {
    client_id: clientId,
    client_secret: CLIENT_SECRET,
    redirect_uris: [buildRedirectUri(externalHost)],
    post_logout_redirect_uris: [POST_LOGOUT_URI],
  };
}

/** A logger that keeps every line, so tests can see which instance answered and that nothing secret was logged. */
export interface RecordingLogger extends AuthLogger {
  lines: { level: string; o: object; m: string }[];
}

export function createRecordingLogger(): RecordingLogger {
  const lines: RecordingLogger['lines'] = [];
  return {
    lines,
    info: (o, m) => lines.push({ level: 'info', o, m }),
    warn: (o, m) => lines.push({ level: 'warn', o, m }),
    error: (o, m) => lines.push({ level: 'error', o, m }),
  };
}

/** Everything a login test needs, and one `close` for all of it. */
export interface Harness {
  bus: Bus;
  store: SessionStore;
  sessions: SessionService;
  config: PortcullisConfig;
  browser: Browser;
  /** Creates and starts another auth service on the same bus and store (a replica or a restart). */
  startAuth(logger?: AuthLogger): Promise<AuthService>;
  close(): Promise<void>;
}

/** Starts the session projector and one browser; auth services are started with `startAuth`. */
export async function startHarness(config: PortcullisConfig, opts: { idpTimeoutMs?: number; keySetCooldownMs?: number } = {}): Promise<Harness> {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const sessions = createSessionService({ log: bus.log, store });
  await sessions.start();
  const browser = createBrowser();
  const services: AuthService[] = [];
  return {
    bus,
    store,
    sessions,
    config,
    browser,
    async startAuth(logger) {
      const service = createAuthService({
        config,
        bus,
        store,
        logger,
        idpTimeoutMs: opts.idpTimeoutMs ?? 3000,
        ...(opts.keySetCooldownMs === undefined ? {} : { keySetCooldownMs: opts.keySetCooldownMs }),
      });
      await service.start();
      services.push(service);
      return service;
    },
    async close() {
      for (const s of services) await s.stop();
      await sessions.stop();
      await browser.close();
      await store.close();
      await bus.close();
    },
  };
}

/** Starts the dev IdP with the harness' client (and any others). */
export function startTestIdp(clients: IdpClient[] = [idpClientFor()], port?: number): Promise<Idp> {
  return startIdp({ clients, ...(port === undefined ? {} : { port }) });
}

export function requestStart(bus: Bus, provider: string, redirect: string | null = null): Promise<AuthReply> {
  return bus.rpc.request<AuthReply>(AUTH_SUBJECTS.start, { provider, redirect });
}

export function requestCallback(bus: Bus, req: CallbackRequest): Promise<AuthReply> {
  return bus.rpc.request<AuthReply>(AUTH_SUBJECTS.callback, req);
}

export function requestSignOut(bus: Bus, req: SignOutRequest): Promise<AuthReply> {
  return bus.rpc.request<AuthReply>(AUTH_SUBJECTS.signOut, req);
}

/** name → value of each Set-Cookie with a non-empty value (what a browser would then send back). */
export function cookiesFrom(reply: AuthReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const header of reply.setCookies) {
    const pair = header.split(';', 1)[0] ?? '';
    const eq = pair.indexOf('=');
    const value = pair.slice(eq + 1);
    if (eq > 0 && value !== '') out[pair.slice(0, eq)] = value;
  }
  return out;
}

/**
 * Takes the browser from the authorize URL through the IdP's login form and stops before it would
 * reach our callback; returns that callback URL's raw query (code, state, iss, …).
 */
export async function loginAtIdp(
  browser: Browser,
  authorizeUrl: string,
  user: { username: string; password: string } = DEMO_USERS[0]!,
  externalHost = EXTERNAL_HOST,
): Promise<string> {
  const { finalResponse } = await loginThroughIdp(browser, authorizeUrl, user, { stopAt: (url) => url.startsWith(externalHost) });
  const location = finalResponse.location;
  if (location === undefined || !location.startsWith(externalHost)) {
    throw new Error(`the IdP did not redirect back to ${externalHost} (status ${finalResponse.status} at ${finalResponse.url})`);
  }
  return new URL(location).search.slice(1);
}

/** Full login through the service: start, IdP form, callback. Returns the start and callback replies. */
export async function loginThroughService(
  h: Harness,
  provider = 'app',
  opts: { redirect?: string | null; user?: { username: string; password: string }; externalHost?: string } = {},
): Promise<{ start: AuthReply; callback: AuthReply; query: string }> {
  const start = await requestStart(h.bus, provider, opts.redirect ?? null);
  if (start.status !== 302 || !start.location) throw new Error(`start answered ${start.status}: ${JSON.stringify(start.page)}`);
  const query = await loginAtIdp(h.browser, start.location, opts.user, opts.externalHost);
  const callback = await requestCallback(h.bus, { provider, query, stateCookies: cookiesFrom(start) });
  return { start, callback, query };
}

/** A forwarding front for an IdP that swaps the `jwks_uri` of its discovery document. */
export interface JwksSwappingFront {
  url: string;
  /** Forward to this loopback port, announcing `jwksUri` instead of the IdP's own. */
  target(port: number, jwksUri: string): void;
  close(): Promise<void>;
}

/**
 * Starts a real HTTP front (not a fake IdP): everything is forwarded to the IdP except that the
 * discovery document names another key set — the situation of a token signed by a key the issuer
 * does not publish.
 */
export async function startJwksSwappingFront(): Promise<JwksSwappingFront> {
  let upstreamPort = 0;
  let swappedJwks = '';
  const server = createServer((req, res) => {
    const upstream = httpRequest(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (req.url?.startsWith('/.well-known/openid-configuration')) {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            doc['jwks_uri'] = swappedJwks;
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(doc));
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      res.statusCode = 502;
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    target(port, jwksUri) {
      upstreamPort = port;
      swappedJwks = jwksUri;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type Signer = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** A local signing key whose public half the IdP's (swapped) key set publishes. */
export interface LocalKey {
  kid: string;
  privateKey: Signer;
  publicJwk: JWK;
}

/** A fresh key pair with a random kid; the public half as a JWK ready to publish. */
export async function createLocalKey(alg: 'RS256' | 'ES256'): Promise<LocalKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** Listens on a free loopback port; resolves with the base URL. */
export function listenLocal(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

/** Closes a server and its open connections. */
export function closeLocal(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/**
 * A real key-set endpoint: the IdP's own keys (so its ID and logout tokens verify) plus the test's
 * local keys (so hand-made tokens verify as if the IdP had signed them).
 */
export async function startMergedKeySet(extra: JWK[]): Promise<{ url: string; setIdpPort(port: number): void; close(): Promise<void> }> {
  let idpPort = 0;
  const server = createServer((_req, res) => {
    fetch(`http://127.0.0.1:${idpPort}/jwks`)
      .then((r) => r.json() as Promise<{ keys: JWK[] }>)
      .then((own) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [...own.keys, ...extra] }));
      })
      .catch(() => {
        res.statusCode = 502;
        res.end();
      });
  });
  const url = await listenLocal(server);
  return { url: `${url}/jwks`, setIdpPort: (p) => (idpPort = p), close: () => closeLocal(server) };
}

/** A Redis store whose redis-server has been killed (a replica whose Redis is gone); the caller closes it. */
export async function openDeadRedisStore(): Promise<RedisStore> {
  const redis = await startRedisServer();
  const store = await createRedisStore({ redis: { url: redis.url, key_prefix: 'dead:', tls: null, sentinels: null, sentinel_name: null, cluster_nodes: null, password: null } });
  redis.kill();
  await redis.exited;
  return store;
}

/** An IdP whose published signing keys a test controls, and an auth service (default key-set cool-down) in front of it. */
export interface RotatingKeysIdp {
  /** Published from the start. */
  current: LocalKey;
  /** Published once the test pushes `rotated.publicJwk` onto `published` (the IdP's key rotation). */
  rotated: LocalKey;
  /** current's kid with another key: a published kid whose signature does not match. */
  impostor: LocalKey;
  /** Never published. */
  unpublished: LocalKey;
  /** The JWKs the IdP publishes besides its own (mutable). */
  published: JWK[];
  issuer: string;
  h: Harness;
  /** Another auth replica on the same log and store, with its own key-set cache (fetched on its first token); its bus. */
  replica(): Promise<Bus>;
}

/** Starts a {@link RotatingKeysIdp} (real oidc-provider behind a JWKS-swapping front), torn down with `t`. */
export async function startRotatingKeysIdp(t: import('tap').Test, idp: { accessTokenFormat?: 'jwt' } = {}): Promise<RotatingKeysIdp> {
  const current = await createLocalKey('RS256');
  const rotated = await createLocalKey('RS256');
  const impostor = { ...(await createLocalKey('RS256')), kid: current.kid };
  const unpublished = await createLocalKey('RS256');
  const published = [current.publicJwk];
  const keySet = await startMergedKeySet(published);
  t.teardown(() => keySet.close());
  const front = await startJwksSwappingFront();
  t.teardown(() => front.close());
  const server = await startIdp({ clients: [idpClientFor()], issuer: front.url, ...idp });
  t.teardown(() => server.close());
  keySet.setIdpPort(server.port);
  front.target(server.port, keySet.url);
  // The default cool-down (30 s): the key set is fetched again for an unknown kid at most that often.
  const h = await startHarness(buildConfig([buildProvider(front.url)]));
  t.teardown(() => h.close());
  await h.startAuth();
  async function replica(): Promise<Bus> {
    const bus = createMemoryBus();
    t.teardown(() => bus.close());
    const service = createAuthService({ config: h.config, bus: { ...bus, log: h.bus.log }, store: h.store });
    await service.start();
    t.teardown(() => service.stop());
    return bus;
  }
  return { current, rotated, impostor, unpublished, published, issuer: front.url, h, replica };
}
