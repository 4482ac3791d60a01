// The behaviours every front proxy example must show, run through a real proxy process: login, header spoofing, allow-list, sign-out, domain-wide sessions.
import { IDENTITY_HEADERS } from '@portcullis/protocol';
import { type Browser, type BrowserResponse, type EchoedRequest, createBrowser, loginThroughIdp } from '@portcullis/testkit';
import type { Test } from 'tap';
import { HOSTS, type PortcullisStack, startPortcullisStack } from './portcullis-stack.ts';
import type { FrontProxy, TemplateValues } from './servers.ts';

/** How a front proxy under test is started and how it sends an anonymous browser to the login. */
export interface FrontProxyUnderTest {
  /** Starts the proxy with the templated single- and domain-mode examples, on `values.LISTEN`. */
  start(values: TemplateValues): Promise<FrontProxy>;
  /**
   * nginx: 401 from Portcullis becomes a 302 to /outpost.goauthentik.io/start on the same host;
   * Caddy (and Traefik): Portcullis's own 302 straight to the IdP is passed through.
   */
  loginRedirect: 'outpost-start' | 'idp';
}

const ALICE = { username: 'alice', password: 'alice-password' };
/** A session cookie (not the login-state one): `authentik_proxy_` + 8 hex chars of sha256(client_id). */
const SESSION_COOKIE = /^authentik_proxy_[0-9a-f]{8}=/;
const SPOOF = { 'X-authentik-username': 'mallory', x_authentik_uid: 'mallory-uid', 'X-Authentik-Groups': 'admins' };

/**
 * Runs every scenario for both modes against one proxy process and one Portcullis, started once.
 * forward_single is app.localhost; forward_domain is wiki./files.example.localhost with
 * auth.example.localhost as the login host.
 */
export async function runFrontProxyScenarios(t: Test, proxy: FrontProxyUnderTest): Promise<void> {
  const stack = await startPortcullisStack();
  t.teardown(() => stack.close());
  const front = await proxy.start(stack.values);
  t.teardown(() => front.stop());
  const browsers: Browser[] = [];
  t.teardown(() => Promise.all(browsers.map((b) => b.close())));
  const newBrowser = () => {
    const resolve: Record<string, number> = {};
    for (const host of [HOSTS.app, HOSTS.auth, HOSTS.wiki, HOSTS.files]) resolve[host] = stack.proxyPort;
    const browser = createBrowser({ resolve });
    browsers.push(browser);
    return browser;
  };
  const ctx: ScenarioContext = { stack, front, proxy, newBrowser };

  const modes: ModeUnderTest[] = [
    { mode: 'forward_single', provider: 'single-app', loginHost: HOSTS.app, appHost: HOSTS.app, otherHost: null },
    { mode: 'forward_domain', provider: 'domain-apps', loginHost: HOSTS.auth, appHost: HOSTS.wiki, otherHost: HOSTS.files },
  ];
  for (const mode of modes) {
    await t.test(mode.mode, (t) => runModeScenarios(t, ctx, mode));
  }
}

interface ScenarioContext {
  stack: PortcullisStack;
  front: FrontProxy;
  proxy: FrontProxyUnderTest;
  newBrowser(): Browser;
}

interface ModeUnderTest {
  mode: 'forward_single' | 'forward_domain';
  provider: string;
  /** The host of the provider's external_host (where the OAuth callback lands). */
  loginHost: string;
  /** A protected application host. */
  appHost: string;
  /** A second application host under the same provider (domain mode only). */
  otherHost: string | null;
}

async function runModeScenarios(t: Test, ctx: ScenarioContext, m: ModeUnderTest): Promise<void> {
  const { stack } = ctx;
  const app = stack.origin(m.appHost);

  /** Logs alice in from `url` with a fresh browser and returns the browser and the page it ended on. */
  const loginAlice = async (url: string) => {
    const browser = ctx.newBrowser();
    const result = await loginThroughIdp(browser, url, ALICE);
    return { browser, result };
  };

  t.test('a full login through the IdP ends on the upstream with alice and her groups', async (t) => {
    const { result } = await loginAlice(`${app}/dashboard?tab=1`);
    const urls = result.chain.map((s) => s.url);
    t.ok(
      urls.some((u) => u.startsWith(stack.idp.issuer)),
      'the journey went through the IdP',
    );
    t.ok(
      urls.some((u) => u.startsWith(`${stack.origin(m.loginHost)}/outpost.goauthentik.io/callback`)),
      `the callback landed on ${m.loginHost}`,
    );
    const echo = upstreamEcho(t, result.finalResponse);
    t.equal(echo.url, '/dashboard?tab=1', 'the upstream got the page that was asked for');
    t.equal(echo.headers['x-authentik-username'], 'alice', 'username');
    t.equal(echo.headers['x-authentik-groups'], 'admins|users', 'groups, joined with |');
    t.equal(echo.headers['x-authentik-email'], 'alice@example.com', 'email');
    t.equal(echo.headers['x-authentik-meta-provider'], m.provider, 'the provider of this mode answered');
    for (const name of IDENTITY_HEADERS) t.ok(name.toLowerCase() in echo.headers, `${name} reached the upstream`);
    t.match(echo.headers['x-authentik-jwt'], /\S/, 'the token reached the upstream');
    t.equal(echo.headers['x-forwarded-proto'], 'http', 'the upstream learns the scheme the browser used');
  });

  t.test('an anonymous request is sent to the login and never reaches the upstream', async (t) => {
    const before = stack.upstream.requests;
    const r = await ctx.newBrowser().request(`${app}/private/page`, { headers: SPOOF });
    t.equal(r.status, 302, 'a redirect');
    if (ctx.proxy.loginRedirect === 'outpost-start') {
      const location = new URL(r.location ?? '');
      t.equal(location.origin + location.pathname, `${app}/outpost.goauthentik.io/start`, 'to the login start on the same host');
      t.equal(location.searchParams.get('rd'), `${app}/private/page`, 'coming back to the page asked for');
    } else {
      t.ok(r.location?.startsWith(`${stack.idp.issuer}/`), `straight to the IdP: ${r.location}`);
    }
    t.equal(stack.upstream.requests, before, 'the upstream saw nothing');
  });

  t.test('a client-sent X-authentik-username / x_authentik_uid never reaches the upstream, logged in or not', async (t) => {
    const anonymous = await ctx.newBrowser().request(`${app}/public/anonymous`, { headers: SPOOF });
    const anonymousEcho = upstreamEcho(t, anonymous);
    assertNoSpoof(t, anonymousEcho, 'anonymous, allow-listed');
    t.notOk(anonymousEcho.headers['x-authentik-username'], 'no username for an anonymous request');

    const { browser } = await loginAlice(`${app}/`);
    const loggedIn = await browser.request(`${app}/private/page`, { headers: SPOOF });
    const loggedInEcho = upstreamEcho(t, loggedIn);
    assertNoSpoof(t, loggedInEcho, 'logged in');
    t.equal(loggedInEcho.headers['x-authentik-username'], 'alice', "Portcullis's value, not the client's");
    t.equal(loggedInEcho.headers['x-authentik-groups'], 'admins|users', "alice's groups, not the client's");
  });

  t.test('client-sent X-Original-* / X-Forwarded-* cannot pass a private page off as an allow-listed one', async (t) => {
    const before = stack.upstream.requests;
    const publicUrl = `${app}/public/x`;
    const r = await ctx.newBrowser().request(`${app}/private/page`, {
      headers: {
        'X-Original-URI': '/public/x',
        'X-Original-URL': publicUrl,
        'X-Forwarded-Uri': '/public/x',
        'X-Forwarded-Host': `${m.appHost}:${stack.proxyPort}`,
        'X-Forwarded-Proto': 'http',
      },
    });
    t.equal(r.status, 302, 'still sent to the login');
    t.equal(stack.upstream.requests, before, 'the upstream saw nothing');
  });

  t.test('an allow-listed path (skip_path_regex) reaches the upstream without a login', async (t) => {
    const browser = ctx.newBrowser();
    const r = await browser.request(`${app}/public/hello.txt`);
    const echo = upstreamEcho(t, r);
    t.equal(echo.url, '/public/hello.txt', 'the allow-listed page itself');
    const notListed = await browser.request(`${app}/publicity`);
    t.equal(notListed.status, 302, 'a path outside the allow-list still needs a login');
  });

  t.test('sign_out ends the session: the next request needs a login again, even with the old cookie', async (t) => {
    const { browser } = await loginAlice(`${app}/before`);
    const before = await browser.request(`${app}/before`);
    t.equal(upstreamEcho(t, before).headers['x-authentik-username'], 'alice', 'logged in before the sign-out');
    const session = browser.cookies(`${app}/`).find((c) => SESSION_COOKIE.test(`${c.name}=`));
    t.ok(session, 'the browser holds a session cookie');

    const signOut = await browser.request(`${stack.origin(m.loginHost)}/outpost.goauthentik.io/sign_out`);
    t.equal(signOut.status, 302, 'sign_out answers with a redirect to the IdP logout');
    t.ok(signOut.location?.startsWith(stack.idp.issuer), `to the IdP: ${signOut.location}`);

    const upstreamBefore = stack.upstream.requests;
    const after = await browser.request(`${app}/after`);
    t.equal(after.status, 302, 'the next request is sent to the login');

    // A copy of the old cookie (another tab, a stolen value) must not work either: the session
    // ended on the server, not only in this browser.
    browser.setCookie(`${app}/`, `${session?.name}=${session?.value}; Path=/`);
    const replay = await browser.request(`${app}/after`);
    t.equal(replay.status, 302, 'the old cookie no longer lets the request through');
    t.equal(stack.upstream.requests, upstreamBefore, 'the upstream saw nothing');
    // The auth answer deletes the stale cookie: this proves the proxy passes its Set-Cookie on.
    const setCookies = [replay.headers['set-cookie'] ?? []].flat();
    t.ok(
      setCookies.some((c) => c.startsWith(`${session?.name}=;`) && /max-age=0/i.test(c)),
      `the stale session cookie is deleted through the proxy (got: ${setCookies.map((c) => c.split('=')[0]).join(', ')})`,
    );
  });

  if (m.otherHost !== null) {
    const other = stack.origin(m.otherHost);
    t.test('a login on one subdomain is valid on another', async (t) => {
      const { browser, result } = await loginAlice(`${app}/`);
      t.equal(upstreamEcho(t, result.finalResponse).headers['x-authentik-username'], 'alice', `logged in on ${m.appHost}`);
      const r = await browser.request(`${other}/elsewhere`);
      const echo = upstreamEcho(t, r);
      t.equal(echo.headers['x-authentik-username'], 'alice', `${m.otherHost} knows alice without a new login`);
      t.equal(echo.headers['host'], `${m.otherHost}:${stack.proxyPort}`, 'the request went to the other host');
      const cookieNames = browser.cookies(`${other}/`).map((c) => c.name);
      t.ok(cookieNames.length > 0, 'the session cookie is sent to the other subdomain');
    });

    t.test('the allow-list sees the whole URL: /public/ on another subdomain still needs a login', async (t) => {
      const r = await ctx.newBrowser().request(`${other}/public/hello.txt`);
      t.equal(r.status, 302, 'the rule names wiki only');
    });
  }
}

/** The upstream's echo of the request it received; fails the test when the response did not come from it. */
function upstreamEcho(t: Test, r: BrowserResponse): EchoedRequest {
  const fromUpstream = r.status === 200 && r.headers['x-upstream-name'] === 'protected-app';
  t.ok(fromUpstream, `answered by the upstream (got ${r.status} from ${r.url}${r.location ? ` → ${r.location}` : ''})`);
  if (!fromUpstream) return { name: '', method: '', url: '', headers: {}, body: '' };
  return JSON.parse(r.body) as EchoedRequest;
}

function assertNoSpoof(t: Test, echo: EchoedRequest, label: string): void {
  const carriers = Object.entries(echo.headers)
    .filter(([, value]) => (Array.isArray(value) ? value : [value]).some((v) => v.includes('mallory')))
    .map(([name]) => name);
  t.same(carriers, [], `${label}: no header carries the client's value`);
  t.notOk('x_authentik_uid' in echo.headers, `${label}: the underscore spelling is dropped`);
  t.not(echo.headers['x-authentik-groups'], 'admins', `${label}: the client's groups are not passed on`);
}
