// Forward-auth endpoints (nginx, Traefik, Caddy, Envoy) for forward_single and forward_domain.
import { IDENTITY_HEADERS } from '@portcullis/protocol';
import t from 'tap';
import { providerYaml, startTestGateway, testConfig, unreachableRpc } from './test-support.ts';

const BOB = { sub: 'bob-sub', preferred_username: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['users'] };

t.test('forward auth', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'https://app.company', skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'domain', mode: 'forward_domain', external_host: 'https://auth.corp.example', cookie_domain: 'corp.example', client_id: 'client-d', skip_path_regex: '"^https://status\\\\.corp\\\\.example/"' })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  const inject = gw.gateway.http.inject.bind(gw.gateway.http);
  const nginx = (uri: string, cookie?: string, extra: Record<string, string> = {}) =>
    inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'app.company', 'x-original-uri': uri, ...(cookie ? { cookie } : {}), ...extra } });

  t.test('nginx: authenticated → 200 with all twelve identity headers', async (t) => {
    const cookie = await gw.login('single', BOB);
    const r = await nginx('/dashboard', cookie);
    t.equal(r.statusCode, 200);
    for (const h of IDENTITY_HEADERS) t.ok(h.toLowerCase() in r.headers, `${h} present`);
    t.equal(r.headers['x-authentik-username'], 'bob');
    t.equal(r.headers['x-authentik-groups'], 'users');
    t.equal(r.headers['x-authentik-entitlements'], '', 'unknown → empty, still present');
  });

  t.test('nginx: unauthenticated → 401 "unauthorized request"', async (t) => {
    const r = await nginx('/dashboard');
    t.equal(r.statusCode, 401);
    t.equal(r.body, 'unauthorized request');
  });

  t.test('nginx: allow-listed → 200 with every identity header present and the user ones empty', async (t) => {
    const r = await nginx('/public/logo.png');
    t.equal(r.statusCode, 200);
    for (const h of IDENTITY_HEADERS) t.ok(h.toLowerCase() in r.headers, `${h} present`);
    t.equal(r.headers['x-authentik-username'], '');
    t.equal(r.headers['x-authentik-meta-provider'], 'single');
  });

  t.test('nginx: skip rules never see the query, nor encoded separators', async (t) => {
    t.equal((await nginx('/private?x=/public/')).statusCode, 401);
    t.equal((await nginx('/public%2F..%2Fprivate')).statusCode, 401);
    t.equal((await nginx('/public/../private')).statusCode, 401);
  });

  t.test('dot segments and backslashes in the original path are never allow-listed (the upstream may not resolve them)', async (t) => {
    const fwd = { host: 'portcullis', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company' };
    for (const uri of ['/private/../public/x', '/private/%2e%2e/public/x', '/private/%2E./public/x', '/private\\..\\public\\x', '/public\\x', '/public/./x', '/public/..;/private', '/public/.;/x']) {
      t.equal((await nginx(uri)).statusCode, 401, `nginx X-Original-URI ${uri}`);
      const url = await inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'app.company', 'x-original-url': `https://app.company${uri}` } });
      t.equal(url.statusCode, 401, `nginx X-Original-URL ${uri}`);
      for (const flavour of ['traefik', 'caddy']) {
        const r = await inject({ url: `/outpost.goauthentik.io/auth/${flavour}`, headers: { ...fwd, 'x-forwarded-uri': uri } });
        t.not(r.statusCode, 200, `${flavour} ${uri}`);
      }
      // The handler itself: inject would resolve the dot segments of the request target first.
      const envoy = await gw.gateway.handler.handle({ method: 'GET', url: `/outpost.goauthentik.io/auth/envoy${uri}`, headers: { host: 'app.company' }, peer: '127.0.0.1', encrypted: false });
      t.not(envoy.kind === 'respond' && envoy.status, 200, `envoy ${uri}`);
    }
    t.equal((await nginx('/public/x')).statusCode, 200, 'the plain path still is');
  });

  t.test('nginx: X-Original-URL works when X-Original-URI is absent', async (t) => {
    const r = await inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'app.company', 'x-original-url': 'https://app.company/public/x' } });
    t.equal(r.statusCode, 200);
  });

  t.test('nginx: a client-supplied X-Original-URI that disagrees with X-Original-URL is refused, never allow-listed', async (t) => {
    const r = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      headers: { host: 'app.company', 'x-original-url': 'https://app.company/private/page', 'x-original-uri': '/public/x' },
    });
    t.equal(r.statusCode, 500);
    t.ok(gw.warnings.some((w) => /X-Original-URI and X-Original-URL disagree/.test(w)));
    // Equal only once parsed: nginx passes the dot segments to the upstream unresolved.
    const resolved = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      headers: { host: 'app.company', 'x-original-url': 'https://app.company/private/../public/x', 'x-original-uri': '/public/x' },
    });
    t.equal(resolved.statusCode, 500, 'a target that only matches once resolved is refused');
    const agree = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      headers: { host: 'app.company', 'x-original-url': 'https://app.company/public/x?a=1', 'x-original-uri': '/public/x?a=1' },
    });
    t.equal(agree.statusCode, 200, 'both set by nginx and equal: fine');
  });

  t.test('nginx: X-Original-URI and X-Original-URL as nginx sets them agree for any request target, also unencoded ones', async (t) => {
    const cookie = await gw.login('single', BOB);
    // What curl or Python requests send as is (browsers encode some of these): quotes, braces, raw UTF-8 (latin1 on the wire), dot segments.
    for (const uri of ["/search?q=O'Brien", '/api?filter={"a":1}', '/files/{id}', '/caf\u00c3\u00a9', '/a/../b', '/a?x=<b>']) {
      const headers = { host: 'app.company', 'x-original-uri': uri, 'x-original-url': `https://app.company${uri}` };
      const ok = await inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { ...headers, cookie } });
      t.equal(ok.statusCode, 200, `with a session: ${uri}`);
      const anonymous = await inject({ url: '/outpost.goauthentik.io/auth/nginx', headers });
      t.equal(anonymous.statusCode, 401, `without: ${uri}`);
    }
  });

  t.test('missing original-URL headers → 500 "configuration error"', async (t) => {
    for (const flavour of ['nginx', 'traefik', 'caddy']) {
      const r = await inject({ url: `/outpost.goauthentik.io/auth/${flavour}`, headers: { host: 'app.company' } });
      t.equal(r.statusCode, 500, flavour);
      t.equal(r.body, 'configuration error');
    }
  });

  t.test('forwarded headers from an untrusted peer do not count → 500, never a 2xx', async (t) => {
    const cookie = await gw.login('single', BOB);
    const r = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      remoteAddress: '198.51.100.7',
      headers: { host: 'app.company', 'x-original-uri': '/public/x', cookie },
    });
    t.equal(r.statusCode, 500);
    t.ok(gw.warnings.some((w) => /trusted_proxy_cidrs/.test(w)), 'the log names the setting to fix');
  });

  t.test('traefik/caddy: authenticated → 200 + headers; allow-listed → 200', async (t) => {
    const cookie = await gw.login('single', BOB);
    for (const flavour of ['traefik', 'caddy']) {
      const base = { host: 'portcullis:9000', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company' };
      const ok = await inject({ url: `/outpost.goauthentik.io/auth/${flavour}`, headers: { ...base, 'x-forwarded-uri': '/x', cookie } });
      t.equal(ok.statusCode, 200, flavour);
      t.equal(ok.headers['x-authentik-email'], 'bob@example.com');
      const pub = await inject({ url: `/outpost.goauthentik.io/auth/${flavour}`, headers: { ...base, 'x-forwarded-uri': '/public/a' } });
      t.equal(pub.statusCode, 200, `${flavour} allow-listed`);
    }
  });

  t.test('envoy: the path after the prefix and the Host header make the original URL', async (t) => {
    const cookie = await gw.login('single', BOB);
    const ok = await inject({ url: '/outpost.goauthentik.io/auth/envoy/deep/path?q=1', headers: { host: 'app.company', cookie } });
    t.equal(ok.statusCode, 200);
    const pub = await inject({ url: '/outpost.goauthentik.io/auth/envoy/public/a', headers: { host: 'app.company' } });
    t.equal(pub.statusCode, 200);
  });

  t.test('forward_domain: any subdomain routes to the domain provider, the skip rule sees scheme://host/path', async (t) => {
    const cookie = await gw.login('domain', BOB);
    const base = { host: 'portcullis', 'x-forwarded-proto': 'https' };
    const ok = await inject({ url: '/outpost.goauthentik.io/auth/traefik', headers: { ...base, 'x-forwarded-host': 'wiki.corp.example', 'x-forwarded-uri': '/', cookie } });
    t.equal(ok.statusCode, 200);
    t.equal(ok.headers['x-authentik-meta-provider'], 'domain');
    const status = await inject({ url: '/outpost.goauthentik.io/auth/traefik', headers: { ...base, 'x-forwarded-host': 'status.corp.example', 'x-forwarded-uri': '/health' } });
    t.equal(status.statusCode, 200, 'https://status.corp.example/ is allow-listed');
    const nginxDomain = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      headers: { host: 'wiki.corp.example', 'x-original-url': 'https://wiki.corp.example/x' },
    });
    t.equal(nginxDomain.statusCode, 401);
    // nginx's X-Original-URL: the subject has the host as the URL parser gives it (lower case, no default port).
    const nginxStatus = (url: string, extra: Record<string, string> = {}) =>
      inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'status.corp.example', 'x-original-url': url, ...extra } });
    for (const url of ['https://STATUS.Corp.Example/health', 'https://status.corp.example:443/health', 'https://Status.corp.example:443']) {
      t.equal((await nginxStatus(url)).statusCode, 200, `${url} is allow-listed`);
    }
    for (const url of ['https://status.corp.example:8443/health', 'http://status.corp.example/health']) {
      t.equal((await nginxStatus(url)).statusCode, 401, `${url} is not allow-listed`);
    }
    // Not the host the request was routed by: refused as a misconfigured front proxy, never a pass.
    t.equal((await nginxStatus('https://status.corp.example.evil/health')).statusCode, 500);
  });

  t.test('allow-listed answers share one header list: a stale cookie deletion goes to its own answer only', async (t) => {
    const first = await nginx('/public/a.css');
    const name = (await gw.login('single', BOB)).split('=')[0];
    const stale = await nginx('/public/a.css', `${name}=not-a-session`);
    const again = await nginx('/public/a.css');
    t.equal(first.statusCode, 200);
    t.match(String(stale.headers['set-cookie']), /Max-Age=0|Expires=Thu, 01 Jan 1970/i, 'the stale cookie is deleted');
    t.equal(again.headers['set-cookie'], undefined, 'the next allow-listed answer has no deletion');
    t.same(again.headers, first.headers, 'the same headers as the first');
  });

  t.test('forward_domain: a host that only ends with the domain string is not routed to it', async (t) => {
    const r = await inject({
      url: '/outpost.goauthentik.io/auth/nginx',
      headers: { host: 'evilcorp.example', 'x-original-uri': '/' },
    });
    t.equal(r.statusCode, 400);
  });

  t.test('other outpost paths in forward modes → 404', async (t) => {
    t.equal((await inject({ url: '/outpost.goauthentik.io/auth/other', headers: { host: 'app.company' } })).statusCode, 404);
    t.equal((await inject({ url: '/some/app/path', headers: { host: 'app.company' } })).statusCode, 404);
  });

  t.test('a store that cannot answer never yields a 2xx', async (t) => {
    const cookie = await gw.login('single', BOB);
    const store = (gw.gateway.handler as unknown as { providers: unknown }).providers;
    t.ok(store);
    // The handler reads through the injected reader; simulate an outage by closing over a failing reader.
    const { GatewayHandler } = await import('./gateway-handler.ts');
    const failing = new GatewayHandler({
      config,
      rpc: unreachableRpc,
      store: {
        appliedSeq: async () => Promise.reject(new Error('redis down')),
        getLiveSession: async () => Promise.reject(new Error('redis down')),
        listLiveSessions: async () => [],
        waitForApplied: async () => false,
      },
      version: 'x',
      waitForRevocation: async () => 'unprojected',
      log: { warn: () => {}, error: () => {} },
    });
    const a = await failing.handle({ method: 'GET', url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'app.company', 'x-original-uri': '/x', cookie }, peer: '127.0.0.1', encrypted: false });
    t.equal(a.kind === 'respond' && a.status, 503);
  });
});

t.test('forward auth: the logout flag in the original URL never answers 2xx (a 2xx lets the request through)', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'https://app.company' })}
`);
  const { GatewayHandler } = await import('./gateway-handler.ts');
  // The auth service's answer to a sign-out without a session: the signed-out page, 200.
  const handler = new GatewayHandler({
    config,
    rpc: {
      ...unreachableRpc,
      request: async <T>() => ({ status: 200, setCookies: ['authentik_proxy_x=; Max-Age=0'], page: { title: 'Signed out', message: 'You have been signed out.' } }) as T,
    },
    store: {
      appliedSeq: async () => 0,
      getLiveSession: async () => null,
      listLiveSessions: async () => [],
      waitForApplied: async () => false,
    },
    version: 'x',
    waitForRevocation: async () => 'propagated',
    log: { warn: () => {}, error: () => {} },
  });
  const ask = (url: string, headers: Record<string, string>) => handler.handle({ method: 'GET', url, headers, peer: '127.0.0.1', encrypted: false });
  const checks = [
    ask('/outpost.goauthentik.io/auth/traefik', { host: 'portcullis', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/private?X-authentik-logout=true' }),
    ask('/outpost.goauthentik.io/auth/caddy', { host: 'portcullis', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/private?X-authentik-logout=true' }),
    ask('/outpost.goauthentik.io/auth/envoy/private?X-authentik-logout=true', { host: 'app.company' }),
  ];
  for (const a of await Promise.all(checks)) {
    t.equal(a.kind, 'respond');
    if (a.kind !== 'respond') continue;
    t.ok(a.status >= 400, `status ${a.status} is not a pass`);
    t.match(a.body, /Signed out/, 'the user still sees the signed-out page');
    t.ok(a.headers.some(([k]) => k === 'set-cookie'), 'and the cookie is still cleared');
  }
  // The sign_out endpoint itself (a browser, not a front proxy asking) keeps its 200 page.
  const direct = await ask('/outpost.goauthentik.io/sign_out', { host: 'app.company' });
  t.equal(direct.kind === 'respond' && direct.status, 200);
});

t.test('forward auth: the host of the original URL picks the provider; a client-sent X-Forwarded-Host cannot bring another provider\'s session', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'a', mode: 'forward_single', external_host: 'https://a.company', client_id: 'client-a' })}
${providerYaml({ name: 'b', mode: 'forward_single', external_host: 'https://b.company', client_id: 'client-b' })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  // Mallory may use app b, not app a; she holds b's session cookie.
  const cookieB = await gw.login('b', { sub: 'mallory', preferred_username: 'mallory' });
  const ask = (url: string, headers: Record<string, string>) =>
    gw.gateway.handler.handle({ method: 'GET', url, headers: { ...headers, cookie: cookieB }, peer: '127.0.0.1', encrypted: false });
  const checks: Array<[string, string, Record<string, string>]> = [
    // authentik's nginx snippet sets Host and X-Original-URL only: nginx passes the client's X-Forwarded-Host (and X-Original-URI) along.
    ['nginx, X-Original-URL', '/outpost.goauthentik.io/auth/nginx', { host: 'a.company', 'x-original-url': 'https://a.company/admin', 'x-forwarded-host': 'b.company' }],
    ['nginx, both X-Original-* ', '/outpost.goauthentik.io/auth/nginx', { host: 'a.company', 'x-original-url': 'https://a.company/admin', 'x-original-uri': '/admin', 'x-forwarded-host': 'b.company' }],
    ['envoy', '/outpost.goauthentik.io/auth/envoy/admin', { host: 'a.company', 'x-forwarded-host': 'b.company' }],
  ];
  for (const [label, url, headers] of checks) {
    const a = await ask(url, headers);
    t.equal(a.kind, 'respond', label);
    if (a.kind !== 'respond') continue;
    t.not(a.status, 200, `${label}: a request for a.company is not let through on b's session`);
    t.notOk(a.headers.some(([k, v]) => k.toLowerCase() === 'x-authentik-username' && v === 'mallory'), `${label}: no identity headers of b`);
  }
  // The same session on its own host still passes.
  const own = await ask('/outpost.goauthentik.io/auth/nginx', { host: 'b.company', 'x-original-url': 'https://b.company/x', 'x-original-uri': '/x', 'x-forwarded-host': 'b.company' });
  t.equal(own.kind === 'respond' && own.status, 200);
});
