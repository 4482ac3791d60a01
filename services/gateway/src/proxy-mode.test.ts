// Proxy mode through a real upstream: redirects, identity headers, spoofing, allow-list, failures.
import { startUpstream } from '@portcullis/testkit';
import t from 'tap';
import { providerYaml, startTestGateway, testConfig } from './test-support.ts';

const ALICE = {
  sub: 'alice-sub',
  preferred_username: 'alice',
  email: 'alice@example.com',
  name: 'Alice A',
  groups: ['admins', 'users', 'bad|group'],
  entitlements: ['read'],
  ak_proxy: { user_attributes: { additionalHeaders: { 'X-Team': 'platform' } } },
};

t.test('proxy mode', async (t) => {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  const down = await startUpstream();
  const downUrl = down.url;
  await down.close();
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'https://app.company', internal_host: upstream.url, skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'dead', mode: 'proxy', external_host: 'https://dead.company', internal_host: downUrl, client_id: 'client-b' })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  const inject = gw.gateway.http.inject.bind(gw.gateway.http);
  const echo = (body: string) => JSON.parse(body) as { url: string; headers: Record<string, string> };

  t.test('ping answers 204 on any host and any listener path prefix', async (t) => {
    const r = await inject({ url: '/outpost.goauthentik.io/ping', headers: { host: 'unknown.example' } });
    t.equal(r.statusCode, 204);
    t.equal(r.body, '');
  });

  t.test('an unknown host with several providers → 400 JSON naming the host', async (t) => {
    const r = await inject({ url: '/', headers: { host: 'nope.example' } });
    t.equal(r.statusCode, 400);
    t.match(JSON.parse(r.body), { Message: 'no app for hostname', Host: 'nope.example' });
  });

  t.test('unauthenticated → 302 to /start with rd = the original URL, query kept', async (t) => {
    const r = await inject({ url: '/some/page?x=1&y=2', headers: { host: 'app.company' } });
    t.equal(r.statusCode, 302);
    const loc = new URL(r.headers.location as string);
    t.equal(loc.origin + loc.pathname, 'https://app.company/outpost.goauthentik.io/start');
    t.equal(loc.searchParams.get('rd'), 'https://app.company/some/page?x=1&y=2');
    t.equal(upstream.requests, 0, 'nothing reached the upstream');
  });

  t.test('headers named in Connection are not forwarded (RFC 9110 §7.6.1); a plain keep-alive drops nothing else', async (t) => {
    const cookie = await gw.login('app', ALICE);
    for (const connection of ['keep-alive, X-Hop', 'X-Hop', 'Keep-Alive,x-hop']) {
      const r = await inject({ url: '/c', headers: { host: 'app.company', cookie, connection, 'x-hop': 'secret', 'x-kept': 'yes' } });
      t.equal(r.statusCode, 200, connection);
      const e = echo(r.body);
      t.equal(e.headers['x-hop'], undefined, `${connection}: x-hop dropped`);
      t.equal(e.headers['x-kept'], 'yes', `${connection}: x-kept forwarded`);
    }
    for (const connection of ['keep-alive', 'Keep-Alive']) {
      const r = await inject({ url: '/c', headers: { host: 'app.company', cookie, connection, 'x-hop': 'kept', 'keep-alive': 'timeout=5' } });
      const e = echo(r.body);
      t.equal(e.headers['x-hop'], 'kept', `${connection}: other headers forwarded`);
      t.equal(e.headers['keep-alive'], undefined, `${connection}: the Keep-Alive header itself is hop-by-hop`);
      t.equal(e.headers['x-authentik-username'], 'alice');
    }
  });

  t.test('unauthenticated with Authorization and intercept_header_auth → 401 page, no redirect', async (t) => {
    const r = await inject({ url: '/api', headers: { host: 'app.company', authorization: 'Bearer x' } });
    t.equal(r.statusCode, 401);
    t.notOk(r.headers.location);
    t.match(r.body, /Unauthenticated/);
  });

  t.test('authenticated → upstream gets identity headers, X-Forwarded-Host, the original Host', async (t) => {
    const cookie = await gw.login('app', ALICE);
    const r = await inject({ url: '/hello?q=1', headers: { host: 'app.company', cookie, accept: 'application/json' } });
    t.equal(r.statusCode, 200);
    const e = echo(r.body);
    t.equal(e.url, '/hello?q=1');
    t.equal(e.headers['x-authentik-username'], 'alice');
    t.equal(e.headers['x-authentik-uid'], 'alice-sub');
    t.equal(e.headers['x-authentik-email'], 'alice@example.com');
    t.equal(e.headers['x-authentik-groups'], 'admins|users', 'a group containing | is left out');
    t.equal(e.headers['x-authentik-entitlements'], 'read');
    t.equal(e.headers['x-authentik-jwt'], 'access-token-123');
    t.equal(e.headers['x-authentik-meta-provider'], 'app');
    t.equal(e.headers['x-authentik-meta-app'], 'app');
    t.equal(e.headers['x-authentik-meta-outpost'], 'Portcullis Outpost');
    t.equal(e.headers['x-authentik-meta-version'], 'portcullis/test');
    t.equal(e.headers['x-team'], 'platform');
    t.equal(e.headers.host, 'app.company');
    t.equal(e.headers['x-forwarded-host'], 'app.company');
    t.equal(e.headers['x-forwarded-proto'], 'http');
    t.ok(gw.warnings.some((w) => /identity headers cleaned/.test(w)), 'the dropped group is logged');
  });

  t.test('client-sent identity headers never reach the upstream, in any spelling', async (t) => {
    const cookie = await gw.login('app', ALICE);
    const spoof = {
      'X-Authentik-Username': 'mallory',
      x_authentik_uid: 'mallory',
      'x.authentik.groups': 'admins',
      'X-authentik-meta-extra': 'x',
      'Remote-User': 'mallory',
      remote_email: 'm@x',
      'X-Forwarded-User': 'mallory',
      'X-Auth-Request-Email': 'm@x',
      'X-Real-IP': '1.2.3.4',
    };
    for (const withSession of [true, false]) {
      const r = await inject({
        url: withSession ? '/private' : '/public/file',
        headers: { host: 'app.company', ...(withSession ? { cookie } : {}), ...spoof },
      });
      t.equal(r.statusCode, 200);
      const h = echo(r.body).headers;
      t.equal(h['x-authentik-username'], withSession ? 'alice' : undefined, `session=${withSession}`);
      for (const name of ['x_authentik_uid', 'x.authentik.groups', 'x-authentik-meta-extra', 'remote-user', 'remote_email', 'x-forwarded-user', 'x-auth-request-email']) {
        t.notOk(name in h, `${name} stripped (session=${withSession})`);
      }
      t.equal(h['x-real-ip'], '127.0.0.1', 'X-Real-IP is the peer, never the client value');
    }
  });

  t.test("a header the session sets replaces the client's header of that name, sent once", async (t) => {
    const cookie = await gw.login('app', ALICE);
    const r = await inject({ url: '/team', headers: { host: 'app.company', cookie, 'X-Team': 'spoofed', 'x-other': 'kept' } });
    t.equal(r.statusCode, 200);
    const h = echo(r.body).headers;
    t.equal(h['x-team'], 'platform', 'only the session\'s value (a duplicate would read "spoofed, platform")');
    t.equal(h['x-other'], 'kept', 'other client headers pass');
  });

  t.test('a session header the gateway also sets per request (additionalHeaders X-Forwarded-For) is sent once, the session\'s value', async (t) => {
    const cookie = await gw.login('app', { ...ALICE, ak_proxy: { user_attributes: { additionalHeaders: { 'X-Forwarded-For': '192.0.2.1', 'X-Team': 'ops' } } } });
    const r = await inject({ url: '/xff', headers: { host: 'app.company', cookie, 'x-team': 'spoofed' } });
    t.equal(r.statusCode, 200);
    const h = echo(r.body).headers;
    t.equal(h['x-forwarded-for'], '192.0.2.1');
    t.equal(h['x-team'], 'ops');
    t.equal(h['x-authentik-username'], 'alice', 'the identity headers are all there');
  });

  t.test('allow-listed path without a session → proxied with no identity headers', async (t) => {
    const r = await inject({ url: '/public/a.css', headers: { host: 'app.company' } });
    t.equal(r.statusCode, 200);
    t.notOk('x-authentik-username' in echo(r.body).headers);
  });

  t.test('skip rules see the normalised path: dot segments and double slashes cannot sneak in', async (t) => {
    for (const url of ['/public/../private', '/public/%2e%2e/private', '//public/../private', '/public%2Fx', '/public/..%2Fprivate', '/x/../public/%2F', '/public/..;/private', '/public/%2e%2e;x/private']) {
      const r = await inject({ url, headers: { host: 'app.company' } });
      t.equal(r.statusCode, 302, `${url} is not allow-listed`);
    }
    const r = await inject({ url: '/x/..//public/ok', headers: { host: 'app.company' } });
    t.equal(r.statusCode, 200, 'a path that normalises into /public/ is allowed');
    t.equal(echo(r.body).url, '/public/ok', 'the upstream receives the path that was judged');
  });

  t.test('a malformed, forged, expired or foreign cookie gets the no-cookie answer plus a deletion cookie', async (t) => {
    const good = await gw.login('app', ALICE);
    const [name, value] = good.split('=') as [string, string];
    const expired = await gw.login('app', ALICE, { expiresAt: Date.now() - 1000 });
    const foreign = await gw.login('dead', { ...ALICE });
    const foreignValue = foreign.split('=')[1]!;
    const cases = {
      malformed: `${name}=garbage`,
      forged: `${name}=${value.slice(0, -2)}xx`,
      'other secret': `${name}=${value.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`,
      expired,
      'other provider': `${name}=${foreignValue}`,
    };
    for (const [label, cookie] of Object.entries(cases)) {
      const r = await inject({ url: '/private', headers: { host: 'app.company', cookie } });
      t.equal(r.statusCode, 302, `${label}: redirected to login`);
      t.match(String(r.headers['set-cookie']), new RegExp(`^${name}=;.*Max-Age=0`), `${label}: cookie deleted`);
    }
  });

  t.test('a signed-out session is refused', async (t) => {
    const cookie = await gw.login('app', { ...ALICE, sub: 'carol' });
    t.equal((await inject({ url: '/', headers: { host: 'app.company', cookie } })).statusCode, 200);
    await gw.signOut('carol');
    t.equal((await inject({ url: '/', headers: { host: 'app.company', cookie } })).statusCode, 302);
  });

  t.test('backend_override (scheme + host only) and host_header from the session are honoured', async (t) => {
    const other = await startUpstream({ name: 'override' });
    t.teardown(() => other.close());
    const cookie = await gw.login('app', { ...ALICE, ak_proxy: { backend_override: `${other.url}/ignored/path`, host_header: 'internal.example' } });
    const r = await inject({ url: '/x', headers: { host: 'app.company', cookie } });
    const e = JSON.parse(r.body) as { name: string; url: string; headers: Record<string, string> };
    t.equal(e.name, 'override');
    t.equal(e.url, '/x');
    t.equal(e.headers.host, 'internal.example');
    t.equal(e.headers['x-forwarded-host'], 'app.company');
  });

  t.test('an unusable backend_override or an empty host_header is ignored: internal_host and the client Host', async (t) => {
    for (const backend_override of ['not a url', 'ftp://files.example/', '', 42]) {
      const cookie = await gw.login('app', { ...ALICE, ak_proxy: { backend_override, host_header: '' } });
      // Twice: the second request reads what the first left cached with the session.
      for (const round of [1, 2]) {
        const e = JSON.parse((await inject({ url: '/y', headers: { host: 'app.company', cookie } })).body) as { name: string; headers: Record<string, string> };
        t.equal(e.name, 'echo', `${JSON.stringify(backend_override)}, request ${round}`);
        t.equal(e.headers.host, 'app.company', `${JSON.stringify(backend_override)}, request ${round}`);
      }
    }
  });

  t.test('X-Forwarded-For: the chain only from a trusted peer, then the peer appended', async (t) => {
    const cookie = await gw.login('app', ALICE);
    const trusted = await inject({ url: '/', remoteAddress: '10.0.0.5', headers: { host: 'app.company', cookie, 'x-forwarded-for': '203.0.113.9' } });
    t.equal(echo(trusted.body).headers['x-forwarded-for'], '203.0.113.9, 10.0.0.5');
    t.equal(echo(trusted.body).headers['x-real-ip'], '203.0.113.9');
    const untrusted = await inject({ url: '/', remoteAddress: '198.51.100.7', headers: { host: 'app.company', cookie, 'x-forwarded-for': '203.0.113.9' } });
    t.equal(echo(untrusted.body).headers['x-forwarded-for'], '198.51.100.7');
    t.equal(echo(untrusted.body).headers['x-real-ip'], '198.51.100.7');
  });

  t.test('X-Forwarded-Host picks the provider only from a trusted peer', async (t) => {
    const fromTrusted = await inject({ url: '/', remoteAddress: '10.0.0.5', headers: { host: 'whatever', 'x-forwarded-host': 'dead.company' } });
    t.match(fromTrusted.headers.location, /^https:\/\/dead\.company\//);
    const fromUntrusted = await inject({ url: '/', remoteAddress: '198.51.100.7', headers: { host: 'app.company', 'x-forwarded-host': 'dead.company' } });
    t.match(fromUntrusted.headers.location, /^https:\/\/app\.company\//);
  });

  t.test('hosts compare case-insensitively, without trailing dot or default port', async (t) => {
    const cases: Array<[string, string]> = [
      ['APP.Company', 'http'],
      ['app.company.', 'http'],
      ['app.company:80', 'http'],
      ['app.company:443', 'https'],
    ];
    for (const [host, proto] of cases) {
      const r = await inject({ url: '/', headers: { host, 'x-forwarded-proto': proto } });
      t.match(r.headers.location, /^https:\/\/app\.company\//, host);
    }
  });

  t.test('upstream down → 502 Bad Gateway page', async (t) => {
    const cookie = await gw.login('dead', ALICE);
    const r = await inject({ url: '/', headers: { host: 'dead.company', cookie } });
    t.equal(r.statusCode, 502);
    t.match(r.body, /Bad Gateway/);
  });

  t.test('POST bodies are streamed to the upstream unchanged', async (t) => {
    const cookie = await gw.login('app', ALICE);
    const r = await inject({ method: 'POST', url: '/form', payload: 'a=1&b=2', headers: { host: 'app.company', cookie, 'content-type': 'application/x-www-form-urlencoded' } });
    t.equal((JSON.parse(r.body) as { body: string }).body, 'a=1&b=2');
    const j = await inject({ method: 'PUT', url: '/json', payload: '{"k":true}', headers: { host: 'app.company', cookie, 'content-type': 'application/json' } });
    t.equal((JSON.parse(j.body) as { body: string }).body, '{"k":true}');
  });

  t.test('streaming responses pass through', async (t) => {
    const cookie = await gw.login('app', ALICE);
    const r = await inject({ url: '/__stream?chunks=3&delay=5', headers: { host: 'app.company', cookie } });
    t.equal(r.statusCode, 200);
    t.equal(r.body.trim().split('\n').length, 3);
  });
});
