// Session refresh against a real oidc-provider, the embedded bus and store: sealed tokens at login, refresh, refusal, outages, one refresh per session across replicas.
import { createServer, type Server } from 'node:http';
import type { EventLog } from '@portcullis/bus';
import type { ProviderConfig } from '@portcullis/config';
import type { SequencedEvent, SessionEvent, SessionRefreshedData, SessionStartedData } from '@portcullis/events';
import { createEvent } from '@portcullis/events';
import { cookieKeyId } from '@portcullis/protocol';
import type { SessionRecord } from '@portcullis/store';
import { DEMO_USERS, type Idp, type IdpUser, type StartIdpOptions, startIdp } from '@portcullis/testkit';
import { customFetch } from 'openid-client';
import t, { type Test } from 'tap';
import { createAuthService } from './app.ts';
import { OidcClients } from './oidc-clients.ts';
import { buildProviderRuntime } from './provider-runtime.ts';
import { openRefreshToken } from './sealed-refresh-token.ts';
import { createSessionRefresher, type RefreshOutcome, type SessionRefresher } from './session-refresher.ts';
import {
  buildConfig,
  buildProvider,
  COOKIE_SECRET,
  createRecordingLogger,
  type Harness,
  idpClientFor,
  loginThroughService,
  type RecordingLogger,
  startHarness,
} from './test-harness.ts';

const TIMEOUT_MS = 3000;

/** Everything a refresh test needs: an IdP whose users the test may change, the harness, and what the IdP saw. */
interface Setup {
  idp: Idp;
  h: Harness;
  users: IdpUser[];
  alice: IdpUser;
  provider: ProviderConfig;
  /** Raw refresh tokens the IdP issued, in order (never to appear in the log). */
  issuedRefreshTokens: string[];
  /** refresh_token grants that reached the IdP's token endpoint (successful or not). */
  refreshGrants(): number;
  /** Failed grants (e.g. a replayed rotated token). */
  grantErrors(): string[];
  logger: RecordingLogger;
}

async function setup(t: Test, opts: { provider?: Partial<ProviderConfig>; idp?: Partial<StartIdpOptions>; users?: IdpUser[] } = {}): Promise<Setup> {
  const users = opts.users ?? structuredClone(DEMO_USERS);
  const idp = await startIdp({ clients: [idpClientFor()], users, rotateRefreshTokens: true, ...opts.idp });
  // Some tests close the IdP themselves.
  t.teardown(() => idp.close().catch(() => {}));
  const issuedRefreshTokens: string[] = [];
  let grants = 0;
  const errors: string[] = [];
  idp.provider.on('refresh_token.saved', (token) => issuedRefreshTokens.push(token.jti));
  idp.provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params?.['grant_type'] === 'refresh_token') grants += 1;
  });
  idp.provider.on('grant.error', (ctx, err) => {
    if (ctx.oidc.params?.['grant_type'] === 'refresh_token') grants += 1;
    errors.push(err.message);
  });
  // Sessions live a day: long enough for several refreshes of the IdP's 1 h access tokens.
  const provider = buildProvider(idp.issuer, { refresh: true, access_token_validity: 86_400, ...opts.provider });
  const h = await startHarness(buildConfig([provider]), { idpTimeoutMs: TIMEOUT_MS });
  t.teardown(() => h.close());
  const logger = createRecordingLogger();
  await h.startAuth(logger);
  return {
    idp,
    h,
    users,
    alice: users.find((u) => u.username === 'alice')!,
    provider,
    issuedRefreshTokens,
    refreshGrants: () => grants,
    grantErrors: () => errors,
    logger,
  };
}

/** A test clock: starts at the real time and moves only when told. */
function testClock() {
  const clock = { at: Date.now(), now: () => clock.at };
  return clock;
}

/** A refresher of its own (like another replica) over the harness' bus and store. */
function refresherFor(
  s: Setup,
  clock: { now: () => number },
  opts: { providers?: ProviderConfig[]; lockMs?: number; logger?: RecordingLogger; batch?: number; intervalMs?: number; log?: EventLog } = {},
): { refresher: SessionRefresher; outcomes: Array<[string, RefreshOutcome]>; clients: OidcClients; logger: RecordingLogger } {
  const runtimes = new Map((opts.providers ?? [s.provider]).map((p) => [p.name, buildProviderRuntime(p)]));
  const clients = new OidcClients(
    [...runtimes.values()].map((p) => ({
      issuer: p.config.issuer,
      clientId: p.config.client_id,
      clientSecret: p.config.client_secret,
      redirectUris: [p.redirectUri],
    })),
    { timeoutMs: TIMEOUT_MS },
  );
  const outcomes: Array<[string, RefreshOutcome]> = [];
  const logger = opts.logger ?? createRecordingLogger();
  const refresher = createSessionRefresher({
    log: opts.log ?? s.h.bus.log,
    store: s.h.store,
    providers: () => ({ providers: runtimes, clients }),
    timeoutMs: TIMEOUT_MS,
    now: clock.now,
    logger,
    ...(opts.lockMs === undefined ? {} : { lockMs: opts.lockMs }),
    ...(opts.batch === undefined ? {} : { batch: opts.batch }),
    ...(opts.intervalMs === undefined ? {} : { intervalMs: opts.intervalMs }),
    onOutcome: (provider, outcome) => outcomes.push([provider, outcome]),
  });
  return { refresher, outcomes, clients, logger };
}

/** Every event of the log so far. */
async function readLog(s: Setup): Promise<SequencedEvent[]> {
  const last = await s.h.bus.log.lastSeq();
  const out: SequencedEvent[] = [];
  if (last === 0) return out;
  await new Promise<void>((resolve) => {
    const sub = s.h.bus.log.subscribe(1, (e) => {
      out.push(e);
      if (e.seq >= last) {
        resolve();
        void sub.close();
      }
    });
  });
  return out;
}

function ofType<T extends SessionEvent['type']>(events: SequencedEvent[], type: T): Array<Extract<SessionEvent, { type: T }>> {
  return events.map((e) => e.event).filter((e): e is Extract<SessionEvent, { type: T }> => e.type === type);
}

/** Logs alice (or `user`) in through the service; returns the live session once the store has it. */
async function login(s: Setup, user: IdpUser = s.alice): Promise<SessionRecord> {
  const { callback } = await loginThroughService(s.h, 'app', { user });
  if (callback.status !== 302) throw new Error(`login answered ${callback.status}: ${JSON.stringify(callback.page)}`);
  const seq = await s.h.bus.log.lastSeq();
  if (!(await s.h.store.waitForApplied(seq, 5000))) throw new Error('the store did not apply the login');
  const started = ofType(await readLog(s), 'SessionStarted').at(-1)!;
  const session = await s.h.store.getLiveSession(started.data.sessionId);
  if (!session) throw new Error('the new session is not live');
  return session;
}

async function applied(s: Setup): Promise<void> {
  if (!(await s.h.store.waitForApplied(await s.h.bus.log.lastSeq(), 5000))) throw new Error('the store did not catch up');
}

/** Serves an IdP's (still running) oidc-provider again on its port after `idp.close()`: same keys, same grants. */
async function reopenIdp(idp: Idp): Promise<Server> {
  const server = createServer(idp.provider.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(idp.port, '127.0.0.1', () => resolve());
  });
  return server;
}

t.test('login with refresh on records a sealed refresh token, a refreshAt and the cookie key id', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const started = ofType(await readLog(s), 'SessionStarted').at(-1)!;
  const data: SessionStartedData = started.data;
  const raw = s.issuedRefreshTokens.at(-1)!;
  t.ok(raw, 'the IdP issued a refresh token');
  t.type(data.refreshToken, 'string');
  t.notOk(JSON.stringify(started).includes(raw), 'the raw refresh token is not in the event');
  t.equal(openRefreshToken(COOKIE_SECRET, data.refreshToken!, data.sessionId, Date.now()), raw, 'the seal opens to the IdP token');
  t.equal(openRefreshToken(COOKIE_SECRET, data.refreshToken!, 'another-session', Date.now()), null, 'bound to its session');
  t.equal(openRefreshToken('another-cookie-secret-0123456789abcdef', data.refreshToken!, data.sessionId, Date.now()), null);
  // The IdP's access tokens live 3600 s: refresh 60 s before.
  t.equal(data.refreshAt, data.createdAt + 3540_000);
  t.equal(data.keyId, cookieKeyId(COOKIE_SECRET));
  t.equal(session.refreshAt, data.refreshAt, 'the projection has it');
  t.same(await s.h.store.dueForRefresh(data.refreshAt! - 1, 10), [], 'not due before refreshAt');
  t.same(await s.h.store.dueForRefresh(data.refreshAt!, 10), [data.sessionId], 'due at refreshAt');
  const logged = JSON.stringify(s.logger.lines);
  t.notOk(logged.includes(raw) || logged.includes(data.refreshToken!), 'no refresh token in the logs');
});

t.test('login with refresh off records no refresh token, but the cookie key id', async (t) => {
  const s = await setup(t, { provider: { refresh: false } });
  await login(s);
  const data = ofType(await readLog(s), 'SessionStarted').at(-1)!.data;
  t.ok(s.issuedRefreshTokens.length > 0, 'the IdP did issue one');
  t.equal(data.refreshToken, null);
  t.equal(data.refreshAt, null);
  t.equal(data.keyId, cookieKeyId(COOKIE_SECRET));
  for (const raw of s.issuedRefreshTokens) t.notOk(JSON.stringify(data).includes(raw));
});

t.test('refresh on but the IdP issues no refresh token: no refresh, and one warning naming the fix', async (t) => {
  const s = await setup(t, {
    idp: { clients: [{ ...idpClientFor(), grant_types: ['authorization_code'] }] },
  });
  await login(s);
  await login(s);
  for (const e of ofType(await readLog(s), 'SessionStarted')) {
    t.equal(e.data.refreshToken, null);
    t.equal(e.data.refreshAt, null);
  }
  const warnings = s.logger.lines.filter((l) => l.level === 'warn' && /issued no refresh token/.test(l.m));
  t.equal(warnings.length, 1, 'warned once for two logins');
  t.match(warnings[0]?.m, /offline_access/);
  t.match(warnings[0]?.o, { provider: 'app' });
});

t.test('a due session is refreshed: new tokens, claims and mapping results recomputed from the IdP', async (t) => {
  const s = await setup(t, {
    provider: { scope_mappings: [{ name: 'admin', expression: '{"is_admin": "admins" in request.user.groups}' }] },
  });
  const session = await login(s);
  t.same(session.claims['groups'], ['admins', 'users']);
  t.equal(session.claims['is_admin'], true);

  const clock = testClock();
  const { refresher, outcomes, logger } = refresherFor(s, clock);
  await refresher.tick();
  t.equal(s.refreshGrants(), 0, 'not due yet: nothing reaches the IdP');

  s.alice.groups = ['users'];
  clock.at = session.refreshAt!;
  await refresher.tick();
  t.equal(s.refreshGrants(), 1, 'one refresh grant');
  t.same(outcomes, [['app', 'refreshed']]);
  await applied(s);
  const refreshedEvents = ofType(await readLog(s), 'SessionRefreshed');
  t.equal(refreshedEvents.length, 1);
  const data: SessionRefreshedData = refreshedEvents[0]!.data;
  t.equal(data.sessionId, session.sessionId);
  t.equal(data.refreshedAt, clock.at);
  t.not(data.accessToken, session.accessToken, 'a new access token');
  t.ok(data.idToken && data.idToken !== session.idToken, 'a new ID token');
  t.same(data.claims['groups'], ['users'], 'the removed group is gone');
  t.equal(data.claims['is_admin'], false, 'the mapping saw the new groups');
  t.equal(data.refreshAt, clock.at + 3540_000, 'next refresh before the new access token expires');
  const rotated = s.issuedRefreshTokens.at(-1)!;
  t.equal(s.issuedRefreshTokens.length, 2, 'the IdP rotated the refresh token');
  t.equal(openRefreshToken(COOKIE_SECRET, data.refreshToken!, session.sessionId, clock.at), rotated, 'the rotated token is sealed');
  t.notOk(JSON.stringify(refreshedEvents[0]).includes(rotated), 'never raw');

  const live = await s.h.store.getLiveSession(session.sessionId);
  t.equal(live?.accessToken, data.accessToken, 'the projection serves the new token');
  t.equal(live?.seq, session.seq, 'same session version');
  t.equal(live?.expiresAt, session.expiresAt, 'the absolute lifetime is unchanged');

  await refresher.tick();
  t.equal(s.refreshGrants(), 1, 'refreshed sessions are not due again at once');
  const logged = JSON.stringify(logger.lines);
  for (const secret of [...s.issuedRefreshTokens, data.accessToken]) t.notOk(logged.includes(secret), 'no token logged');
});

t.test('a refresh without a new ID token still drops mapping results and claims the IdP no longer gives', async (t) => {
  const s = await setup(t, {
    provider: {
      scope_mappings: [
        {
          name: 'admin-header',
          expression: '"admins" in request.user.groups ? {"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-Admin": "yes"}}}} : {}',
        },
      ],
    },
  });
  const session = await login(s);
  t.match(session.claims['ak_proxy'], { user_attributes: { additionalHeaders: { 'X-Admin': 'yes' } } });

  const clock = testClock();
  const { refresher, clients } = refresherFor(s, clock);
  // An IdP that answers the refresh_token grant without an ID token (it is optional there).
  const oidc = await clients.get(s.provider.issuer, s.provider.client_id, s.provider.client_secret);
  const upstream = oidc[customFetch]!;
  oidc[customFetch] = async (url, options) => {
    const res = await upstream(url, options);
    if (!(options.body instanceof URLSearchParams) || options.body.get('grant_type') !== 'refresh_token') return res;
    const body = (await res.json()) as Record<string, unknown>;
    delete body['id_token'];
    return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
  };

  s.alice.groups = ['users'];
  clock.at = session.refreshAt!;
  await refresher.tick();
  await applied(s);
  const data = ofType(await readLog(s), 'SessionRefreshed')[0]?.data;
  t.ok(data, 'refreshed');
  t.equal(data?.idToken, session.idToken, 'no new ID token: the old one is kept');
  t.same(data?.claims['groups'], ['users'], 'userinfo groups');
  const headers = (data?.claims['ak_proxy'] as { user_attributes?: { additionalHeaders?: Record<string, string> } })?.user_attributes?.additionalHeaders;
  t.same(headers, { 'X-Demo-Team': 'platform' }, 'the admin header the mapping no longer gives is gone; the IdP\'s own stays');
});

t.test('refresh_interval refreshes sooner than the access token needs', async (t) => {
  const s = await setup(t, { provider: { refresh_interval: 600 } });
  const session = await login(s);
  t.equal(session.refreshAt, session.createdAt + 600_000);
  const clock = testClock();
  clock.at = session.refreshAt!;
  const { refresher } = refresherFor(s, clock, { providers: [s.provider] });
  await refresher.tick();
  await applied(s);
  t.equal(ofType(await readLog(s), 'SessionRefreshed')[0]?.data.refreshAt, clock.at + 600_000);
});

t.test('a user disabled at the IdP: the refresh is refused and the session ends', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  s.alice.disabled = true;
  const clock = testClock();
  clock.at = session.refreshAt!;
  const { refresher, outcomes, logger } = refresherFor(s, clock);
  await refresher.tick();
  t.same(outcomes, [['app', 'refused']]);
  await applied(s);
  const events = await readLog(s);
  t.equal(ofType(events, 'SessionRefreshed').length, 0);
  const ended = ofType(events, 'SessionEnded');
  t.equal(ended.length, 1);
  t.equal(ended[0]?.data.sessionId, session.sessionId);
  t.match(ended[0]?.data.reason, /refresh refused by the identity provider \(invalid_grant\)/);
  t.equal(await s.h.store.getLiveSession(session.sessionId), null, 'the session is gone');
  const warning = logger.lines.find((l) => l.level === 'warn');
  t.match(warning?.m, /refused to refresh a session/);
  t.match(warning?.o, { provider: 'app', issuer: s.idp.issuer, sub: session.sub });
  t.notOk(JSON.stringify(logger.lines).includes(session.sessionId), 'the session id is not logged');
});

t.test('a scope mapping that fails at refresh ends the session with an error log', async (t) => {
  const users = structuredClone(DEMO_USERS);
  const alice = users.find((u) => u.username === 'alice')!;
  alice.attributes = { ...alice.attributes, team: 'ops' };
  const s = await setup(t, {
    users,
    provider: { scope_mappings: [{ name: 'team', expression: '{"team": request.user.attributes["team"]}' }] },
  });
  const session = await login(s);
  t.equal(session.claims['team'], 'ops');
  alice.attributes = {};
  const clock = testClock();
  clock.at = session.refreshAt!;
  const { refresher, outcomes, logger } = refresherFor(s, clock);
  await refresher.tick();
  t.same(outcomes, [['app', 'refused']]);
  await applied(s);
  const ended = ofType(await readLog(s), 'SessionEnded');
  t.match(ended[0]?.data.reason, /scope mapping "team" failed/);
  const error = logger.lines.find((l) => l.level === 'error');
  t.match(error?.m, /The scope mapping "team" of provider "app" failed while refreshing a session/);
  t.match(error?.o, { mapping: 'team', provider: 'app' });
});

t.test('the IdP down: the session is kept and postponed with back-off, then refreshed once the IdP is back', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  clock.at = session.refreshAt!;
  const { refresher, outcomes, clients, logger } = refresherFor(s, clock, { lockMs: 200 });
  await clients.get(s.idp.issuer, s.provider.client_id, s.provider.client_secret);
  await s.idp.close();

  await refresher.tick();
  t.same(outcomes, [['app', 'failed']]);
  t.ok(await s.h.store.getLiveSession(session.sessionId, clock.at), 'the session is kept');
  t.same(await s.h.store.dueForRefresh(clock.at + 29_999, 10), [], 'postponed by 30 s');
  t.same(await s.h.store.dueForRefresh(clock.at + 30_000, 10), [session.sessionId]);
  const error = logger.lines.find((l) => l.level === 'error');
  t.match(error?.m, new RegExp(`identity provider ${s.idp.issuer.replace(/[.]/g, '\\.')} could not be reached during the token refresh`));
  t.match(error?.m, /The session is kept; its refresh is retried in 30 s/);
  t.match(error?.o, { provider: 'app', issuer: s.idp.issuer, attempt: 1, retryInSeconds: 30 });

  // Still down at the next attempt: the wait doubles.
  clock.at += 30_000;
  await waitForLock();
  await refresher.tick();
  t.same(outcomes.at(-1), ['app', 'failed']);
  t.same(await s.h.store.dueForRefresh(clock.at + 59_999, 10), [], 'postponed by 60 s');

  const server = await reopenIdp(s.idp);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('connection', (socket) => t.teardown(() => socket.destroy()));
  clock.at += 60_000;
  await waitForLock();
  await refresher.tick();
  t.same(outcomes.at(-1), ['app', 'refreshed'], `works again ${JSON.stringify(logger.lines.at(-1))}`);
  await applied(s);
  const refreshed = ofType(await readLog(s), 'SessionRefreshed');
  t.equal(refreshed.length, 1);
  t.equal(refreshed[0]?.data.refreshAt, clock.at + 3540_000);
  t.equal(ofType(await readLog(s), 'SessionEnded').length, 0);
});

/** The IdP-down test holds its 200 ms lock per attempt; let it lapse (the back-off itself runs on the test clock). */
function waitForLock(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 300));
}

t.test('the log refusing a granted (rotated) refresh: the replica keeps it and records it later; no replica reuses the spent token', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  clock.at = session.refreshAt!;
  // Replica A's bus is down for its first append; replica B's works.
  let refuse = true;
  const log = s.h.bus.log;
  const flakyLog: EventLog = {
    append: (e) => (refuse ? Promise.reject(new Error('stream unavailable')) : log.append(e)),
    lastSeq: () => log.lastSeq(),
    subscribe: (from, handler, onError) => log.subscribe(from, handler, onError),
  };
  const a = refresherFor(s, clock, { log: flakyLog, lockMs: 200 });
  const b = refresherFor(s, clock, { lockMs: 200 });

  await a.refresher.tick();
  t.same(a.outcomes, [['app', 'failed']]);
  t.equal(s.issuedRefreshTokens.length, 2, 'the IdP granted the refresh and rotated the token');
  t.match(a.logger.lines.find((l) => l.level === 'error')?.m, /refreshed at the identity provider, but the session log refused the result/);
  t.ok(await s.h.store.getLiveSession(session.sessionId, clock.at), 'the session is kept');

  // Due again after the back-off: replica B must not refresh with the spent token (the IdP would revoke the grant).
  clock.at += 30_000;
  await waitForLock();
  await b.refresher.tick();
  t.same(b.outcomes, [], 'replica B leaves it to the replica holding the refresh');
  t.same(s.grantErrors(), [], 'no spent token reached the IdP');

  refuse = false;
  const grants = s.refreshGrants();
  await a.refresher.tick();
  t.same(a.outcomes.at(-1), ['app', 'refreshed'], JSON.stringify(a.logger.lines.at(-1)));
  t.equal(s.refreshGrants(), grants, 'recorded without asking the IdP again');
  await applied(s);
  const refreshed = await s.h.store.getLiveSession(session.sessionId, clock.at);
  t.ok(refreshed && refreshed.refreshAt! > clock.at, 'the session holds the refresh');
  t.equal(ofType(await readLog(s), 'SessionEnded').length, 0, 'and was never ended');

  // The next refresh, by either replica, uses the token the kept refresh recorded.
  clock.at = refreshed!.refreshAt!;
  await waitForLock();
  await b.refresher.tick();
  t.same(b.outcomes.at(-1), ['app', 'refreshed']);
  t.same(s.grantErrors(), [], 'the rotation chain is intact');
});

t.test('two replicas ticking at once: one refresh grant reaches the IdP, and rotation keeps working', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  const a = refresherFor(s, clock);
  const b = refresherFor(s, clock);
  await Promise.all([
    a.clients.get(s.idp.issuer, s.provider.client_id, s.provider.client_secret),
    b.clients.get(s.idp.issuer, s.provider.client_id, s.provider.client_secret),
  ]);

  clock.at = session.refreshAt!;
  await Promise.all([a.refresher.tick(), b.refresher.tick(), a.refresher.tick(), b.refresher.tick()]);
  t.equal(s.refreshGrants(), 1, 'exactly one refresh grant');
  t.same(s.grantErrors(), []);
  t.same([...a.outcomes, ...b.outcomes], [['app', 'refreshed']]);
  await applied(s);
  t.equal(ofType(await readLog(s), 'SessionRefreshed').length, 1, 'one SessionRefreshed');

  const first = await s.h.store.getLiveSession(session.sessionId, clock.at);
  clock.at = first!.refreshAt!;
  await Promise.all([a.refresher.tick(), b.refresher.tick()]);
  t.equal(s.refreshGrants(), 2, 'the next cycle refreshes once more');
  t.same(s.grantErrors(), [], 'no replayed (rotated) token reached the IdP');
  await applied(s);
  const events = await readLog(s);
  t.equal(ofType(events, 'SessionRefreshed').length, 2);
  t.equal(ofType(events, 'SessionEnded').length, 0);
  const live = await s.h.store.getLiveSession(session.sessionId, clock.at);
  t.equal(openRefreshToken(COOKIE_SECRET, live!.refreshToken!, session.sessionId, clock.at), s.issuedRefreshTokens.at(-1), 'holds the newest token');
});

t.test('the refresher waits for the store to catch up with the log: a session ended meanwhile is not refreshed', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  clock.at = session.refreshAt!;
  const { refresher, outcomes, logger } = refresherFor(s, clock);
  // The projector stops: the store still shows the session live while the log already ended it.
  await s.h.sessions.stop();
  await s.h.bus.log.append(createEvent('SessionEnded', { sessionId: session.sessionId, reason: 'operator' }));
  t.ok(await s.h.store.getLiveSession(session.sessionId, clock.at), 'the store is behind');

  await refresher.tick();
  t.equal(s.refreshGrants(), 0, 'a store that does not catch up: the pass is skipped');
  t.match(logger.lines.find((l) => l.level === 'warn')?.m, /has not applied the session log/);

  const pass = refresher.tick();
  await s.h.sessions.start();
  await pass;
  t.equal(s.refreshGrants(), 0, 'nothing reached the IdP');
  t.same(outcomes, []);
  t.equal(ofType(await readLog(s), 'SessionRefreshed').length, 0);
});

t.test('a refresh token sealed under an older cookie_secret ends the session', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  clock.at = session.refreshAt!;
  const rotatedSecret = { ...s.provider, cookie_secret: 'a-new-cookie-secret-0123456789abcdefgh' };
  const { refresher, outcomes, logger } = refresherFor(s, clock, { providers: [rotatedSecret] });
  await refresher.tick();
  t.same(outcomes, [['app', 'refused']]);
  t.equal(s.refreshGrants(), 0);
  await applied(s);
  t.match(ofType(await readLog(s), 'SessionEnded')[0]?.data.reason, /cookie_secret changed/);
  t.match(logger.lines.find((l) => l.level === 'warn')?.m, /cookie_secret of provider "app" changed/);
});

t.test('refresh turned off by a config reload: sessions are left to their expiry; no provider with refresh: no pass at all', async (t) => {
  const s = await setup(t);
  const session = await login(s);
  const clock = testClock();
  clock.at = session.refreshAt!;
  const off = { ...s.provider, refresh: false };
  const other = buildProvider(s.idp.issuer, { name: 'other', external_host: 'http://other.localhost:18080', refresh: true });

  const none = refresherFor(s, clock, { providers: [off] });
  await none.refresher.tick();
  t.same(await s.h.store.dueForRefresh(clock.at, 10), [session.sessionId], 'untouched: no pass ran');

  const reloaded = refresherFor(s, clock, { providers: [off, other] });
  await reloaded.refresher.tick();
  t.equal(s.refreshGrants(), 0);
  t.same(await s.h.store.dueForRefresh(session.expiresAt - 1, 10), [], 'postponed to the session end');
  t.ok(await s.h.store.getLiveSession(session.sessionId, clock.at), 'still live');
});

t.test('the auth service runs the refresher and reports outcomes through onRefresh', async (t) => {
  const users = structuredClone(DEMO_USERS);
  const idp = await startIdp({ clients: [idpClientFor()], users, rotateRefreshTokens: true, ttl: { AccessToken: 7 } });
  t.teardown(() => idp.close());
  const provider = buildProvider(idp.issuer, { refresh: true });
  const h = await startHarness(buildConfig([provider]), { idpTimeoutMs: TIMEOUT_MS });
  t.teardown(() => h.close());
  const outcomes: Array<[string, RefreshOutcome]> = [];
  const service = createAuthService({
    config: h.config,
    bus: h.bus,
    store: h.store,
    idpTimeoutMs: TIMEOUT_MS,
    onRefresh: (p, o) => outcomes.push([p, o]),
  });
  await service.start();
  const { callback } = await loginThroughService(h, 'app', { user: users[0]! });
  t.equal(callback.status, 302);
  // 7 s access tokens: refreshed 20 % (1.4 s) before they expire, by the service's own 1 s timer.
  const deadline = Date.now() + 20_000;
  while (outcomes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.same(outcomes[0], ['app', 'refreshed']);
  await applied({ h } as Setup);
  const refreshed = (await h.store.listLiveSessions())[0];
  t.ok(refreshed?.refreshAt && refreshed.refreshAt > refreshed.createdAt + 5_000, 'the projection holds the next refresh');
  await service.stop();
});

t.test('a backlog larger than one batch is drained at once, not one batch per interval', async (t) => {
  const s = await setup(t);
  const sessions = [];
  for (let i = 0; i < 5; i++) sessions.push(await login(s));
  const clock = testClock();
  clock.at = Math.max(...sessions.map((x) => x.refreshAt!));
  // Batches of 2 and a one-hour interval: only draining without waiting refreshes all five.
  const { refresher, outcomes } = refresherFor(s, clock, { batch: 2, intervalMs: 3_600_000 });
  refresher.start();
  t.teardown(() => refresher.stop());
  const until = Date.now() + 20_000;
  while (outcomes.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.same(
    outcomes.map(([, o]) => o),
    ['refreshed', 'refreshed', 'refreshed', 'refreshed', 'refreshed'],
    'all five due sessions were refreshed by passes that followed each other',
  );
  t.equal(s.refreshGrants(), 5);
});
