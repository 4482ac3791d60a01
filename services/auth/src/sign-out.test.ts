// sign_out against a real oidc-provider: UserSignedOut before the answer, RP-initiated logout, no false success.
import { sessionCookieName, verifySessionCookie } from '@portcullis/protocol';
import { createMemoryBus } from '@portcullis/bus';
import t from 'tap';
import { createAuthService } from './app.ts';
import {
  buildConfig,
  buildProvider,
  CLIENT_ID,
  COOKIE_SECRET,
  cookiesFrom,
  loginThroughService,
  POST_LOGOUT_URI,
  requestSignOut,
  startHarness,
  startTestIdp,
} from './test-harness.ts';

t.test('sign_out', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const h = await startHarness(buildConfig([buildProvider(idp.issuer, { post_logout_redirect_uri: POST_LOGOUT_URI })]));
  t.teardown(() => h.close());
  await h.startAuth();

  async function login() {
    const { callback } = await loginThroughService(h);
    const cookie = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '');
    if (!cookie) throw new Error(`login failed: ${JSON.stringify(callback)}`);
    await h.store.waitForApplied(cookie.seq, 2000);
    return (await h.store.getLiveSession(cookie.sessionId))!;
  }

  t.test('without a session → 200 signed-out page and a deleted cookie, nothing recorded', async (t) => {
    const before = await h.bus.log.lastSeq();
    const reply = await requestSignOut(h.bus, { provider: 'app', session: null });
    t.equal(reply.status, 200);
    t.match(reply.page?.message, /You have been signed out/);
    t.equal(reply.setCookies.length, 1);
    t.match(reply.setCookies[0], new RegExp(`^${sessionCookieName(CLIENT_ID)}=;.*Max-Age=0`));
    t.equal(reply.revokedAtSeq, undefined);
    t.equal(await h.bus.log.lastSeq(), before);
  });

  t.test('a gateway that does not hold the ID token (its cache drops it): the hint is read from the store', async (t) => {
    const session = await login();
    t.ok(session.idToken, 'the store holds the ID token');
    const reply = await requestSignOut(h.bus, { provider: 'app', session: { sessionId: session.sessionId, sub: session.sub, idToken: null } });
    t.equal(reply.status, 302);
    t.equal(new URL(reply.location!).searchParams.get('id_token_hint'), session.idToken);
  });

  t.test('with a session → UserSignedOut recorded, then 302 to end_session with id_token_hint', async (t) => {
    const session = await login();
    const reply = await requestSignOut(h.bus, {
      provider: 'app',
      session: { sessionId: session.sessionId, sub: session.sub, idToken: session.idToken },
    });
    t.equal(reply.status, 302);
    const url = new URL(reply.location!);
    t.equal(url.origin + url.pathname, `${idp.issuer}/session/end`);
    t.equal(url.searchParams.get('id_token_hint'), session.idToken);
    t.equal(url.searchParams.get('client_id'), CLIENT_ID);
    t.equal(url.searchParams.get('post_logout_redirect_uri'), POST_LOGOUT_URI);
    t.match(reply.setCookies[0], /Max-Age=0/);

    t.type(reply.revokedAtSeq, 'number');
    t.equal(reply.revokedAtSeq, await h.bus.log.lastSeq(), 'the sign-out is the newest event');
    t.ok(await h.store.waitForApplied(reply.revokedAtSeq!, 2000));
    t.equal(await h.store.getLiveSession(session.sessionId), null, 'the session is dead once the sign-out is applied');

    // The IdP accepts what we built: its logout confirmation leads back to post_logout_redirect_uri.
    const { final } = await h.browser.follow(reply.location!, undefined, { stopAt: (u) => u.startsWith(POST_LOGOUT_URI) });
    t.equal(final.location, POST_LOGOUT_URI);
  });

  t.test('a log that refuses the append → 503 "could not be recorded", never a success', async (t) => {
    const session = await login();
    const bus = createMemoryBus();
    const refusingBus = {
      ...bus,
      log: {
        ...bus.log,
        append: async () => {
          throw new Error('stream unavailable');
        },
        lastSeq: () => bus.log.lastSeq(),
        subscribe: bus.log.subscribe.bind(bus.log),
      },
    };
    const service = createAuthService({ config: h.config, bus: refusingBus, store: h.store });
    await service.start();
    t.teardown(() => service.stop());
    const reply = await requestSignOut(bus, {
      provider: 'app',
      session: { sessionId: session.sessionId, sub: session.sub, idToken: session.idToken },
    });
    t.equal(reply.status, 503);
    t.match(reply.page?.message, /could not be recorded/);
    t.equal(reply.revokedAtSeq, undefined);
    t.equal(reply.location, undefined);
    t.ok(await h.store.getLiveSession(session.sessionId), 'the session is still live');
  });
});

t.test('sign_out while the IdP is down still records the sign-out and answers 200', async (t) => {
  const idp = await startTestIdp();
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  const first = await h.startAuth();
  const { callback } = await loginThroughService(h);
  const cookie = verifySessionCookie(COOKIE_SECRET, cookiesFrom(callback)[sessionCookieName(CLIENT_ID)] ?? '')!;
  await h.store.waitForApplied(cookie.seq, 2000);
  const session = (await h.store.getLiveSession(cookie.sessionId))!;
  await idp.close();
  // A fresh instance has never discovered the (now dead) IdP.
  await first.stop();
  await h.startAuth();
  const reply = await requestSignOut(h.bus, {
    provider: 'app',
    session: { sessionId: session.sessionId, sub: session.sub, idToken: session.idToken },
  });
  t.equal(reply.status, 200);
  t.match(reply.page?.message, /signed out.*could not be reached/s);
  t.equal(reply.revokedAtSeq, await h.bus.log.lastSeq());
});
