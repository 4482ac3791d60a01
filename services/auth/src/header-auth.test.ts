// header_auth against real oidc-provider IdPs: Bearer (JWT and opaque) and Basic credentials become sessions; every other credential is refused with nothing recorded.
import { createHash, randomBytes } from 'node:crypto';
import { AUTH_SUBJECTS, createEvent, type HeaderAuthReply } from '@portcullis/events';
import { sessionCookieName, verifySessionCookie } from '@portcullis/protocol';
import type { SessionRecord } from '@portcullis/store';
import { type Browser, createBrowser, DEMO_USERS, type IdpClient, startIdp } from '@portcullis/testkit';
import { type JWTPayload, SignJWT } from 'jose';
import t from 'tap';
import { headerAuthSessionId } from '@portcullis/protocol';
import { buildRedirectUri } from './provider-runtime.ts';
import {
  buildConfig,
  buildProvider,
  CLIENT_ID,
  CLIENT_SECRET,
  COOKIE_SECRET,
  cookiesFrom,
  createLocalKey,
  EXTERNAL_HOST,
  createRecordingLogger,
  type Harness,
  idpClientFor,
  type LocalKey,
  loginAtIdp,
  loginThroughService,
  startHarness,
  startJwksSwappingFront,
  startMergedKeySet,
  startRotatingKeysIdp,
  startTestIdp,
} from './test-harness.ts';

const OPAQUE_HOST = 'http://opaque.localhost:18080';
const CACHE_SECONDS = 30;
/** A second client at the same IdPs: a different application, whose tokens must not open ours. */
const MACHINE: IdpClient = {
  client_id: 'machine-client',
  client_secret: 'machine-client-secret-0123456789abcdef',
  redirect_uris: ['http://machine.localhost/callback'],
};

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A real client_credentials grant at an IdP (client_secret_basic). */
async function clientCredentialsToken(issuer: string, clientId: string, secret: string): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'openid' }).toString(),
  });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200 || typeof body['access_token'] !== 'string') throw new Error(`client_credentials failed: ${JSON.stringify(body)}`);
  return body['access_token'];
}

t.test('header authentication', async (t) => {
  const rsa = await createLocalKey('RS256');
  const keySet = await startMergedKeySet([rsa.publicJwk]);
  t.teardown(() => keySet.close());
  const front = await startJwksSwappingFront();
  t.teardown(() => front.close());
  // JWT access tokens (aud = client_id); its key set also publishes `rsa`, so hand-made tokens verify as the IdP's.
  const jwtIdp = await startIdp({ clients: [idpClientFor(), MACHINE], issuer: front.url, accessTokenFormat: 'jwt' });
  t.teardown(() => jwtIdp.close());
  keySet.setIdpPort(jwtIdp.port);
  front.target(jwtIdp.port, keySet.url);
  const opaqueIdp = await startTestIdp([idpClientFor(OPAQUE_HOST), MACHINE]);
  t.teardown(() => opaqueIdp.close());
  // Another issuer that knows our very client_id and secret.
  const strangerIdp = await startIdp({ clients: [idpClientFor()], accessTokenFormat: 'jwt' });
  t.teardown(() => strangerIdp.close());

  const h = await startHarness(
    buildConfig([
      buildProvider(front.url, {
        header_auth_cache_seconds: CACHE_SECONDS,
        scope_mappings: [{ name: 'tag', expression: '{"ak_proxy": {"user_attributes": {"via": "mapped-" + request.user.username}}}' }],
      }),
      buildProvider(opaqueIdp.issuer, { name: 'opaque', external_host: OPAQUE_HOST }),
    ]),
    // Every unknown kid is judged against a set fetched for it (the cool-down has its own test below).
    { keySetCooldownMs: 0 },
  );
  t.teardown(() => h.close());
  const logger = createRecordingLogger();
  await h.startAuth(logger);
  const issuers: Record<string, string> = { app: front.url, opaque: opaqueIdp.issuer };
  const browsers: Browser[] = [];
  t.teardown(async () => {
    for (const b of browsers) await b.close();
  });

  function ask(authorization: string, provider = 'app'): Promise<HeaderAuthReply> {
    const sessionId = headerAuthSessionId(provider, issuers[provider] ?? '', authorization);
    return h.bus.rpc.request<HeaderAuthReply>(AUTH_SUBJECTS.headerAuth, { provider, authorization, sessionId });
  }

  /** The session an accepted header became (after the projection applied it). */
  async function sessionFor(authorization: string, reply: HeaderAuthReply, provider = 'app'): Promise<SessionRecord> {
    if (!reply.ok || reply.seq === undefined) throw new Error(`refused: ${JSON.stringify(reply)}`);
    await h.store.waitForApplied(reply.seq, 2000);
    const session = await h.store.getLiveSession(headerAuthSessionId(provider, issuers[provider] ?? '', authorization));
    if (!session) throw new Error('no live session for the header');
    return session;
  }

  /** A browser login through the service at the opaque IdP: its session holds the IdP's real opaque access token. */
  async function loginOpaque(user: { username: string; password: string }): Promise<SessionRecord> {
    const browser = createBrowser();
    browsers.push(browser);
    const { callback } = await loginThroughService({ ...h, browser } as Harness, 'opaque', { user, externalHost: OPAQUE_HOST });
    const cookie = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '');
    if (!cookie) throw new Error(`login failed: ${JSON.stringify(callback)}`);
    await h.store.waitForApplied(cookie.seq, 2000);
    const session = await h.store.getLiveSession(cookie.sessionId);
    if (!session) throw new Error('the login session is not live');
    return session;
  }

  /**
   * The IdP's own tokens for a user, by a real authorization code + PKCE flow at the JWT IdP. (A login
   * through the service cannot be used there: oidc-provider refuses resource-bound JWT access tokens at
   * userinfo.)
   */
  async function codeFlowTokens(user: { username: string; password: string }): Promise<{ accessToken: string; idToken: string; sub: string }> {
    const browser = createBrowser();
    browsers.push(browser);
    const verifier = randomBytes(32).toString('base64url');
    const redirectUri = buildRedirectUri(EXTERNAL_HOST);
    const authorize = new URL(`${front.url}/auth`);
    authorize.search = new URLSearchParams({
      client_id: CLIENT_ID,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: 'openid profile email groups ak_proxy',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      nonce: randomBytes(16).toString('base64url'),
      state: randomBytes(16).toString('base64url'),
    }).toString();
    const query = new URLSearchParams(await loginAtIdp(browser, authorize.href, user));
    const res = await fetch(`${front.url}/token`, {
      method: 'POST',
      headers: { authorization: basic(CLIENT_ID, CLIENT_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: query.get('code') ?? '', redirect_uri: redirectUri, code_verifier: verifier }).toString(),
    });
    const body = (await res.json()) as Record<string, string>;
    if (res.status !== 200) throw new Error(`code exchange failed: ${JSON.stringify(body)}`);
    const idToken = body['id_token'] ?? '';
    const sub = (JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub: string }).sub;
    return { accessToken: body['access_token'] ?? '', idToken, sub };
  }

  function claimsFor(overrides: Record<string, unknown> = {}): JWTPayload {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { iss: front.url, aud: CLIENT_ID, sub: 'svc-42', iat: now, exp: now + 600, ...overrides };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return claims as JWTPayload;
  }

  function sign(claims: JWTPayload, header: Record<string, unknown> = { typ: 'at+jwt' }): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: rsa.kid, ...header }).sign(rsa.privateKey);
  }

  const alice = DEMO_USERS.find((u) => u.username === 'alice') ?? DEMO_USERS[0]!;
  const aliceLogin = await codeFlowTokens(alice);

  t.test('a JWT bearer token is accepted: SessionStarted with its sub, its claims, the mappings, and at most the cache period', async (t) => {
    const header = `Bearer ${aliceLogin.accessToken}`;
    const before = Date.now();
    const reply = await ask(header);
    t.equal(reply.ok, true, JSON.stringify(reply));
    t.equal(reply.seq, await h.bus.log.lastSeq(), 'the reply names the SessionStarted just appended');
    const session = await sessionFor(header, reply);
    t.equal(session.sub, aliceLogin.sub);
    t.equal(session.provider, 'app');
    t.equal(session.issuer, front.url);
    t.equal(session.claims['preferred_username'], 'alice', 'the token claims are the session claims');
    t.same(session.claims['groups'], alice.groups);
    t.equal((session.claims['ak_proxy'] as { user_attributes: Record<string, unknown> }).user_attributes['via'], 'mapped-alice', 'scope mappings evaluated and merged');
    t.equal(session.accessToken, aliceLogin.accessToken, 'X-authentik-jwt is the presented token');
    t.equal(session.idToken, null);
    t.equal(session.jwksUri, keySet.url);
    t.ok(session.expiresAt <= Date.now() + CACHE_SECONDS * 1000 && session.expiresAt >= before + CACHE_SECONDS * 1000, 'lives exactly the cache period');
    const lowercase = await ask(`bearer ${aliceLogin.accessToken}`);
    t.equal(lowercase.ok, true, 'the scheme is case-insensitive');
  });

  t.test('a session never outlives the token: expiresAt = exp when exp comes before the cache period ends', async (t) => {
    const exp = Math.floor(Date.now() / 1000) + 10;
    const header = `Bearer ${await sign(claimsFor({ exp }))}`;
    const session = await sessionFor(header, await ask(header));
    t.equal(session.expiresAt, exp * 1000);
    t.equal(session.sub, 'svc-42');
  });

  t.test('an opaque token is accepted through introspection (profile from userinfo)', async (t) => {
    const bob = DEMO_USERS.find((u) => u.username === 'bob') ?? DEMO_USERS[1]!;
    const bobLogin = await loginOpaque(bob);
    t.notOk(bobLogin.accessToken.includes('.'), 'the token is opaque');
    const header = `Bearer ${bobLogin.accessToken}`;
    const reply = await ask(header, 'opaque');
    t.equal(reply.ok, true, JSON.stringify(reply));
    const session = await sessionFor(header, reply, 'opaque');
    t.equal(session.sub, bobLogin.sub);
    t.equal(session.claims['client_id'], CLIENT_ID);
    t.equal(session.claims['preferred_username'], 'bob', 'userinfo fills the profile');
    t.equal(session.claims['active'], undefined, 'introspection bookkeeping is not a claim');
    t.ok(session.expiresAt <= Date.now() + 60_000, 'the default cache period (60 s) bounds it');
  });

  t.test('a token issued to another client is refused (CVE-2024-47077), JWT or opaque', async (t) => {
    const seq = await h.bus.log.lastSeq();
    const jwt = await clientCredentialsToken(front.url, MACHINE.client_id, MACHINE.client_secret);
    t.same(await ask(`Bearer ${jwt}`), { ok: false, reason: 'token issued to another client' });
    const opaque = await clientCredentialsToken(opaqueIdp.issuer, MACHINE.client_id, MACHINE.client_secret);
    t.same(await ask(`Bearer ${opaque}`, 'opaque'), { ok: false, reason: 'token issued to another client' });
    t.same(await ask(`Bearer ${await sign(claimsFor({ aud: ['a', 'b'] }))}`), { ok: false, reason: 'token issued to another client' });
    t.equal(await h.bus.log.lastSeq(), seq, 'nothing appended');
  });

  t.test('every bad bearer token or header is refused with a short reason and nothing appended', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const stranger = await clientCredentialsToken(strangerIdp.issuer, CLIENT_ID, CLIENT_SECRET);
    // The classic confusion: HS256 keyed with the client secret, which we (and every copy of the config) hold.
    const hs256 = await new SignJWT(claimsFor()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(new TextEncoder().encode(CLIENT_SECRET));
    const unsigned = `${base64url({ alg: 'none', typ: 'at+jwt' })}.${base64url(claimsFor())}.`;
    const cases: [string, () => Promise<string>, string][] = [
      ['expired', async () => `Bearer ${await sign(claimsFor({ exp: now - 120 }))}`, 'token expired'],
      ['another issuer (its own keys)', async () => `Bearer ${stranger}`, 'token signature invalid'],
      ['another issuer (signed with a published key)', async () => `Bearer ${await sign(claimsFor({ iss: strangerIdp.issuer }))}`, 'token issuer mismatch'],
      ['HS256', async () => `Bearer ${hs256}`, 'token algorithm not accepted'],
      ['alg none', async () => `Bearer ${unsigned}`, 'token algorithm not accepted'],
      ['an ID token', async () => `Bearer ${aliceLogin.idToken}`, 'token type not accepted'],
      ['a logout token', async () => `Bearer ${await sign(claimsFor({ events: {} }), { typ: 'logout+jwt' })}`, 'token type not accepted'],
      ['typ logout+jwt', async () => `Bearer ${await sign(claimsFor(), { typ: 'logout+jwt' })}`, 'token type not accepted'],
      ['nbf in the future', async () => `Bearer ${await sign(claimsFor({ nbf: now + 600 }))}`, 'token not yet valid'],
      ['no exp', async () => `Bearer ${await sign(claimsFor({ exp: undefined }))}`, 'token has no expiry'],
      ['no sub', async () => `Bearer ${await sign(claimsFor({ sub: undefined }))}`, 'token has no subject'],
      ['an unknown opaque token', async () => 'Bearer not-a-token-the-idp-issued', 'token not active'],
      ['garbage header', async () => 'garbage', 'malformed authorization header'],
      ['another scheme', async () => 'Negotiate abcdef', 'unsupported authorization scheme'],
      ['Bearer without a token', async () => 'Bearer ', 'malformed authorization header'],
      ['Bearer with two tokens', async () => 'Bearer a b', 'malformed authorization header'],
      ['Basic that is not base64', async () => 'Basic !!!', 'malformed basic credentials'],
      ['Basic without a colon', async () => `Basic ${Buffer.from('nocolon').toString('base64')}`, 'malformed basic credentials'],
    ];
    const before = await h.bus.log.lastSeq();
    for (const [name, header, reason] of cases) {
      t.same(await ask(await header()), { ok: false, reason }, name);
    }
    t.equal(await h.bus.log.lastSeq(), before, 'nothing appended for any of them');
  });

  t.test('Basic goauthentik.io/token:<token> is a bearer token in disguise', async (t) => {
    const header = basic('goauthentik.io/token', aliceLogin.accessToken);
    const session = await sessionFor(header, await ask(header));
    t.equal(session.sub, aliceLogin.sub);
    t.equal(session.accessToken, aliceLogin.accessToken);
    t.same(await ask(basic('goauthentik.io/token', 'not-a-token')), { ok: false, reason: 'token not active' });
  });

  t.test("Basic with the provider's own client credentials is accepted (client_credentials), JWT or opaque", async (t) => {
    const header = basic(CLIENT_ID, CLIENT_SECRET);
    const session = await sessionFor(header, await ask(header));
    t.equal(session.sub, CLIENT_ID, 'the machine is the subject');
    t.equal((session.claims['ak_proxy'] as { user_attributes: Record<string, unknown> }).user_attributes['via'], 'mapped-', 'mappings ran');
    const opaque = await sessionFor(header, await ask(header, 'opaque'), 'opaque');
    t.equal(opaque.sub, CLIENT_ID);
    t.ok(logger.lines.some((l) => (l.o as { method?: string }).method === 'basic_client_credentials'));
  });

  t.test('Basic credentials that authenticate nobody for this provider are refused', async (t) => {
    const before = await h.bus.log.lastSeq();
    // Another application's client: the IdP issues it a token, but not for us.
    t.same(await ask(basic(MACHINE.client_id, MACHINE.client_secret)), { ok: false, reason: 'token issued to another client' });
    t.same(await ask(basic(CLIENT_ID, 'wrong-secret')), { ok: false, reason: 'invalid credentials' });
    // A user name and password: oidc-provider does not take them at the token endpoint, and we never
    // authenticate as our own client there, so they cannot buy a client token.
    t.same(await ask(basic(alice.username, alice.password)), { ok: false, reason: 'invalid credentials' });
    t.equal(await h.bus.log.lastSeq(), before, 'nothing appended');
  });

  t.test('concurrent identical requests share one check and one session', async (t) => {
    const header = `Bearer ${await sign(claimsFor({ sub: 'burst' }))}`;
    const before = await h.bus.log.lastSeq();
    const replies = await Promise.all([ask(header), ask(header), ask(header)]);
    t.same(
      replies.map((r) => r.seq),
      [before + 1, before + 1, before + 1],
    );
    t.equal(await h.bus.log.lastSeq(), before + 1);
  });

  t.test('a header session is revoked like any other (UserSignedOut by sub)', async (t) => {
    const header = `Bearer ${await sign(claimsFor({ sub: 'revoked-svc' }))}`;
    const session = await sessionFor(header, await ask(header));
    const seq = await h.bus.log.append(createEvent('UserSignedOut', { sub: 'revoked-svc', provider: 'app', reason: 'test' }));
    await h.store.waitForApplied(seq, 2000);
    t.equal(await h.store.getLiveSession(session.sessionId), null);
  });

  t.test('a JWT under an IdP session a back-channel logout ended is refused, and nothing is appended for it', async (t) => {
    const ended = await h.bus.log.append(createEvent('IdpSessionEnded', { issuer: front.url, sid: 'ended-idp-session', sub: null }));
    await h.store.waitForApplied(ended, 2000);
    const header = `Bearer ${await sign(claimsFor({ sub: 'svc-ended', sid: 'ended-idp-session' }))}`;
    const before = await h.bus.log.lastSeq();
    for (let i = 0; i < 3; i++) t.same(await ask(header), { ok: false, reason: 'the identity provider ended this session' });
    t.equal(await h.bus.log.lastSeq(), before, 'no SessionStarted that could only hold nothing');
    const other = `Bearer ${await sign(claimsFor({ sub: 'svc-ended', sid: 'another-idp-session' }))}`;
    t.equal((await ask(other)).ok, true, 'another IdP session of the same user is unaffected');
  });

  t.test('a sessionId not derived from the credential is refused as unavailable and logged as an error', async (t) => {
    const before = await h.bus.log.lastSeq();
    const authorization = `Bearer ${aliceLogin.accessToken}`;
    const reply = await h.bus.rpc.request<HeaderAuthReply>(AUTH_SUBJECTS.headerAuth, {
      provider: 'app',
      authorization,
      sessionId: headerAuthSessionId('app', front.url, 'Bearer something-else'),
    });
    t.same(reply, { ok: false, reason: 'unavailable' });
    t.equal(await h.bus.log.lastSeq(), before);
    t.ok(logger.lines.some((l) => l.level === 'error' && l.m === 'header auth failed'));
  });

  t.test('no credential ever reaches the log', async (t) => {
    const text = JSON.stringify(logger.lines);
    t.notOk(text.includes(aliceLogin.accessToken), 'no access token');
    t.notOk(text.includes(CLIENT_SECRET), 'no client secret');
    t.notOk(text.includes(alice.password), 'no password');
    t.ok(logger.lines.some((l) => l.m === 'header auth refused'), 'refusals are logged (without the credential)');
  });
});

t.test('a JWT signed by a key the IdP rotated in within the key-set re-fetch cool-down → "unavailable" with a Retry-After, accepted once the set is fetched again; a bad signature or a kid missing from a set fetched for it stays refused', async (t) => {
  const { current, rotated, impostor, unpublished, published, issuer, h, replica: replicaBus } = await startRotatingKeysIdp(t, { accessTokenFormat: 'jwt' });
  /** Another auth replica on the same log and store, with its own key-set cache (fetched on its first token). */
  async function replica(): Promise<(authorization: string) => Promise<HeaderAuthReply>> {
    const bus = await replicaBus();
    return (authorization) => askOn(bus.rpc, authorization);
  }
  function askOn(rpc: typeof h.bus.rpc, authorization: string): Promise<HeaderAuthReply> {
    return rpc.request<HeaderAuthReply>(AUTH_SUBJECTS.headerAuth, { provider: 'app', authorization, sessionId: headerAuthSessionId('app', issuer, authorization) });
  }
  const bearer = async (key: LocalKey, sub: string) => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ iss: issuer, aud: CLIENT_ID, sub, iat: now, exp: now + 600 })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'at+jwt' })
      .sign(key.privateKey);
    return `Bearer ${token}`;
  };

  t.equal((await askOn(h.bus.rpc, await bearer(current, 'svc-before'))).ok, true, 'a first token: the key set is fetched');
  // The IdP rotates to a new key and issues a token signed with it, within the cool-down.
  published.push(rotated.publicJwk);
  const fresh = await bearer(rotated, 'svc-after');
  const before = await h.bus.log.lastSeq();
  const early = await askOn(h.bus.rpc, fresh);
  t.equal(early.ok, false);
  t.equal(early.reason, 'unavailable', `not checked yet, not refused: ${JSON.stringify(early)}`);
  t.ok(early.retryAfterSeconds !== undefined && early.retryAfterSeconds >= 1 && early.retryAfterSeconds <= 30, `Retry-After within the cool-down (${early.retryAfterSeconds})`);
  t.equal(await h.bus.log.lastSeq(), before, 'nothing recorded');

  t.same(await askOn(h.bus.rpc, await bearer(impostor, 'svc-forged')), { ok: false, reason: 'token signature invalid' }, 'a published kid with a bad signature is refused, cool-down or not');

  // The client's retry reaches a replica that fetches the set now (as this one does once the cool-down is over).
  const other = await replica();
  t.equal((await other(fresh)).ok, true, 'accepted against the set fetched again');
  // A kid missing from a set fetched for it (a replica's first token) is refused, and stays refused
  // while that set cools down: a token no key of the IdP signed is not told "retry later" for ever.
  const third = await replica();
  const stranger = await bearer(unpublished, 'svc-stranger');
  t.same(await third(stranger), { ok: false, reason: 'token signature invalid' }, 'missing from the set fetched for it');
  t.same(await third(stranger), { ok: false, reason: 'token signature invalid' }, 'asked again within the cool-down: still a refusal, not "retry later"');
  t.equal((await third(await bearer(rotated, 'svc-after-2'))).ok, true, 'that replica accepts a token of a published key meanwhile');
});
