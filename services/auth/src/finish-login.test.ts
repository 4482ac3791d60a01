// Callback against a real oidc-provider: the happy path, every refusal, replicas and restarts.
import { sessionCookieName, verifySessionCookie } from '@portcullis/protocol';
import { AUTH_SUBJECTS } from '@portcullis/events';
import { DEMO_USERS, startIdp, subjectFor } from '@portcullis/testkit';
import t from 'tap';
import { createAuthService } from './app.ts';
import { loginStateCookieName } from './login-state.ts';
import {
  buildConfig,
  buildProvider,
  CLIENT_ID,
  COOKIE_SECRET,
  cookiesFrom,
  createRecordingLogger,
  EXTERNAL_HOST,
  idpClientFor,
  loginAtIdp,
  loginThroughService,
  openDeadRedisStore,
  requestCallback,
  requestStart,
  startHarness,
  startJwksSwappingFront,
  startTestIdp,
} from './test-harness.ts';

const alice = DEMO_USERS.find((u) => u.username === 'alice')!;

t.test('full login records SessionStarted with IdP claims and mappings (mapping wins) and a verifiable cookie', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const provider = buildProvider(idp.issuer, {
    scope_mappings: [
      {
        name: 'team',
        expression:
          '{"email": "mapped-" + request.user.username + "@example.org", "ak_proxy": {"user_attributes": {"team": "admins" in request.user.groups ? "ops" : "dev"}}}',
      },
    ],
  });
  const h = await startHarness(buildConfig([provider]));
  t.teardown(() => h.close());
  await h.startAuth();

  const { callback } = await loginThroughService(h, 'app', { redirect: `${EXTERNAL_HOST}/after?x=1`, user: alice });
  t.equal(callback.status, 302, JSON.stringify(callback.page));
  t.equal(callback.location, `${EXTERNAL_HOST}/after?x=1`);
  const verified = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '');
  t.ok(verified, 'the session cookie verifies with the cookie secret');
  t.ok(callback.setCookies.some((c) => c.includes('_state_') && c.includes('Max-Age=0')), 'the state cookie is deleted');

  t.ok(await h.store.waitForApplied(verified!.seq, 2000));
  const session = await h.store.getLiveSession(verified!.sessionId);
  t.ok(session, 'the session is live in the projection');
  const claims = session!.claims;
  t.equal(session!.sub, subjectFor('alice'));
  t.equal(session!.issuer, idp.issuer);
  t.same(claims['groups'], ['admins', 'users'], 'groups from the IdP');
  t.equal(claims['preferred_username'], 'alice');
  t.equal(claims['email'], 'mapped-alice@example.org', 'the mapping wins over the IdP email');
  t.same(claims['ak_proxy'], { user_attributes: { additionalHeaders: { 'X-Demo-Team': 'platform' }, team: 'ops' } }, 'ak_proxy deep-merged');
  t.type(session!.sid, 'string', 'the IdP session id is kept');
  t.equal(session!.jwksUri, `${idp.issuer}/jwks`);
  t.ok(session!.idToken && session!.idToken.split('.').length === 3, 'the ID token is kept');
  t.ok(session!.accessToken.length > 10);
  t.ok(Math.abs(session!.expiresAt - (session!.createdAt + 3600_000)) < 1, 'expires after access_token_validity');
});

t.test('callback refusals create no session', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const appB = buildProvider(idp.issuer, { name: 'app-b', external_host: 'http://b.localhost:18080' });
  const h = await startHarness(buildConfig([buildProvider(idp.issuer), appB]));
  t.teardown(() => h.close());
  await h.startAuth();

  t.test('a tampered state cookie → 400 "invalid or expired"', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const cookies = cookiesFrom(start);
    const [name, value] = Object.entries(cookies)[0]!;
    const flipped = value.slice(0, 20) + (value[20] === 'A' ? 'B' : 'A') + value.slice(21);
    const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: { [name]: flipped } });
    t.equal(reply.status, 400);
    t.match(reply.page?.message, /invalid or expired — start again/);
    t.same(reply.setCookies.filter((c) => !c.includes('Max-Age=0')), [], 'no session cookie');
  });

  t.test('a missing state cookie → 400', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: {} });
    t.equal(reply.status, 400);
  });

  t.test('a replayed callback → 400 the second time', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const first = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    t.equal(first.status, 302);
    const before = await h.bus.log.lastSeq();
    const second = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    t.equal(second.status, 400);
    t.equal(await h.bus.log.lastSeq(), before, 'no second SessionStarted');
  });

  t.test('a state sealed for another provider (same client and secret) → 400', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const reply = await requestCallback(h.bus, { provider: 'app-b', query, stateCookies: cookiesFrom(start) });
    t.equal(reply.status, 400);
    t.match(reply.page?.message, /invalid or expired/);
  });

  t.test("another login's state cookie presented under this state's name → 400", async (t) => {
    const other = await requestStart(h.bus, 'app');
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const state = new URLSearchParams(query).get('state')!;
    const foreign = Object.values(cookiesFrom(other))[0]!;
    const reply = await requestCallback(h.bus, {
      provider: 'app',
      query,
      stateCookies: { [loginStateCookieName(CLIENT_ID, state)]: foreign },
    });
    t.equal(reply.status, 400);
  });

  t.test('missing code or state → 400; an IdP error → 403 with its description as text', async (t) => {
    const noCode = await requestCallback(h.bus, { provider: 'app', query: 'X-authentik-auth-callback=true&state=abc', stateCookies: {} });
    t.equal(noCode.status, 400);
    const start = await requestStart(h.bus, 'app');
    const state = new URLSearchParams(new URL(start.location!).search).get('state')!;
    const denied = await requestCallback(h.bus, {
      provider: 'app',
      query: `X-authentik-auth-callback=true&error=access_denied&error_description=%3Cb%3ENo%3C%2Fb%3E+entry&state=${state}`,
      stateCookies: cookiesFrom(start),
    });
    t.equal(denied.status, 403);
    t.match(denied.page?.message, '<b>No</b> entry', 'decoded text; the gateway escapes it');
    t.ok(denied.setCookies.some((c) => c.includes('_state_') && c.includes('Max-Age=0')), 'the state cookie is deleted');
  });

  t.test('a response parameter given twice → 400 naming it, not an IdP error; the state is not used up', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const code = new URLSearchParams(query).get('code')!;
    const state = new URLSearchParams(query).get('state')!;
    for (const [extra, name] of [
      [`&code=${code}`, 'code'],
      [`&state=${state}`, 'state'],
    ]) {
      const reply = await requestCallback(h.bus, { provider: 'app', query: `${query}${extra}`, stateCookies: cookiesFrom(start) });
      t.equal(reply.status, 400, `${name} twice`);
      t.match(reply.page?.message, new RegExp(`names ${name} more than once`));
    }
    t.equal((await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) })).status, 302, 'the well-formed response still works');
  });

  t.test('a response with implicit/JARM parameters or another "iss" → 400, not an IdP error; the state is not used up', async (t) => {
    const start = await requestStart(h.bus, 'app');
    const query = await loginAtIdp(h.browser, start.location!);
    const before = await h.bus.log.lastSeq();
    for (const crafted of [
      `${query}&id_token=a.b.c`,
      `${query}&token=abc`,
      `${query}&response=a.b.c`,
      query.replace(/&iss=[^&]*/, '&iss=https%3A%2F%2Fevil.example'),
      query.replace(/&iss=[^&]*/, ''),
    ]) {
      const reply = await requestCallback(h.bus, { provider: 'app', query: crafted, stateCookies: cookiesFrom(start) });
      t.equal(reply.status, 400, crafted);
      t.match(reply.page?.message, /start again/);
    }
    t.equal(await h.bus.log.lastSeq(), before, 'no session');
    t.equal((await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) })).status, 302, 'the genuine response still works');
  });

  t.test("an error response that answers none of this browser's logins → 400, the attacker's text is not shown", async (t) => {
    const phishing = 'error_description=Your+account+is+locked.+Call+%2B1-555-0100+to+unlock+it';
    const other = await requestStart(h.bus, 'app');
    for (const query of [
      `X-authentik-auth-callback=true&error=access_denied&${phishing}`,
      `X-authentik-auth-callback=true&error=access_denied&${phishing}&state=${'A'.repeat(43)}`,
    ]) {
      const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(other) });
      t.equal(reply.status, 400, query);
      t.match(reply.page?.message, /start again/);
      t.notMatch(reply.page?.message, /locked|555/);
    }
  });

  t.test('a code that was already redeemed → 400 with a "try again" hint', async (t) => {
    const first = await requestStart(h.bus, 'app');
    const usedQuery = await loginAtIdp(h.browser, first.location!);
    t.equal((await requestCallback(h.bus, { provider: 'app', query: usedQuery, stateCookies: cookiesFrom(first) })).status, 302);
    // A fresh, valid state with the old code: only the IdP can notice.
    const second = await requestStart(h.bus, 'app');
    const state = new URL(second.location!).searchParams.get('state')!;
    const params = new URLSearchParams(usedQuery);
    params.set('state', state);
    const before = await h.bus.log.lastSeq();
    const reply = await requestCallback(h.bus, { provider: 'app', query: params.toString(), stateCookies: cookiesFrom(second) });
    t.equal(reply.status, 400);
    t.match(reply.page?.message, /try again/);
    t.equal(await h.bus.log.lastSeq(), before);
  });

  t.test('a code from another IdP (mix-up) → refused without a session', async (t) => {
    const other = await startTestIdp();
    t.teardown(() => other.close());
    const start = await requestStart(h.bus, 'app');
    const atOther = new URL(start.location!);
    const otherOrigin = new URL(other.issuer);
    atOther.host = otherOrigin.host;
    const query = await loginAtIdp(h.browser, atOther.href);
    const before = await h.bus.log.lastSeq();
    const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    t.ok(reply.status === 400 || reply.status === 502, `status ${reply.status}`);
    t.equal(await h.bus.log.lastSeq(), before);
  });
});

t.test('an ID token whose signature does not match the IdP keys → 502, no session', async (t) => {
  // IdP A announces B's JWKS (through a forwarding front), so A's ID tokens fail the signature check.
  const front = await startJwksSwappingFront();
  t.teardown(() => front.close());
  const idpA = await startIdp({ clients: [idpClientFor()], issuer: front.url });
  t.teardown(() => idpA.close());
  const idpB = await startTestIdp();
  t.teardown(() => idpB.close());
  front.target(idpA.port, `${idpB.issuer}/jwks`);

  const h = await startHarness(buildConfig([buildProvider(front.url)]));
  t.teardown(() => h.close());
  await h.startAuth();
  const { callback } = await loginThroughService(h);
  t.equal(callback.status, 502);
  t.match(callback.page?.message, /failed validation/);
  t.equal(await h.bus.log.lastSeq(), 0);
});

t.test('a scope mapping that fails → 500 page naming the mapping, no session', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const provider = buildProvider(idp.issuer, {
    scope_mappings: [
      { name: 'fine', expression: '{"a": 1}' },
      { name: 'broken-lookup', expression: '{"x": claims["no_such_claim"]}' },
    ],
  });
  const h = await startHarness(buildConfig([provider]));
  t.teardown(() => h.close());
  await h.startAuth();
  const { callback } = await loginThroughService(h);
  t.equal(callback.status, 500);
  t.match(callback.page?.message, /"broken-lookup"/);
  t.same(callback.setCookies, []);
  t.equal(await h.bus.log.lastSeq(), 0);
});

t.test('the session log refusing the append → 503 "sessions are unavailable", no cookie', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]));
  t.teardown(() => h.close());
  const failingBus = {
    ...h.bus,
    log: {
      ...h.bus.log,
      append: async () => {
        throw new Error('stream unavailable');
      },
      lastSeq: () => h.bus.log.lastSeq(),
      subscribe: h.bus.log.subscribe.bind(h.bus.log),
    },
  };
  const service = createAuthService({ config: h.config, bus: failingBus, store: h.store });
  await service.start();
  t.teardown(() => service.stop());
  const { callback } = await loginThroughService(h);
  t.equal(callback.status, 503);
  t.match(callback.page?.title, /Sessions are unavailable/);
  t.same(callback.setCookies, []);
});

t.test('a session store that does not answer the state check → 503 "try again", no session, and the same callback then succeeds', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]));
  t.teardown(() => h.close());
  // This replica's Redis is gone; another replica (below) shares the healthy store.
  const deadStore = await openDeadRedisStore();
  t.teardown(() => deadStore.close());
  const broken = createAuthService({ config: h.config, bus: h.bus, store: deadStore });
  await broken.start();
  const start = await requestStart(h.bus, 'app');
  const query = await loginAtIdp(h.browser, start.location!);
  const failed = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
  t.equal(failed.status, 503);
  t.match(failed.page?.message, /session store is not answering/);
  t.same(failed.setCookies.filter((c) => c.startsWith(sessionCookieName(CLIENT_ID))), [], 'no session cookie');
  t.equal(await h.bus.log.lastSeq(), 0, 'no session recorded');
  await broken.stop();
  await h.startAuth();
  const retried = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
  t.equal(retried.status, 302, 'the state was not used up: the retried callback signs in');
  t.ok(cookiesFrom(retried)[sessionCookieName(CLIENT_ID)]);
});

t.test('a restarted auth service finishes a login started before the restart', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]));
  t.teardown(() => h.close());
  const before = await h.startAuth();
  const start = await requestStart(h.bus, 'app');
  t.equal(start.status, 302);
  await before.stop();
  await h.startAuth();
  const query = await loginAtIdp(h.browser, start.location!);
  const callback = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
  t.equal(callback.status, 302);
  t.ok(cookiesFrom(callback)[sessionCookieName(CLIENT_ID)]);
});

t.test('another replica finishes a login that one replica started', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]));
  t.teardown(() => h.close());
  const logA = createRecordingLogger();
  const logB = createRecordingLogger();
  await h.startAuth(logA);
  await h.startAuth(logB);
  // The embedded bus load-balances round robin: the start goes to one replica, the callback to the other.
  const { callback } = await loginThroughService(h);
  t.equal(callback.status, 302);
  const served = (log: typeof logA, subject: string) => log.lines.some((l) => (l.o as { subject?: string }).subject === subject);
  const startedOnA = served(logA, AUTH_SUBJECTS.start);
  t.not(startedOnA, served(logA, AUTH_SUBJECTS.callback), 'start and callback were answered by different replicas');
  t.not(served(logA, AUTH_SUBJECTS.start), served(logB, AUTH_SUBJECTS.start));
  const all = JSON.stringify([...logA.lines, ...logB.lines]);
  const session = (await h.store.listLiveSessions())[0]!;
  t.notOk(all.includes(session.accessToken), 'the access token is never logged');
  t.notOk(all.includes(session.sessionId), 'the session id is never logged');
});
