// A session cookie the log holds but the projection has not applied yet: 503 with Retry-After and the cookie kept, in every mode.
import { createMemoryBus } from '@portcullis/bus';
import { createEvent } from '@portcullis/events';
import { sessionCookieName, signSessionCookie } from '@portcullis/protocol';
import { createSessionService } from '@portcullis/session';
import { createMemoryStore } from '@portcullis/store';
import t from 'tap';
import type { Answer } from './answers.ts';
import { GatewayHandler } from './gateway-handler.ts';
import type { IncomingRequest } from './request-context.ts';
import { CachedSessionReader } from './session-cache.ts';
import { SECRET, providerYaml, testConfig, unreachableRpc } from './test-support.ts';

const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: 'http://127.0.0.1:1' })}
${providerYaml({ name: 'fwd', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f' })}
`);
const request = (url: string, headers: Record<string, string>): IncomingRequest => ({ method: 'GET', url, headers, peer: '127.0.0.1', encrypted: false });
const header = (a: Answer, name: string) => (a.kind === 'respond' ? a.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v) : []);

t.test('a gateway started after the logins over a projection that has not applied them: 503 + Retry-After, cookie kept, one log line; accepted once projected', async (t) => {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  // The session service is held back: the projection stays empty (Redis lost it, or the services are down).
  const session = createSessionService({ log: bus.log, store });
  t.teardown(async () => {
    await session.stop();
    await store.close();
  });
  const now = Date.now();
  const login = async (provider: string, clientId: string) => {
    const sessionId = `s-${provider}`;
    const seq = await bus.log.append(
      createEvent('SessionStarted', {
        sessionId,
        provider,
        issuer: 'http://127.0.0.1:1/',
        sub: 'alice',
        sid: null,
        claims: { sub: 'alice', preferred_username: 'alice' },
        accessToken: 'at',
        idToken: null,
        jwksUri: '',
        createdAt: now,
        expiresAt: now + 3_600_000,
      }),
    );
    return `${sessionCookieName(clientId)}=${signSessionCookie(SECRET, { sessionId, seq })}`;
  };
  const app = await login('app', 'client-a');
  const fwd = await login('fwd', 'client-f');
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000 });
  await cache.start();
  t.teardown(() => cache.stop());
  t.ok(await cache.waitLocalApplied(await bus.log.lastSeq(), 1000));
  const warnings: string[] = [];
  const errors: string[] = [];
  // The auth service, reduced to "go to the IdP": what a stale cookie would lead to (a login, a sign-out).
  const authAsked: string[] = [];
  const handler = new GatewayHandler({
    config,
    rpc: {
      ...unreachableRpc,
      request: async <T>(subject: string) => {
        authAsked.push(subject);
        return { status: 302, location: 'http://127.0.0.1:1/authorize', setCookies: [] } as T;
      },
    },
    store: cache,
    version: 'portcullis/test',
    waitForRevocation: async () => 'propagated',
    log: { warn: (_o, m) => warnings.push(m), error: (_o, m) => errors.push(m) },
  });
  const requests = {
    'proxy mode': request('/page', { host: 'app.company', cookie: app }),
    'forward auth (nginx)': request('/outpost.goauthentik.io/auth/nginx', { host: 'fwd.company', 'x-original-url': 'http://fwd.company/page', cookie: fwd }),
    'forward auth (traefik)': request('/outpost.goauthentik.io/auth/traefik', {
      host: 'portcullis',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'fwd.company',
      'x-forwarded-uri': '/page',
      cookie: fwd,
    }),
  };
  const answers = await Promise.all(Object.values(requests).map((r) => handler.handle(r)));
  for (const [i, name] of Object.keys(requests).entries()) {
    const a = answers[i]!;
    t.equal(a.kind === 'respond' && a.status, 503, `${name}: 503, not a login redirect or 401`);
    t.same(header(a, 'retry-after'), ['5'], `${name}: Retry-After`);
    t.same(header(a, 'set-cookie'), [], `${name}: the cookie is not deleted`);
  }
  const signOut = await handler.handle(request('/outpost.goauthentik.io/sign_out', { host: 'app.company', cookie: app }));
  t.equal(signOut.kind === 'respond' && signOut.status, 503, 'sign-out: 503');
  t.match(signOut.kind === 'respond' && signOut.body, /sign-out could not be recorded/, 'sign-out: not signed out without the session');
  t.same(header(signOut, 'set-cookie'), [], 'sign-out: the cookie is kept (the session is not ended, so it must not be forgotten)');
  t.same(authAsked, [], 'the auth service was never asked (no login started, no sign-out of a session not checked)');
  t.same(errors, [], 'not logged as a store failure');
  const behind = warnings.filter((m) => m.startsWith('the session projection is behind the log'));
  t.equal(behind.length, 1, `one line for ${answers.length + 1} answers: ${warnings.join(' | ')}`);
  t.match(behind[0], /applied #0, cookie names #1\): answering 503 until it catches up; check the session service and Redis/);

  await session.start();
  t.ok(await store.waitForApplied(await bus.log.lastSeq(), 1000), 'the projection caught up');
  const proxied = await handler.handle(requests['proxy mode']);
  t.equal(proxied.kind, 'proxy', 'proxy mode: the same cookie is accepted');
  for (const name of ['forward auth (nginx)', 'forward auth (traefik)'] as const) {
    const a = await handler.handle(requests[name]);
    t.equal(a.kind === 'respond' && a.status, 200, `${name}: the same cookie is accepted`);
  }
});
