// backchannel_logout against a real oidc-provider: IdP-sent logout tokens end sessions; every malformed or forged token is refused.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { Bus } from '@portcullis/bus';
import { createMemoryBus } from '@portcullis/bus';
import { AUTH_SUBJECTS, type AuthReply } from '@portcullis/events';
import { sessionCookieName, verifySessionCookie } from '@portcullis/protocol';
import { createRedisStore, type SessionRecord } from '@portcullis/store';
import { type Browser, createBrowser, DEMO_USERS, startIdp, startRedisServer } from '@portcullis/testkit';
import { type JWTPayload, SignJWT } from 'jose';
import t, { type Test } from 'tap';
import { createAuthService } from './app.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from './logout-token.ts';
import {
  buildConfig,
  buildProvider,
  CLIENT_ID,
  closeLocal,
  COOKIE_SECRET,
  cookiesFrom,
  createLocalKey,
  createRecordingLogger,
  type Harness,
  idpClientFor,
  listenLocal,
  type LocalKey,
  loginAtIdp,
  loginThroughService,
  openDeadRedisStore,
  requestCallback,
  requestStart,
  startHarness,
  startJwksSwappingFront,
  startMergedKeySet,
  startRotatingKeysIdp,
  startTestIdp,
} from './test-harness.ts';

const FORM = 'application/x-www-form-urlencoded';
const OTHER_HOST = 'http://other.localhost:18080';
const MAX_AGE = 300;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The relying party's back-channel endpoint as the gateway will run it: the POST goes to the bus as is. */
interface Forwarder {
  url: string;
  bus?: Bus;
  replies: AuthReply[];
  /** Resolves with the next reply given to the IdP. */
  nextReply(): Promise<AuthReply>;
  close(): Promise<void>;
}

async function startForwarder(): Promise<Forwarder> {
  const waiters: ((r: AuthReply) => void)[] = [];
  const fwd: Forwarder = {
    url: '',
    replies: [],
    nextReply: () => new Promise((resolve) => waiters.push(resolve)),
    close: () => closeLocal(server),
  };
  const server = createServer((req, res) => {
    readBody(req)
      .then((body) =>
        fwd.bus!.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: req.headers['content-type'] ?? '', body }),
      )
      .then((reply) => {
        fwd.replies.push(reply);
        res.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(reply.json ? JSON.stringify(reply.json) : '');
        for (const w of waiters.splice(0)) w(reply);
      })
      .catch(() => {
        res.statusCode = 500;
        res.end();
      });
  });
  fwd.url = `${await listenLocal(server)}/backchannel`;
  return fwd;
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}


/**
 * `log` with its appends of events matching `hold` held until `release()`: `holding` resolves once
 * one is waiting (a slow stream leader, or a login whose append races a logout).
 */
function holdAppends(log: Bus['log'], hold: (event: Parameters<Bus['log']['append']>[0]) => boolean) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held!: () => void;
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const wrapped = new Proxy(log, {
    get(target, prop) {
      if (prop === 'append') {
        return async (event: Parameters<Bus['log']['append']>[0]) => {
          if (hold(event)) {
            held();
            await released;
          }
          return target.append(event);
        };
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { log: wrapped, holding, release };
}

t.test('back-channel logout', async (t) => {
  const rsa = await createLocalKey('RS256');
  const ec = await createLocalKey('ES256');
  // Same kid as `rsa`, different key: the published key is found, the signature does not match it.
  const impostor = { ...(await createLocalKey('RS256')), kid: rsa.kid };
  const unpublished = await createLocalKey('RS256');

  const keySet = await startMergedKeySet([rsa.publicJwk, ec.publicJwk]);
  t.teardown(() => keySet.close());
  const front = await startJwksSwappingFront();
  t.teardown(() => front.close());
  const forwarder = await startForwarder();
  t.teardown(() => forwarder.close());
  const idp = await startIdp({ clients: [{ ...idpClientFor(), backchannel_logout_uri: forwarder.url }], issuer: front.url });
  t.teardown(() => idp.close());
  keySet.setIdpPort(idp.port);
  front.target(idp.port, keySet.url);
  const otherIdp = await startTestIdp([idpClientFor(OTHER_HOST)]);
  t.teardown(() => otherIdp.close());

  // No re-fetch cool-down: a token naming an unknown key is judged against a set fetched for it (a
  // final 400); within the cool-down it is a 503 (see the key-rotation test below).
  const h = await startHarness(
    buildConfig([
      buildProvider(front.url, { backchannel_logout_max_age: MAX_AGE }),
      buildProvider(otherIdp.issuer, { name: 'other', external_host: OTHER_HOST }),
    ]),
    { keySetCooldownMs: 0 },
  );
  t.teardown(() => h.close());
  forwarder.bus = h.bus;
  const logger = createRecordingLogger();
  await h.startAuth(logger);

  const browsers: Browser[] = [];
  t.teardown(async () => {
    for (const b of browsers) await b.close();
  });

  /** Logs a user in with a fresh browser (so a fresh IdP session) and returns the live session. */
  async function login(provider = 'app', user = DEMO_USERS[0]!): Promise<{ session: SessionRecord; browser: Browser }> {
    const browser = createBrowser();
    browsers.push(browser);
    const externalHost = provider === 'app' ? undefined : OTHER_HOST;
    const { callback } = await loginThroughService({ ...h, browser } as Harness, provider, { user, ...(externalHost ? { externalHost } : {}) });
    const cookie = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '');
    if (!cookie) throw new Error(`login failed: ${JSON.stringify(callback)}`);
    await h.store.waitForApplied(cookie.seq, 2000);
    const session = await h.store.getLiveSession(cookie.sessionId);
    if (!session) throw new Error('the new session is not live');
    return { session, browser };
  }

  function claimsFor(target: { sid?: string | null; sub?: string | null }, overrides: Record<string, unknown> = {}): JWTPayload {
    const claims: Record<string, unknown> = {
      iss: front.url,
      aud: CLIENT_ID,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
      ...(target.sid ? { sid: target.sid } : {}),
      ...(target.sub ? { sub: target.sub } : {}),
      ...overrides,
    };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return claims as JWTPayload;
  }

  function sign(claims: JWTPayload, key: LocalKey = rsa, alg = key.publicJwk.alg as string): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg, kid: key.kid, typ: 'logout+jwt' }).sign(key.privateKey);
  }

  function post(body: string, contentType = FORM, provider = 'app'): Promise<AuthReply> {
    return h.bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider, contentType, body });
  }

  const postToken = (token: string) => post(new URLSearchParams({ logout_token: token }).toString());

  /**
   * Two auth replicas sharing one Redis for their jti memory (as in a cluster) and the harness's log;
   * replica A's appends are held until `release`. `logger` goes to replica B.
   */
  async function twoReplicas(t: Test, options: { pendingLogoutTakeoverMs?: number } = {}, logger?: ReturnType<typeof createRecordingLogger>) {
    const redis = await startRedisServer();
    t.teardown(() => redis.stop());
    const jtiStore = await createRedisStore({
      redis: { url: redis.url, key_prefix: 'bcl:', tls: null, sentinels: null, sentinel_name: null, cluster_nodes: null, password: null },
    });
    t.teardown(() => jtiStore.close());
    const { log: heldLog, holding, release } = holdAppends(h.bus.log, () => true);
    const rpcA = createMemoryBus();
    const rpcB = createMemoryBus();
    t.teardown(() => Promise.all([rpcA.close(), rpcB.close()]));
    const replicaA = createAuthService({ config: h.config, bus: { ...rpcA, log: heldLog }, store: jtiStore, ...options });
    const replicaB = createAuthService({ config: h.config, bus: { ...rpcB, log: h.bus.log }, store: jtiStore, ...options, ...(logger ? { logger } : {}) });
    await replicaA.start();
    await replicaB.start();
    t.teardown(() => Promise.all([replicaA.stop(), replicaB.stop()]));
    return { rpcA, rpcB, holding, release };
  }

  async function expectEnded(t: Test, reply: AuthReply): Promise<void> {
    t.equal(reply.status, 200, JSON.stringify(reply.json));
    t.same(reply.setCookies, []);
    t.equal(reply.json, undefined, 'a success has an empty body');
    t.equal(reply.revokedAtSeq, await h.bus.log.lastSeq(), 'the IdpSessionEnded event is the newest');
    t.ok(await h.store.waitForApplied(reply.revokedAtSeq!, 2000));
  }

  t.test('the IdP ending its session POSTs a logout token that kills the session', async (t) => {
    const { session, browser } = await login('app', DEMO_USERS[1]!);
    t.type(session.sid, 'string', 'the session knows its IdP session');
    const replied = forwarder.nextReply();
    // The user signs out at the IdP directly (not through us): only the back-channel can tell us.
    const { final } = await browser.follow(`${front.url}/session/end?client_id=${CLIENT_ID}`);
    t.equal(final.status, 200, 'the IdP shows its signed-out page');
    const reply = await replied;
    await expectEnded(t, reply);
    t.equal(await h.store.getLiveSession(session.sessionId), null, 'the session is dead');
    const { event } = (await readLast(h.bus))!;
    t.same(event, { type: 'IdpSessionEnded', data: { issuer: front.url, sid: session.sid, sub: null } });
  });

  t.test('a back-channel logout recorded while a login under that IdP session is finishing leaves that login no live session', async (t) => {
    // A replica whose SessionStarted reaches the log only once the logout is recorded (a slow append,
    // a userinfo call): the code was exchanged while the IdP session lived, so the IdP cannot refuse it.
    const rpcBus = createMemoryBus();
    t.teardown(() => rpcBus.close());
    const { log, holding, release } = holdAppends(h.bus.log, (event) => event.type === 'SessionStarted');
    const service = createAuthService({ config: h.config, bus: { ...rpcBus, log }, store: h.store });
    await service.start();
    t.teardown(() => service.stop());

    const browser = createBrowser();
    browsers.push(browser);
    const start = await requestStart(rpcBus, 'app');
    const query = await loginAtIdp(browser, start.location!);
    const finishing = requestCallback(rpcBus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    await holding;
    // The user signs out at the IdP meanwhile: its logout token is recorded before the login's start.
    const replied = forwarder.nextReply();
    const { final } = await browser.follow(`${front.url}/session/end?client_id=${CLIENT_ID}`);
    t.equal(final.status, 200, 'the IdP shows its signed-out page');
    await expectEnded(t, await replied);
    const ended = (await readLast(h.bus))!.event;
    release();
    const callback = await finishing;
    const cookie = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '');
    t.ok(cookie, 'the login itself completed');
    t.ok(await h.store.waitForApplied(cookie!.seq, 2000));
    const startedEvent = (await readLast(h.bus))!.event;
    t.equal(startedEvent.type, 'SessionStarted');
    t.equal((startedEvent.data as { sid: string }).sid, (ended.data as { sid: string }).sid, 'the login was under the ended IdP session');
    t.equal(await h.store.getLiveSession(cookie!.sessionId), null, 'the cookie opens nothing');
  });

  t.test('every refused request → 400 invalid_request, nothing recorded, the session lives', async (t) => {
    const { session } = await login();
    const target = { sid: session.sid, sub: session.sub };
    const now = Math.floor(Date.now() / 1000);
    const hs256 = await new SignJWT(claimsFor(target)).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('a'.repeat(32)));
    const unsigned = `${base64url({ alg: 'none', typ: 'logout+jwt' })}.${base64url(claimsFor(target))}.`;

    const cases: [string, () => Promise<AuthReply>, RegExp][] = [
      ['wrong content type', async () => post(`logout_token=${await sign(claimsFor(target))}`, 'application/json'), /application\/x-www-form-urlencoded/],
      ['no content type', async () => post(`logout_token=${await sign(claimsFor(target))}`, ''), /without a content type/],
      ['missing logout_token', () => post('token=abc'), /no logout_token/],
      ['empty logout_token', () => post('logout_token='), /no logout_token/],
      ['two logout_tokens', async () => post(`logout_token=${await sign(claimsFor(target))}&logout_token=x`), /more than one/],
      ['not a JWT', () => postToken('not-a-jwt'), /not a valid signed JWT/],
      ['bad signature (published kid, other key)', async () => postToken(await sign(claimsFor(target), impostor)), /signature is not valid/],
      ['key the IdP does not publish', async () => postToken(await sign(claimsFor(target), unpublished)), /not signed by any key/],
      ['HS256', () => postToken(hs256), /algorithm is not accepted/],
      ['alg none', () => postToken(unsigned), /algorithm is not accepted/],
      ['other issuer', async () => postToken(await sign(claimsFor(target, { iss: otherIdp.issuer }))), /issuer is not/],
      ['no issuer', async () => postToken(await sign(claimsFor(target, { iss: undefined }))), /no "iss" claim/],
      ['wrong aud', async () => postToken(await sign(claimsFor(target, { aud: 'someone-else' }))), /audience does not include/],
      ['aud list without us', async () => postToken(await sign(claimsFor(target, { aud: ['a', 'b'] }))), /audience does not include/],
      ['iat too old', async () => postToken(await sign(claimsFor(target, { iat: now - MAX_AGE - 30 }))), /backchannel_logout_max_age/],
      ['iat in the future', async () => postToken(await sign(claimsFor(target, { iat: now + 600 }))), /in the future/],
      ['no iat', async () => postToken(await sign(claimsFor(target, { iat: undefined }))), /no numeric "iat"/],
      ['expired', async () => postToken(await sign(claimsFor(target, { exp: now - 120 }))), /expired/],
      ['missing events', async () => postToken(await sign(claimsFor(target, { events: undefined }))), /no "events" claim/],
      ['events without the logout member', async () => postToken(await sign(claimsFor(target, { events: { other: {} } }))), /no "events" claim/],
      [
        'events member not an object',
        async () => postToken(await sign(claimsFor(target, { events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }))),
        /not a JSON object/,
      ],
      ['nonce present', async () => postToken(await sign(claimsFor(target, { nonce: 'n-0' }))), /"nonce"/],
      ['neither sid nor sub', async () => postToken(await sign(claimsFor({}))), /neither a session/],
      ['sid not a string', async () => postToken(await sign(claimsFor({ sub: session.sub }, { sid: 42 }))), /"sid" claim is not/],
      ['no jti', async () => postToken(await sign(claimsFor(target, { jti: undefined }))), /no "jti" claim/],
    ];

    const before = await h.bus.log.lastSeq();
    for (const [name, send, description] of cases) {
      const reply = await send();
      t.equal(reply.status, 400, `${name}: 400`);
      t.equal(reply.json?.['error'], 'invalid_request', `${name}: invalid_request`);
      t.match(reply.json?.['error_description'], description, `${name}: says why`);
      t.notMatch(String(reply.json?.['error_description']), /\n\s+at /, `${name}: no stack`);
      t.equal(reply.revokedAtSeq, undefined, `${name}: nothing to wait for`);
    }
    t.equal(await h.bus.log.lastSeq(), before, 'nothing was appended');
    t.ok(await h.store.getLiveSession(session.sessionId), 'the session is still live');
  });

  t.test('a replayed token whose logout is recorded → 200 with the same revokedAtSeq, recorded once; its jti on another token → 400', async (t) => {
    // An IdP session nobody has here: the first delivery succeeds and ends nothing.
    const jti = randomUUID();
    const token = await sign(claimsFor({ sid: `gone-${randomUUID()}` }, { jti }));
    const first = await postToken(token);
    await expectEnded(t, first);
    const seq = await h.bus.log.lastSeq();
    const again = await postToken(token);
    t.equal(again.status, 200, JSON.stringify(again.json));
    t.equal(again.revokedAtSeq, first.revokedAtSeq, 'the gateway confirms the same revocation again');
    t.equal(await h.bus.log.lastSeq(), seq, 'the replay appended nothing');
    // The same jti on a token with other content is not a redelivery: a replayed jti, refused.
    const reused = await postToken(await sign(claimsFor({ sid: `gone-${randomUUID()}` }, { jti })));
    t.equal(reused.status, 400);
    t.equal(reused.json?.['error'], 'invalid_request');
    t.match(reused.json?.['error_description'], /already used/);
    t.equal(reused.revokedAtSeq, undefined);
    t.equal(await h.bus.log.lastSeq(), seq, 'the reused jti appended nothing');
  });

  t.test('the IdP retrying a token whose logout was recorded but not confirmed (gateway 503) → 200 again, on any replica (jti memory in Redis), nothing appended twice', async (t) => {
    // Replica A's append is held until the test lets it go (a slow stream leader).
    const { rpcA, rpcB, holding, release } = await twoReplicas(t);
    const ask = (bus: Bus, body: string) => bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body });

    const { session } = await login();
    const body = `logout_token=${await sign(claimsFor({ sid: session.sid }))}`;
    const before = await h.bus.log.lastSeq();
    const firstDelivery = ask(rpcA, body);
    await holding;
    // The IdP gave up on the first delivery and retries elsewhere while it is still being recorded.
    const meanwhile = await ask(rpcB, body);
    t.equal(meanwhile.status, 503, 'not "already used": the first delivery has not recorded anything yet');
    t.equal(meanwhile.json?.['error'], 'temporarily_unavailable');
    t.match(meanwhile.json?.['error_description'], /still being recorded/);
    t.equal(meanwhile.retryAfterSeconds, 1, 'retry in a second');
    t.equal(meanwhile.revokedAtSeq, undefined);
    release();
    const first = await firstDelivery;
    t.equal(first.status, 200);
    t.equal(first.revokedAtSeq, before + 1, 'recorded');
    // The gateway that carried the first delivery could not confirm the revocation in time and
    // answered 503 (the event is recorded): the IdP retries the very same token.
    for (const [name, bus] of [
      ['another replica', rpcB],
      ['the same replica', rpcA],
    ] as const) {
      const retry = await ask(bus, body);
      t.equal(retry.status, 200, `${name}: ${JSON.stringify(retry.json)}`);
      t.equal(retry.revokedAtSeq, first.revokedAtSeq, `${name}: the gateway waits for the recorded revocation again`);
    }
    t.equal(await h.bus.log.lastSeq(), before + 1, 'the logout was recorded once');
    t.ok(await h.store.waitForApplied(first.revokedAtSeq!, 2000));
    t.equal(await h.store.getLiveSession(session.sessionId), null, 'the session is dead');
  });

  t.test('a delivery that took the jti and never recorded the logout (its process died) is taken over by a redelivery after the takeover time; another token with that jti is refused meanwhile', async (t) => {
    // Replica A consumes the jti, then its append hangs (as if the process died before it).
    const TAKEOVER_MS = 400;
    const recorded = createRecordingLogger();
    const { rpcA, rpcB, holding, release } = await twoReplicas(t, { pendingLogoutTakeoverMs: TAKEOVER_MS }, recorded);
    const ask = (bus: Bus, body: string) => bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body });

    const { session } = await login();
    const claims = claimsFor({ sid: session.sid });
    const body = `logout_token=${await sign(claims)}`;
    const before = await h.bus.log.lastSeq();
    const abandoned = ask(rpcA, body);
    await holding;
    const early = await ask(rpcB, body);
    t.equal(early.status, 503, 'within the takeover time: the earlier delivery may still record it');
    t.equal(early.retryAfterSeconds, 1);
    const sameJti = await ask(rpcB, `logout_token=${await sign({ ...claims, iat: (claims.iat as number) - 1 })}`);
    t.equal(sameJti.status, 400, 'another token with the same jti is a replay, also while the first is pending');
    t.equal(await h.bus.log.lastSeq(), before, 'nothing recorded yet');
    t.ok(await h.store.getLiveSession(session.sessionId), 'the session still lives');

    await new Promise((r) => setTimeout(r, TAKEOVER_MS + 50));
    const late = await ask(rpcB, body);
    t.equal(late.status, 200, `after the takeover time the redelivery records the logout: ${JSON.stringify(late.json)}`);
    t.equal(late.revokedAtSeq, before + 1);
    t.ok(await h.store.waitForApplied(late.revokedAtSeq!, 2000));
    t.equal(await h.store.getLiveSession(session.sessionId), null, 'the session is dead');
    t.ok(recorded.lines.some((l) => l.level === 'warn' && /recorded by a redelivery/.test(l.m)), 'the takeover is logged');
    const again = await ask(rpcA, body);
    t.equal(again.status, 200, 'a further redelivery is confirmed from the recorded outcome');
    t.equal(again.revokedAtSeq, late.revokedAtSeq);

    // Had the first delivery been only slow, it records the logout too: a second IdpSessionEnded ends nothing more.
    release();
    t.equal((await abandoned).status, 200);
  });

  t.test('an ES256 token from the same key set is accepted', async (t) => {
    await expectEnded(t, await postToken(await sign(claimsFor({ sid: `gone-${randomUUID()}` }), ec)));
  });

  t.test('sid only ends that IdP session; sub only ends every session of the user from that issuer', async (t) => {
    const first = await login();
    const second = await login();
    const elsewhere = await login('other');
    t.not(first.session.sid, second.session.sid, 'two browsers, two IdP sessions');
    t.equal(elsewhere.session.sub, first.session.sub, 'the same user at another issuer');

    await expectEnded(t, await postToken(await sign(claimsFor({ sid: first.session.sid }))));
    t.equal(await h.store.getLiveSession(first.session.sessionId), null, 'the named IdP session is dead');
    t.ok(await h.store.getLiveSession(second.session.sessionId), 'the other IdP session of the same user lives');

    const third = await login();
    const reply = await postToken(await sign(claimsFor({ sub: first.session.sub })));
    await expectEnded(t, reply);
    t.same((await readLast(h.bus))?.event.data, { issuer: front.url, sid: null, sub: first.session.sub });
    t.equal(await h.store.getLiveSession(second.session.sessionId), null);
    t.equal(await h.store.getLiveSession(third.session.sessionId), null);
    t.ok(await h.store.getLiveSession(elsewhere.session.sessionId), 'the session from the other issuer lives');
  });

  t.test('a token with sid and sub ends by sid', async (t) => {
    const a = await login();
    const b = await login();
    await expectEnded(t, await postToken(await sign(claimsFor({ sid: a.session.sid, sub: a.session.sub }))));
    t.same((await readLast(h.bus))?.event.data, { issuer: front.url, sid: a.session.sid, sub: null });
    t.equal(await h.store.getLiveSession(a.session.sessionId), null);
    t.ok(await h.store.getLiveSession(b.session.sessionId), 'only that IdP session ends');
  });

  t.test('an unknown provider → 503 temporarily_unavailable', async (t) => {
    const reply = await post(`logout_token=${await sign(claimsFor({ sid: 'x' }))}`, FORM, 'nobody');
    t.equal(reply.status, 503);
    t.equal(reply.json?.['error'], 'temporarily_unavailable');
    t.match(reply.json?.['error_description'], /"nobody" is not configured/);
  });

  t.test('a log that refuses the append → 503, never a success', async (t) => {
    const { session } = await login();
    const bus = createMemoryBus();
    t.teardown(() => bus.close());
    const refusingBus = {
      ...bus,
      log: {
        ...bus.log,
        append: async () => {
          throw new Error('stream unavailable');
        },
      },
    };
    const service = createAuthService({ config: h.config, bus: refusingBus, store: h.store });
    await service.start();
    t.teardown(() => service.stop());
    const reply = await bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, {
      provider: 'app',
      contentType: FORM,
      body: `logout_token=${await sign(claimsFor({ sid: session.sid }))}`,
    });
    t.equal(reply.status, 503);
    t.equal(reply.json?.['error'], 'temporarily_unavailable');
    t.match(reply.json?.['error_description'], /could not be recorded/);
    t.equal(reply.revokedAtSeq, undefined);
    t.ok(await h.store.getLiveSession(session.sessionId), 'the session is still live');
  });

  t.test('a session store that does not answer the jti check → 503 temporarily_unavailable (retry), not a 500', async (t) => {
    const { session } = await login();
    const bus = createMemoryBus();
    t.teardown(() => bus.close());
    // A replica whose Redis is gone: the jti cannot be checked, so nothing may be done.
    const deadStore = await openDeadRedisStore();
    t.teardown(() => deadStore.close());
    const service = createAuthService({ config: h.config, bus, store: deadStore });
    await service.start();
    t.teardown(() => service.stop());
    const body = `logout_token=${await sign(claimsFor({ sid: session.sid }))}`;
    const reply = await bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body }, 20_000);
    t.equal(reply.status, 503, JSON.stringify(reply.json));
    t.equal(reply.json?.['error'], 'temporarily_unavailable');
    t.match(reply.json?.['error_description'], /session store is not answering/);
    t.equal(await bus.log.lastSeq(), 0, 'nothing recorded');
    // The IdP's retry on a healthy replica is accepted (the jti was never used).
    await expectEnded(t, await post(body));
  });

  t.test('the IdP retrying a token whose append failed (503) → accepted, on this replica or another', async (t) => {
    const { session } = await login();
    const bus = createMemoryBus();
    t.teardown(() => bus.close());
    let refusals = 0;
    const flakyBus = {
      ...bus,
      log: {
        ...bus.log,
        append: async () => {
          refusals++;
          throw new Error('stream unavailable');
        },
      },
    };
    // A replica sharing the store (the jti memory) whose log append fails.
    const service = createAuthService({ config: h.config, bus: flakyBus, store: h.store });
    await service.start();
    t.teardown(() => service.stop());
    const body = `logout_token=${await sign(claimsFor({ sid: session.sid }))}`;
    const failed = await bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body });
    t.equal(failed.status, 503, 'the failed append is a 503: retry later');
    t.equal(refusals, 1);
    const again = await bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body });
    t.equal(again.status, 503, 'the same replica retried: still 503 (not "already used")');
    t.equal(refusals, 2, 'the retry reached the append');
    // The IdP's next retry lands on a healthy replica.
    await expectEnded(t, await post(body));
    t.equal(await h.store.getLiveSession(session.sessionId), null, 'the session is dead');
  });

  t.test('the log lines name each outcome and never hold a token', async (t) => {
    const jti = randomUUID();
    const token = await sign(claimsFor({ sid: `gone-${randomUUID()}` }, { jti }));
    await postToken(token);
    await postToken(token);
    await postToken(await sign(claimsFor({ sid: `gone-${randomUUID()}` }, { jti })));
    const lines = logger.lines.filter((l) => (l.o as { subject?: string }).subject === AUTH_SUBJECTS.backchannelLogout);
    t.ok(lines.some((l) => l.level === 'info'), 'successes are logged');
    t.ok(lines.some((l) => l.level === 'info' && (l.o as { repeated?: boolean }).repeated === true), 'a redelivery is logged as one');
    t.ok(lines.some((l) => l.level === 'warn' && (l.o as { code?: string }).code === 'PORTCULLIS_AUTH_LOGOUT_TOKEN_REPLAYED'), 'refusals are logged with their code');
    const all = JSON.stringify(logger.lines);
    t.notOk(all.includes(token.split('.')[2]!), 'no token signature in the logs');
    t.notOk(all.includes(token.split('.')[1]!), 'no token payload in the logs');
  });
});

t.test('an IdP that rotated its signing key since our last key-set fetch (within the re-fetch cool-down) → 503 with Retry-After, accepted once the set is fetched again; a bad signature stays 400', async (t) => {
  const { current, rotated, impostor, unpublished, published, issuer, h, replica } = await startRotatingKeysIdp(t);
  const sign = (key: LocalKey) =>
    new SignJWT({ iss: issuer, aud: CLIENT_ID, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), sid: `gone-${randomUUID()}`, events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'logout+jwt' })
      .sign(key.privateKey);
  const post = (bus: Bus, token: string) =>
    bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body: `logout_token=${token}` });

  t.equal((await post(h.bus, await sign(current))).status, 200, 'a first logout: the key set is fetched');
  // The IdP rotates to a new key and signs its next logout token with it, within the cool-down.
  published.push(rotated.publicJwk);
  const token = await sign(rotated);
  const before = await h.bus.log.lastSeq();
  const early = await post(h.bus, token);
  t.equal(early.status, 503, `not a final 400: ${JSON.stringify(early.json)}`);
  t.equal(early.json?.['error'], 'temporarily_unavailable');
  t.match(early.json?.['error_description'], /not in the key set .* fetched again/);
  t.ok(early.retryAfterSeconds !== undefined && early.retryAfterSeconds >= 1 && early.retryAfterSeconds <= 30, `Retry-After within the cool-down (${early.retryAfterSeconds})`);
  t.equal(early.revokedAtSeq, undefined);
  t.equal(await h.bus.log.lastSeq(), before, 'nothing recorded');

  const forged = await post(h.bus, await sign(impostor));
  t.equal(forged.status, 400, 'a published kid with a bad signature is refused for good, cool-down or not');
  t.match(forged.json?.['error_description'], /signature is not valid/);
  t.equal(forged.retryAfterSeconds, undefined);

  // The IdP's retry reaches a replica that fetches the set now (as this one does once the cool-down
  // is over): accepted, since the 503 used up nothing.
  const retry = await post(await replica(), token);
  t.equal(retry.status, 200, JSON.stringify(retry.json));
  t.equal(retry.revokedAtSeq, before + 1);
  // A kid still unknown right after a fetch is final.
  const unknown = await post(await replica(), await sign(unpublished));
  t.equal(unknown.status, 400);
  t.match(unknown.json?.['error_description'], /not signed by any key/);
});

t.test('back-channel logout when the IdP cannot be reached → 503 temporarily_unavailable', async (t) => {
  const key = await createLocalKey('RS256');
  // Discovery works but the key set it names does not answer.
  const front = await startJwksSwappingFront();
  t.teardown(() => front.close());
  const idp = await startIdp({ clients: [idpClientFor()], issuer: front.url });
  t.teardown(() => idp.close());
  front.target(idp.port, 'http://127.0.0.1:1/jwks');
  const dead = 'http://127.0.0.1:1';
  const h = await startHarness(buildConfig([buildProvider(front.url), buildProvider(dead, { name: 'dead' })]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  await h.startAuth();
  const token = await new SignJWT({
    iss: front.url,
    aud: CLIENT_ID,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    sid: 's',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
  })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .sign(key.privateKey);

  const noKeys = await h.bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'app', contentType: FORM, body: `logout_token=${token}` });
  t.equal(noKeys.status, 503);
  t.equal(noKeys.json?.['error'], 'temporarily_unavailable');
  t.match(noKeys.json?.['error_description'], /signing keys .* could not be fetched \(connection failed/);

  const noDiscovery = await h.bus.rpc.request<AuthReply>(AUTH_SUBJECTS.backchannelLogout, { provider: 'dead', contentType: FORM, body: `logout_token=${token}` });
  t.equal(noDiscovery.status, 503);
  t.equal(noDiscovery.json?.['error'], 'temporarily_unavailable');
  t.match(noDiscovery.json?.['error_description'], /could not be reached/);
  t.equal(await h.bus.log.lastSeq(), 0, 'nothing recorded');
});

/** The newest event of the log. */
async function readLast(bus: Bus): Promise<{ seq: number; event: { type: string; data: unknown } } | undefined> {
  const last = await bus.log.lastSeq();
  let found: { seq: number; event: { type: string; data: unknown } } | undefined;
  const sub = bus.log.subscribe(last, async (e) => {
    if (e.seq === last) found = { seq: e.seq, event: { type: e.event.type, data: e.event.data } };
  });
  for (let i = 0; i < 50 && !found; i++) await new Promise((r) => setTimeout(r, 10));
  await sub.close();
  return found;
}
