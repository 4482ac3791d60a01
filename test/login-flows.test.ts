// End-to-end: whole logins through a real oidc-provider for every mode and forward-auth flavour, sign-out, state abuse.
import { connect } from 'node:net';
import { createBrowser, loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';
import { type Flavour, startFrontProxyEmulator } from './support/front-proxy-emulator.ts';
import { startSystem } from './support/system.ts';

const ALICE = { username: 'alice', password: 'alice-password' };
type Echo = { url: string; headers: Record<string, string> };

t.test('login flows against a real IdP', async (t) => {
  // The forward-auth apps sit behind an emulated front proxy on their own port.
  const { getFreePort } = await import('@portcullis/testkit');
  const fp = await getFreePort();
  const sys = await startSystem((gw) => [
    {
      name: 'proxy',
      mode: 'proxy',
      external_host: `http://proxy.localhost:${gw}`,
      skip_path_regex: '^/public/',
      post_logout_redirect_uri: `http://proxy.localhost:${gw}/public/bye`,
      scope_mappings: [{ name: 'team', expression: '{"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-Mapped": request.user.username + "@" + provider.name}}}}' }],
    },
    // The IdP posts back-channel logout tokens from Node, where only loopback literals resolve.
    { name: 'bcl', mode: 'proxy', external_host: `http://127.0.0.1:${gw}` },
    { name: 'subdir', mode: 'proxy', external_host: `http://sub.localhost:${gw}/subdir` },
    { name: 'single', mode: 'forward_single', external_host: `http://single.localhost:${fp}`, skip_path_regex: '^/public/' },
    { name: 'domain', mode: 'forward_domain', external_host: `http://auth.corp.localhost:${fp}`, cookie_domain: 'corp.localhost' },
  ]);
  t.teardown(() => sys.close());
  const emulator = await startFrontProxyEmulator({ portcullis: `http://127.0.0.1:${sys.gatewayPort}`, upstream: sys.upstream.url, flavour: 'nginx', port: fp });
  t.teardown(() => emulator.close());
  const gw = sys.gatewayPort;
  const newBrowser = () =>
    createBrowser({
      resolve: {
        'proxy.localhost': gw,
        'sub.localhost': gw,
        'single.localhost': emulator.port,
        'auth.corp.localhost': emulator.port,
        'wiki.corp.localhost': emulator.port,
        'docs.corp.localhost': emulator.port,
      },
    });
  const echo = (body: string) => JSON.parse(body) as Echo;

  t.test('proxy mode: login lands on the original URL (query kept) with identity headers and mapping results', async (t) => {
    const b = newBrowser();
    const { finalResponse: r, chain } = await loginThroughIdp(b, `http://proxy.localhost:${gw}/page?q=1&r=2`, ALICE);
    t.equal(r.status, 200);
    const e = echo(r.body);
    t.equal(e.url, '/page?q=1&r=2');
    t.equal(e.headers['x-authentik-username'], 'alice');
    t.equal(e.headers['x-authentik-groups'], 'admins|users');
    t.equal(e.headers['x-authentik-email'], 'alice@example.com');
    t.equal(e.headers['x-mapped'], 'alice@proxy', 'the CEL mapping ran at login');
    t.equal(e.headers['x-demo-team'], 'platform', 'additionalHeaders from the IdP attributes');
    t.ok(e.headers['x-authentik-jwt'], 'the access token is forwarded');
    t.match(e.headers['x-authentik-meta-version'], /^portcullis\/\d+\.\d+\.\d+$/);
    t.ok(chain.some((s) => s.url.includes('/outpost.goauthentik.io/callback')), 'went through the callback');
  });

  for (const flavour of ['nginx', 'traefik', 'caddy', 'envoy'] as Flavour[]) {
    t.test(`forward_single via ${flavour}: login, then the app gets identity headers`, async (t) => {
      emulator.flavour = flavour;
      const b = newBrowser();
      const { finalResponse: r } = await loginThroughIdp(b, `http://single.localhost:${emulator.port}/dash?x=1`, ALICE);
      t.equal(r.status, 200);
      const e = echo(r.body);
      t.equal(e.url, '/dash?x=1');
      t.equal(e.headers['x-authentik-username'], 'alice');
      t.equal(e.headers['x-authentik-meta-provider'], 'single');
      const spoofed = await b.request(`http://single.localhost:${emulator.port}/again`, { headers: { 'X-authentik-username': 'mallory' } });
      t.equal(echo(spoofed.body).headers['x-authentik-username'], 'alice', 'the front proxy overwrote the client value');
      const pub = await newBrowser().request(`http://single.localhost:${emulator.port}/public/x`);
      t.equal(pub.status, 200, 'allow-listed path needs no login');
    });

    t.test(`forward_domain via ${flavour}: a login on one subdomain is valid on another`, async (t) => {
      emulator.flavour = flavour;
      const b = newBrowser();
      const { finalResponse: r, chain } = await loginThroughIdp(b, `http://wiki.corp.localhost:${emulator.port}/start-here`, ALICE);
      t.equal(r.status, 200);
      t.equal(echo(r.body).url, '/start-here', 'the rd on another subdomain of the cookie domain was kept');
      t.notOk(
        chain.some((s) => s.url.startsWith(`http://auth.corp.localhost:${emulator.port}/outpost.goauthentik.io/start`)),
        'a host in the cookie domain starts the login itself (no detour through external_host)',
      );
      const other = await b.request(`http://docs.corp.localhost:${emulator.port}/`);
      t.equal(other.status, 200);
      t.equal(echo(other.body).headers['x-authentik-meta-provider'], 'domain');
    });
  }

  for (const flavour of ['nginx', 'traefik'] as Flavour[]) {
    t.test(`forward_single via ${flavour} on the fully qualified host (trailing dot): the login completes and lands on the page asked for, on the canonical host`, async (t) => {
      emulator.flavour = flavour;
      const b = newBrowser();
      const { finalResponse: r, chain } = await loginThroughIdp(b, `http://single.localhost.:${emulator.port}/dash?x=1`, ALICE);
      t.equal(r.status, 200, 'not "start again": the login state came back with the callback');
      t.equal(echo(r.body).url, '/dash?x=1', 'the page asked for, not external_host');
      t.equal(new URL(r.url).hostname, 'single.localhost', 'on the host whose cookie the login set');
      t.ok(
        chain.some((s) => s.url.startsWith(`http://single.localhost:${emulator.port}/outpost.goauthentik.io/start`)),
        'the login started on external_host',
      );
    });
  }

  t.test('an external_host with a path: outpost paths live under it and rd keeps it', async (t) => {
    const b = newBrowser();
    const first = await b.request(`http://sub.localhost:${gw}/subdir/app/page?x=1`);
    t.equal(first.status, 302);
    const start = new URL(first.location!);
    t.equal(start.pathname, '/subdir/outpost.goauthentik.io/start');
    t.equal(start.searchParams.get('rd'), `http://sub.localhost:${gw}/subdir/app/page?x=1`);
    const authorize = await b.request(start.href);
    t.equal(
      new URL(authorize.location!).searchParams.get('redirect_uri'),
      `http://sub.localhost:${gw}/subdir/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`,
    );
    const { finalResponse: r } = await loginThroughIdp(b, start.href, ALICE);
    t.equal(r.status, 200);
    t.equal(echo(r.body).url, '/subdir/app/page?x=1');
  });

  t.test('sign_out ends every session of the user, clears the cookie and goes to the IdP end-session endpoint', async (t) => {
    const one = newBrowser();
    const two = newBrowser();
    await loginThroughIdp(one, `http://proxy.localhost:${gw}/`, ALICE);
    await loginThroughIdp(two, `http://proxy.localhost:${gw}/`, ALICE);
    emulator.flavour = 'traefik';
    const three = newBrowser();
    await loginThroughIdp(three, `http://single.localhost:${emulator.port}/`, ALICE);
    t.equal((await two.request(`http://proxy.localhost:${gw}/`)).status, 200);
    const out = await one.request(`http://proxy.localhost:${gw}/outpost.goauthentik.io/sign_out`);
    t.equal(out.status, 302);
    const loc = new URL(out.location!);
    t.equal(`${loc.origin}`, sys.idp.issuer);
    t.ok(loc.searchParams.get('id_token_hint'), 'id_token_hint sent');
    t.equal(loc.searchParams.get('post_logout_redirect_uri'), `http://proxy.localhost:${gw}/public/bye`);
    t.match(String(out.headers['set-cookie']), /Max-Age=0/, 'cookie cleared');
    t.equal((await two.request(`http://proxy.localhost:${gw}/`)).status, 302, 'the other browser is signed out too');
    t.equal((await three.request(`http://single.localhost:${emulator.port}/`)).status, 302, 'and the session on another provider');
  });

  t.test('back-channel logout: ending the IdP session ends the Portcullis session', async (t) => {
    const b = newBrowser();
    const app = `http://127.0.0.1:${gw}`;
    await loginThroughIdp(b, `${app}/`, ALICE);
    t.equal((await b.request(`${app}/`)).status, 200);
    // Sign out at the IdP directly (not through Portcullis): the IdP posts a logout token to us.
    const idpLogout = await b.follow(`${sys.idp.issuer}/session/end`);
    t.ok(idpLogout.chain.length > 0);
    let status = 200;
    for (let i = 0; i < 50 && status === 200; i++) {
      status = (await b.request(`${app}/`)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    t.equal(status, 302, 'the session ended');
    const bad = await b.request(`${app}/outpost.goauthentik.io/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'logout_token=not-a-jwt',
    });
    t.equal(bad.status, 400);
    t.equal((JSON.parse(bad.body) as { error: string }).error, 'invalid_request');
    t.equal(bad.headers['cache-control'], 'no-store');
  });

  t.test('machine to machine: a bearer token for this client is accepted and cached; another client\'s is refused', async (t) => {
    const tokenFor = async (client: string) => {
      const r = await fetch(`${sys.idp.issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      });
      t.equal(r.status, 200, `client_credentials token for ${client}`);
      return ((await r.json()) as { access_token: string }).access_token;
    };
    const own = await tokenFor('proxy');
    const b = newBrowser();
    const first = await b.request(`http://proxy.localhost:${gw}/api/items`, { headers: { authorization: `Bearer ${own}` } });
    t.equal(first.status, 200, 'accepted');
    const e = echo(first.body);
    t.equal(e.headers['x-authentik-uid'], 'proxy', 'the client is the subject');
    t.equal(e.headers['x-authentik-jwt'], own, 'X-authentik-jwt is the presented token');
    t.notOk('authorization' in e.headers, 'the credential is not passed upstream');
    t.notOk(first.headers['set-cookie'], 'no cookie for a machine client');
    const again = await b.request(`http://proxy.localhost:${gw}/api/items`, { headers: { authorization: `Bearer ${own}` } });
    t.equal(again.status, 200, 'accepted again (from the cached check)');
    const other = await tokenFor('single');
    const refused = await b.request(`http://proxy.localhost:${gw}/api/items`, { headers: { authorization: `Bearer ${other}` } });
    t.equal(refused.status, 401, "a token issued to another client is refused (intercept_header_auth → 401, no redirect)");
    const basic = await b.request(`http://proxy.localhost:${gw}/api/items`, {
      headers: { authorization: `Basic ${Buffer.from(`goauthentik.io/token:${own}`).toString('base64')}` },
    });
    t.equal(basic.status, 200, 'Basic with goauthentik.io/token carries a bearer token');
  });

  t.test('sign_out without a session shows the signed-out page and clears the cookie (no login round trip)', async (t) => {
    const r = await newBrowser().request(`http://proxy.localhost:${gw}/outpost.goauthentik.io/sign_out`);
    t.equal(r.status, 200);
    t.match(r.body, /signed out/i);
    t.match(String(r.headers['set-cookie']), /Max-Age=0/);
  });

  t.test('a tampered or replayed state at the callback → 400 page, no session', async (t) => {
    const b = newBrowser();
    let callbackUrl = '';
    await loginThroughIdp(b, `http://proxy.localhost:${gw}/x`, ALICE, {
      stopAt: (u) => {
        if (u.includes('/outpost.goauthentik.io/callback')) callbackUrl = u;
        return u.includes('/outpost.goauthentik.io/callback');
      },
    });
    t.ok(callbackUrl, 'stopped before the callback');
    const tampered = new URL(callbackUrl);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')}x`);
    const bad = await b.request(tampered.href);
    t.equal(bad.status, 400);
    const good = await b.request(callbackUrl);
    t.equal(good.status, 302, 'the untouched callback still works once');
    const replay = await b.request(callbackUrl);
    t.equal(replay.status, 400, 'a replayed callback is refused');
    t.notOk(String(replay.headers['set-cookie'] ?? '').includes('authentik_proxy_') && replay.status === 302);
  });

  t.test('the login survives a restart between start and callback (state is sealed, not in memory)', async (t) => {
    const b = newBrowser();
    let callbackUrl = '';
    await loginThroughIdp(b, `http://proxy.localhost:${gw}/after-restart`, ALICE, {
      stopAt: (u) => {
        if (u.includes('/outpost.goauthentik.io/callback')) callbackUrl = u;
        return callbackUrl !== '';
      },
    });
    await sys.restart();
    const r = await b.follow(callbackUrl);
    t.equal(r.final.status, 200);
    t.equal(echo(r.final.body).url, '/after-restart');
  });

  t.test('an invalid rd is ignored: after login the user lands on external_host', async (t) => {
    const b = newBrowser();
    const { finalResponse: r } = await loginThroughIdp(b, `http://proxy.localhost:${gw}/outpost.goauthentik.io/start?rd=${encodeURIComponent('https://evil.example/x')}`, ALICE);
    t.equal(r.status, 200);
    t.equal(echo(r.body).url, '/');
  });

  t.test('"#" on the request line → 400', async (t) => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(gw, '127.0.0.1', () => s.write('GET /page#frag HTTP/1.1\r\nHost: proxy.localhost\r\nConnection: close\r\n\r\n'));
      let data = '';
      s.on('data', (d) => {
        data += d.toString();
      });
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    t.match(reply, /^HTTP\/1\.1 400/);
  });
});
