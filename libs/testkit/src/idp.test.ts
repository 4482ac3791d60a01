// Tests of the development IdP: discovery, the code + PKCE flow by hand, token claims, disabled users, refresh token rotation, JWT access tokens, PKCE enforcement.
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { request } from 'undici';
import { startIdp } from './idp.ts';
import { DEV_IDP_BANNER } from './idp-pages.ts';
import { DEMO_USERS, subjectFor } from './idp-users.ts';
import { createBrowser } from './browser.ts';
import { getFreePort } from './ports.ts';

const client = { client_id: 'app', client_secret: 'app-secret', redirect_uris: ['http://app.test/callback'] };
const scope = 'openid profile email groups entitlements ak_proxy offline_access';
const basic = `Basic ${Buffer.from('app:app-secret').toString('base64')}`;

function base64url(buf: Buffer): string {
  return buf.toString('base64url');
}

function decodeJwt(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

/** A deliberately naive cookie store: one host, every cookie sent everywhere. Enough for the IdP alone. */
function createNaiveCookies() {
  const jar = new Map<string, string>();
  return {
    header: () => [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
    store(setCookie: string | string[] | undefined) {
      for (const line of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
        const [pair = ''] = line.split(';');
        const eq = pair.indexOf('=');
        jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
      }
    },
  };
}

/** Runs the authorization code + PKCE flow with plain undici requests and returns the token response. */
async function runCodeFlow(issuer: string, username: string, password: string, extra: Record<string, string> = {}) {
  const cookies = createNaiveCookies();
  const call = async (url: string, init: { method?: 'GET' | 'POST'; body?: string } = {}) => {
    const res = await request(new URL(url, issuer), {
      method: init.method ?? 'GET',
      headers: {
        cookie: cookies.header(),
        ...(init.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: init.body,
    });
    cookies.store(res.headers['set-cookie']);
    const body = await res.body.text();
    return { status: res.statusCode, location: res.headers.location as string | undefined, body };
  };

  const verifier = base64url(randomBytes(32));
  const nonce = base64url(randomBytes(16));
  const state = base64url(randomBytes(16));
  const auth = new URL('/auth', issuer);
  auth.search = new URLSearchParams({
    client_id: 'app',
    redirect_uri: 'http://app.test/callback',
    response_type: 'code',
    scope,
    prompt: 'consent',
    code_challenge: base64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...extra,
  }).toString();

  let res = await call(auth.href);
  const steps: Array<{ status: number; body: string; location?: string | undefined }> = [];
  // Follow redirects; submit the login form when it shows up.
  for (let i = 0; i < 10 && res.location?.startsWith('http://app.test/') !== true; i++) {
    steps.push(res);
    if (res.status === 200 && res.body.includes('type="password"')) {
      const action = /<form[^>]*action="([^"]+)"/.exec(res.body)?.[1] ?? '';
      res = await call(action, { method: 'POST', body: new URLSearchParams({ username, password }).toString() });
      continue;
    }
    if (!res.location) break;
    res = await call(res.location);
  }
  const callback = new URL(res.location ?? 'http://app.test/none');
  const code = callback.searchParams.get('code');
  const tokenRes = code
    ? await request(new URL('/token', issuer), {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: 'http://app.test/callback',
          code_verifier: verifier,
        }).toString(),
      })
    : undefined;
  const tokens = tokenRes ? ((await tokenRes.body.json()) as Record<string, string>) : undefined;
  return { callback, tokens, nonce, state, steps };
}

t.test('startIdp serves discovery with every endpoint the proxy needs', async (t) => {
  const idp = await startIdp({ clients: [client] });
  t.teardown(() => idp.close());
  const res = await request(`${idp.issuer}/.well-known/openid-configuration`);
  const doc = (await res.body.json()) as Record<string, unknown>;
  t.equal(res.statusCode, 200);
  t.equal(doc['issuer'], `http://127.0.0.1:${idp.port}`);
  for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
    t.match(doc[key], new RegExp(`^${idp.issuer}/`), `${key} is under the issuer`);
  }
  t.same(doc['code_challenge_methods_supported'], ['S256']);
  t.equal(doc['backchannel_logout_supported'], true);
  t.ok((doc['grant_types_supported'] as string[]).includes('client_credentials'));
  t.ok((doc['scopes_supported'] as string[]).includes('ak_proxy'));
});

t.test('startIdp sends oidc-provider notices to log and nothing to the console', async (t) => {
  const printed: unknown[] = [];
  const { warn, info } = console;
  console.warn = (...args: unknown[]) => printed.push(args);
  console.info = (...args: unknown[]) => printed.push(args);
  const logged: string[] = [];
  try {
    const idp = await startIdp({ clients: [client], log: (m) => logged.push(m) });
    await idp.close();
  } finally {
    console.warn = warn;
    console.info = info;
  }
  t.same(printed, []);
  t.ok(logged.some((m) => m.includes('in-memory adapter')), 'the memory adapter notice reached log');
});

t.test('code flow with PKCE: wrong password shows the form again, then tokens carry the user claims and the nonce', async (t) => {
  const idp = await startIdp({ clients: [client] });
  t.teardown(() => idp.close());

  const wrong = await runCodeFlow(idp.issuer, 'alice', 'not-her-password');
  const errorPage = wrong.steps.at(-1);
  t.equal(errorPage?.status, 200, 'a wrong password answers 200 with the form');
  t.match(errorPage?.body, /Invalid username or password/);
  t.match(errorPage?.body, DEV_IDP_BANNER, 'the login page carries the development banner');
  t.equal(wrong.tokens, undefined, 'no code without the right password');

  const flow = await runCodeFlow(idp.issuer, 'alice', 'alice-password');
  t.equal(flow.callback.searchParams.get('state'), flow.state);
  t.ok(flow.tokens?.['access_token'], 'an access token');
  t.ok(flow.tokens?.['refresh_token'], 'a refresh token');
  const id = decodeJwt(flow.tokens?.['id_token'] ?? '');
  t.equal(id['nonce'], flow.nonce, 'nonce passed through to the ID token');
  t.equal(id['sub'], subjectFor('alice'));
  t.equal(id['aud'], 'app');
  t.equal(id['preferred_username'], 'alice');
  t.equal(id['email'], 'alice@example.com');
  t.same(id['groups'], ['admins', 'users']);
  t.same(id['entitlements'], ['app-admin']);
  t.same(id['ak_proxy'], { user_attributes: { additionalHeaders: { 'X-Demo-Team': 'platform' } } });
  t.type(id['sid'], 'string', 'sid present even without back-channel logout registered');

  const userinfo = await request(`${idp.issuer}/me`, { headers: { authorization: `Bearer ${flow.tokens?.['access_token']}` } });
  const info = (await userinfo.body.json()) as Record<string, unknown>;
  t.equal(userinfo.statusCode, 200);
  t.same(info['groups'], ['admins', 'users']);
  t.equal(info['name'], 'Alice Admin');

  const introspect = async (token: string) => {
    const res = await request(`${idp.issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
    });
    return (await res.body.json()) as Record<string, unknown>;
  };
  t.equal((await introspect(flow.tokens?.['access_token'] ?? ''))['active'], true);

  const refreshed = await request(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: flow.tokens?.['refresh_token'] ?? '' }).toString(),
  });
  t.equal(refreshed.statusCode, 200, 'the refresh token works');
  const refreshedTokens = (await refreshed.body.json()) as Record<string, string>;

  const revoked = await request(`${idp.issuer}/token/revocation`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: refreshedTokens['access_token'] ?? '' }).toString(),
  });
  await revoked.body.text();
  t.equal(revoked.statusCode, 200);
  t.equal((await introspect(refreshedTokens['access_token'] ?? ''))['active'], false, 'a revoked token is inactive');
});

/** A refresh_token grant at the IdP's token endpoint: status and JSON body. */
async function refreshAt(issuer: string, refreshToken: string) {
  const res = await request(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> };
}

t.test('a disabled user cannot sign in, and its refresh token and access token stop working', async (t) => {
  const users = structuredClone(DEMO_USERS);
  const idp = await startIdp({ clients: [client], users });
  t.teardown(() => idp.close());
  const flow = await runCodeFlow(idp.issuer, 'bob', 'bob-password');
  t.ok(flow.tokens?.['refresh_token'], 'bob signed in while enabled');

  idp.users.find((u) => u.username === 'bob')!.disabled = true;
  const refused = await refreshAt(idp.issuer, flow.tokens?.['refresh_token'] ?? '');
  t.equal(refused.status, 400);
  t.equal(refused.body['error'], 'invalid_grant', 'the refresh token of a disabled account is refused');
  const userinfo = await request(`${idp.issuer}/me`, { headers: { authorization: `Bearer ${flow.tokens?.['access_token']}` } });
  await userinfo.body.text();
  t.equal(userinfo.statusCode, 401, 'userinfo refuses the access token of a disabled account');

  const again = await runCodeFlow(idp.issuer, 'bob', 'bob-password');
  t.equal(again.tokens, undefined, 'no code for a disabled account');
  t.match(again.steps.at(-1)?.body, /This account is disabled/);
  t.equal(DEMO_USERS[1]!.disabled, undefined, 'the shared demo users are untouched');

  idp.users.find((u) => u.username === 'bob')!.disabled = false;
  t.ok((await runCodeFlow(idp.issuer, 'bob', 'bob-password')).tokens?.['access_token'], 'enabled again: bob signs in');
});

t.test('rotateRefreshTokens issues a new refresh token per refresh and refuses a used one', async (t) => {
  const rotating = await startIdp({ clients: [client], rotateRefreshTokens: true });
  const keeping = await startIdp({ clients: [client] });
  t.teardown(async () => {
    await rotating.close();
    await keeping.close();
  });
  const first = (await runCodeFlow(rotating.issuer, 'alice', 'alice-password')).tokens?.['refresh_token'] ?? '';
  const next = await refreshAt(rotating.issuer, first);
  t.equal(next.status, 200);
  t.ok(next.body['refresh_token'] && next.body['refresh_token'] !== first, 'a new refresh token');
  t.equal((await refreshAt(rotating.issuer, next.body['refresh_token'] ?? '')).status, 200, 'the new one works');
  const replayed = await refreshAt(rotating.issuer, first);
  t.equal(replayed.body['error'], 'invalid_grant', 'the used one is refused');

  const kept = (await runCodeFlow(keeping.issuer, 'alice', 'alice-password')).tokens?.['refresh_token'] ?? '';
  const once = await refreshAt(keeping.issuer, kept);
  t.equal(once.status, 200);
  t.equal(once.body['refresh_token'], kept, 'by default the same refresh token comes back');
  t.equal((await refreshAt(keeping.issuer, kept)).status, 200, 'and works again');
});

t.test('an authorization request without a code_challenge is refused', async (t) => {
  const idp = await startIdp({ clients: [client] });
  t.teardown(() => idp.close());
  const url = new URL('/auth', idp.issuer);
  url.search = new URLSearchParams({ client_id: 'app', redirect_uri: 'http://app.test/callback', response_type: 'code', scope: 'openid' }).toString();
  const res = await request(url);
  await res.body.text();
  const location = new URL(String(res.headers.location));
  t.equal(location.origin, 'http://app.test');
  t.equal(location.searchParams.get('error'), 'invalid_request');
  t.match(location.searchParams.get('error_description'), /PKCE/);
});

t.test('requirePkce false lets a client without PKCE through, like authentik\'s outpost', async (t) => {
  const idp = await startIdp({ clients: [client], requirePkce: false });
  t.teardown(() => idp.close());
  const url = new URL('/auth', idp.issuer);
  url.search = new URLSearchParams({ client_id: 'app', redirect_uri: 'http://app.test/callback', response_type: 'code', scope: 'openid' }).toString();
  const res = await request(url);
  await res.body.text();
  t.equal(res.statusCode, 303);
  t.match(res.headers.location, /^\/interaction\//, 'on to the login interaction');
});

t.test('accessTokenFormat jwt issues JWT access tokens whose audience is the client_id', async (t) => {
  const idp = await startIdp({ clients: [client], accessTokenFormat: 'jwt', users: [DEMO_USERS[1]!] });
  t.teardown(() => idp.close());
  const flow = await runCodeFlow(idp.issuer, 'bob', 'bob-password');
  const at = decodeJwt(flow.tokens?.['access_token'] ?? '');
  t.equal(at['aud'], 'app');
  t.equal(at['sub'], subjectFor('bob'));
  t.equal(at['iss'], idp.issuer);
  t.same(at['groups'], ['users'], 'the user claims of the granted scopes ride along, as in authentik');
  t.ok(flow.tokens?.['id_token'], 'an ID token as well');
});

t.test('client credentials grant issues an access token', async (t) => {
  const idp = await startIdp({ clients: [client] });
  t.teardown(() => idp.close());
  const res = await request(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
  });
  const body = (await res.body.json()) as Record<string, unknown>;
  t.equal(res.statusCode, 200, JSON.stringify(body));
  t.type(body['access_token'], 'string');
});

t.test('showUsers lists the demo users on the login page; without it they stay hidden', async (t) => {
  const shown = await startIdp({ clients: [client], showUsers: true });
  const hidden = await startIdp({ clients: [client] });
  const browser = createBrowser();
  t.teardown(async () => {
    await browser.close();
    await shown.close();
    await hidden.close();
  });
  const authPath = `/auth?${new URLSearchParams({
    client_id: 'app',
    redirect_uri: 'http://app.test/callback',
    response_type: 'code',
    scope: 'openid',
    code_challenge: 'x'.repeat(43),
    code_challenge_method: 'S256',
  })}`;
  const withUsers = await browser.follow(`${shown.issuer}${authPath}`);
  t.match(withUsers.final.body, '<td>alice</td><td>alice-password</td>');
  t.match(withUsers.final.body, DEV_IDP_BANNER);
  const withoutUsers = await browser.follow(`${hidden.issuer}${authPath}`);
  t.match(withoutUsers.final.body, 'type="password"');
  t.notMatch(withoutUsers.final.body, 'alice-password');
});

t.test('an unknown or expired interaction answers 400 with the error page', async (t) => {
  const idp = await startIdp({ clients: [client] });
  t.teardown(() => idp.close());
  const res = await request(`${idp.issuer}/interaction/does-not-exist`);
  const html = await res.body.text();
  t.equal(res.statusCode, 400);
  t.match(html, /expired or its cookie is missing/);
  t.match(html, DEV_IDP_BANNER);
});

t.test('a client with invalid metadata makes startIdp reject and frees the port', async (t) => {
  const port = await getFreePort();
  await t.rejects(startIdp({ port, clients: [{ client_id: 'bad', client_secret: 's', redirect_uris: ['not a url'] }] }), {
    message: 'invalid_redirect_uri',
  });
  const again = await startIdp({ port, clients: [client] });
  t.equal(again.port, port, 'the port was released');
  await again.close();
});
