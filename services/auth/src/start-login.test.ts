// Start against a real oidc-provider: the authorize URL, the sealed per-attempt state cookie, several tabs.
import { createHash } from 'node:crypto';
import { stateCookieName, unsealPayload } from '@portcullis/protocol';
import t from 'tap';
import { buildRedirectUri } from './provider-runtime.ts';
import {
  buildConfig,
  buildProvider,
  CLIENT_ID,
  COOKIE_SECRET,
  cookiesFrom,
  EXTERNAL_HOST,
  loginAtIdp,
  requestCallback,
  requestStart,
  startHarness,
  startTestIdp,
} from './test-harness.ts';

t.test('start', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const secureHost = 'https://secure.example.com/sub';
  const h = await startHarness(
    buildConfig([
      buildProvider(idp.issuer),
      buildProvider(idp.issuer, { name: 'secure', external_host: secureHost, cookie_domain: '.example.com' }),
    ]),
  );
  t.teardown(() => h.close());
  await h.startAuth();

  t.test('redirects to the authorize endpoint with code + PKCE S256 + nonce and the authentik redirect_uri', async (t) => {
    const reply = await requestStart(h.bus, 'app', `${EXTERNAL_HOST}/deep/link?q=1`);
    t.equal(reply.status, 302);
    const url = new URL(reply.location!);
    t.equal(url.origin + url.pathname, `${idp.issuer}/auth`);
    const p = url.searchParams;
    t.equal(p.get('client_id'), CLIENT_ID);
    t.equal(p.get('redirect_uri'), `${EXTERNAL_HOST}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`);
    t.equal(p.get('response_type'), 'code');
    t.equal(p.get('scope'), 'openid profile email groups ak_proxy');
    t.equal(p.get('code_challenge_method'), 'S256');
    const state = p.get('state')!;
    t.ok(state.length >= 43 && /^[A-Za-z0-9_-]+$/.test(state), 'state is at least 32 random bytes in base64url');
    t.ok(p.get('nonce'));

    t.equal(reply.setCookies.length, 1);
    const cookie = reply.setCookies[0]!;
    const name = `${stateCookieName(CLIENT_ID)}_${state.slice(0, 12)}`;
    t.ok(cookie.startsWith(`${name}=`), 'the cookie is named after the provider and the state');
    t.match(cookie, /Max-Age=600/);
    t.match(cookie, /Path=\//);
    t.match(cookie, /HttpOnly/);
    t.notMatch(cookie, /Secure/, 'no Secure flag for an http external host');
    const sealed = unsealPayload(COOKIE_SECRET, 'portcullis-login-state', cookiesFrom(reply)[name]!);
    t.ok(sealed, 'the cookie opens with the cookie secret');
    t.equal(sealed!['s'], state);
    t.equal(sealed!['n'], p.get('nonce'));
    t.equal(sealed!['r'], `${EXTERNAL_HOST}/deep/link?q=1`);
    t.equal(sealed!['p'], 'app');
    const challenge = createHash('sha256').update(String(sealed!['v'])).digest('base64url');
    t.equal(p.get('code_challenge'), challenge, 'the challenge is S256 of the sealed verifier');
  });

  t.test('an https external host gets a Secure cookie with the cookie domain, and its own redirect_uri path', async (t) => {
    const reply = await requestStart(h.bus, 'secure');
    t.equal(new URL(reply.location!).searchParams.get('redirect_uri'), buildRedirectUri(secureHost));
    t.match(reply.setCookies[0], /; Secure/);
    t.match(reply.setCookies[0], /Domain=example\.com/);
  });

  t.test('every start is a new attempt with its own state and cookie', async (t) => {
    const a = await requestStart(h.bus, 'app');
    const b = await requestStart(h.bus, 'app');
    t.not(new URL(a.location!).searchParams.get('state'), new URL(b.location!).searchParams.get('state'));
    t.not(Object.keys(cookiesFrom(a))[0], Object.keys(cookiesFrom(b))[0]);
  });

  t.test('two tabs logging in at once both complete, each to its own redirect', async (t) => {
    const tab1 = await requestStart(h.bus, 'app', `${EXTERNAL_HOST}/one`);
    const tab2 = await requestStart(h.bus, 'app', `${EXTERNAL_HOST}/two`);
    const cookies = { ...cookiesFrom(tab1), ...cookiesFrom(tab2) };
    const q1 = await loginAtIdp(h.browser, tab1.location!);
    const q2 = await loginAtIdp(h.browser, tab2.location!);
    const r2 = await requestCallback(h.bus, { provider: 'app', query: q2, stateCookies: cookies });
    const r1 = await requestCallback(h.bus, { provider: 'app', query: q1, stateCookies: cookies });
    t.equal(r1.location, `${EXTERNAL_HOST}/one`);
    t.equal(r2.location, `${EXTERNAL_HOST}/two`);
  });

  t.test('a null redirect lands on external_host after login', async (t) => {
    const start = await requestStart(h.bus, 'app', null);
    const query = await loginAtIdp(h.browser, start.location!);
    const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    t.equal(reply.location, EXTERNAL_HOST);
  });

  t.test('a redirect too long for a cookie still logs in: its query is dropped so the state cookie fits (browsers drop cookies over 4096 bytes)', async (t) => {
    const long = `${EXTERNAL_HOST}/dashboards/view?_a=${'x'.repeat(3500)}`;
    const start = await requestStart(h.bus, 'app', long);
    t.equal(start.status, 302);
    const [name, value] = Object.entries(cookiesFrom(start))[0]!;
    t.ok(name.length + value.length <= 4096, `the state cookie fits a browser (${name.length + value.length} bytes)`);
    const query = await loginAtIdp(h.browser, start.location!);
    const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
    t.equal(reply.status, 302);
    t.equal(reply.location, `${EXTERNAL_HOST}/dashboards/view`, 'lands on the page, without the query that did not fit');

    const hopeless = await requestStart(h.bus, 'app', `${EXTERNAL_HOST}/${'p'.repeat(3500)}`);
    const [n2, v2] = Object.entries(cookiesFrom(hopeless))[0]!;
    t.ok(n2.length + v2.length <= 4096, 'a path that alone is too long falls back to external_host');
    t.equal(unsealPayload(COOKIE_SECRET, 'portcullis-login-state', v2)?.['r'], null);

    const fits = `${EXTERNAL_HOST}/a?q=${'y'.repeat(2000)}`;
    const kept = await requestStart(h.bus, 'app', fits);
    t.equal(unsealPayload(COOKIE_SECRET, 'portcullis-login-state', Object.values(cookiesFrom(kept))[0]!)?.['r'], fits, 'a redirect that fits is kept whole');
  });

  t.test('an unknown provider or a malformed request → a 500 page, not a thrown error', async (t) => {
    const unknown = await requestStart(h.bus, 'nope');
    t.equal(unknown.status, 500);
    t.match(unknown.page?.message, /"nope" is not configured/);
    const malformed = await h.bus.rpc.request<{ status: number }>('portcullis.auth.start', { redirect: 3 });
    t.equal(malformed.status, 500);
  });
});
