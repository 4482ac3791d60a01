// Tests of the scripted browser and loginThroughIdp against the real dev IdP and a tiny relying party on *.localhost.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createBrowser } from './browser.ts';
import { TestkitErrorCode } from './errors.ts';
import { closeServer, listen } from './http-server.ts';
import { type Idp, startIdp } from './idp.ts';
import { subjectFor } from './idp-users.ts';
import { loginThroughIdp } from './login-through-idp.ts';
import { getFreePort } from './ports.ts';
import { startUpstream } from './upstream.ts';

interface RelyingParty {
  origin: string;
  logoutTokens: string[];
  idTokens: string[];
  server: Server;
}

const readBody = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};
const cookieOf = (req: IncomingMessage, name: string) =>
  new RegExp(`(?:^|; )${name}=([^;]*)`).exec(req.headers.cookie ?? '')?.[1];
const payloadOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));

/**
 * The smallest RP that exercises a browser: redirect to the IdP with PKCE, exchange the code server-side,
 * keep a session cookie, RP-initiated logout and a back-channel logout endpoint.
 */
async function startRelyingParty(port: number, idpPort: number, issuer: string): Promise<RelyingParty> {
  const origin = `http://app.localhost:${port}`;
  const flows = new Map<string, string>(); // state → code_verifier
  const sessions = new Map<string, { sub: string; idToken: string }>();
  const rp: RelyingParty = { origin, logoutTokens: [], idTokens: [], server: createServer() };
  rp.server.on('request', async (req, res) => {
    const url = new URL(req.url ?? '/', origin);
    if (url.pathname === '/') {
      const session = sessions.get(cookieOf(req, 'rp_session') ?? '');
      if (session) return res.end(`hello ${session.sub}`);
      const state = randomBytes(8).toString('hex');
      const verifier = randomBytes(32).toString('base64url');
      flows.set(state, verifier);
      const auth = new URL('/auth', issuer);
      auth.search = new URLSearchParams({
        client_id: 'app',
        response_type: 'code',
        redirect_uri: `${origin}/cb`,
        scope: 'openid profile groups',
        state,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString();
      res.writeHead(302, { location: auth.href, 'set-cookie': `rp_state=${state}; Path=/; HttpOnly` });
      return res.end();
    }
    if (url.pathname === '/cb') {
      const state = url.searchParams.get('state') ?? '';
      if (state !== cookieOf(req, 'rp_state')) return res.writeHead(400).end('state mismatch');
      const tokenRes = await request(`http://127.0.0.1:${idpPort}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('app:app-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: url.searchParams.get('code') ?? '',
          redirect_uri: `${origin}/cb`,
          code_verifier: flows.get(state) ?? '',
        }).toString(),
      });
      const tokens = (await tokenRes.body.json()) as { id_token: string };
      rp.idTokens.push(tokens.id_token);
      const sid = randomBytes(8).toString('hex');
      sessions.set(sid, { sub: payloadOf(tokens.id_token).sub, idToken: tokens.id_token });
      res.writeHead(303, { location: '/', 'set-cookie': [`rp_session=${sid}; Path=/; HttpOnly`, 'rp_state=; Max-Age=0; Path=/'] });
      return res.end();
    }
    if (url.pathname === '/logout') {
      const session = sessions.get(cookieOf(req, 'rp_session') ?? '');
      const end = new URL('/session/end', issuer);
      end.search = new URLSearchParams({
        id_token_hint: session?.idToken ?? '',
        post_logout_redirect_uri: `${origin}/bye`,
        state: 'after-logout',
      }).toString();
      res.writeHead(302, { location: end.href, 'set-cookie': 'rp_session=; Max-Age=0; Path=/' });
      return res.end();
    }
    if (url.pathname === '/bye') return res.end(`bye ${url.searchParams.get('state')}`);
    if (url.pathname === '/backchannel' && req.method === 'POST') {
      rp.logoutTokens.push(new URLSearchParams(await readBody(req)).get('logout_token') ?? '');
      return res.end();
    }
    res.writeHead(404).end();
  });
  await listen(rp.server, port, '127.0.0.1');
  return rp;
}

async function startStack(t: Test): Promise<{ idp: Idp; rp: RelyingParty }> {
  const [idpPort, rpPort] = [await getFreePort(), await getFreePort()];
  const issuer = `http://idp.localhost:${idpPort}`;
  const idp = await startIdp({
    port: idpPort,
    issuer,
    clients: [
      {
        client_id: 'app',
        client_secret: 'app-secret',
        redirect_uris: [`http://app.localhost:${rpPort}/cb`],
        post_logout_redirect_uris: [`http://app.localhost:${rpPort}/bye`],
        backchannel_logout_uri: `http://127.0.0.1:${rpPort}/backchannel`,
      },
    ],
  });
  const rp = await startRelyingParty(rpPort, idpPort, issuer);
  t.teardown(async () => {
    await closeServer(rp.server);
    await idp.close();
  });
  return { idp, rp };
}

t.test('loginThroughIdp goes app → IdP form → app across *.localhost hosts and ends signed in', async (t) => {
  const { rp, idp } = await startStack(t);
  const browser = createBrowser();
  t.teardown(() => browser.close());

  const { finalResponse, chain } = await loginThroughIdp(browser, `${rp.origin}/`, { username: 'alice', password: 'alice-password' });
  t.equal(finalResponse.status, 200);
  t.equal(finalResponse.body, `hello ${subjectFor('alice')}`);
  t.equal(chain[0]?.url, `${rp.origin}/`);
  t.ok(chain.some((s) => s.url.startsWith(`${idp.issuer}/interaction/`)), 'the chain passed through the IdP form');
  t.same(
    browser.cookies(`${rp.origin}/`).map((c) => c.name),
    ['rp_session'],
    'the app cookie is stored for the app host, and its deleted state cookie is gone',
  );
  t.ok(browser.cookies(`${idp.issuer}/auth`).some((c) => c.name === '_session'), 'the IdP session cookie is stored for the IdP host');

  // A second login needs no form: the IdP session is still there.
  browser.setCookie(`${rp.origin}/`, 'rp_session=; Max-Age=0; Path=/');
  const again = await loginThroughIdp(browser, `${rp.origin}/`, { username: 'alice', password: 'wrong-but-unused' });
  t.equal(again.finalResponse.body, `hello ${subjectFor('alice')}`, 'single sign-on through the IdP session');
});

t.test('RP-initiated logout auto-submits, honours post_logout_redirect_uri and sends a back-channel logout token', async (t) => {
  const { rp, idp } = await startStack(t);
  const browser = createBrowser();
  t.teardown(() => browser.close());
  await loginThroughIdp(browser, `${rp.origin}/`, { username: 'bob', password: 'bob-password' });

  const { final, chain } = await browser.follow(`${rp.origin}/logout`);
  t.equal(final.url, `${rp.origin}/bye?state=after-logout`);
  t.equal(final.body, 'bye after-logout');
  t.ok(chain.some((s) => s.url.startsWith(`${idp.issuer}/session/end/confirm`)), 'the confirmation form was submitted');

  t.equal(rp.logoutTokens.length, 1, 'one back-channel logout token');
  const logout = payloadOf(rp.logoutTokens[0] ?? '');
  const id = payloadOf(rp.idTokens[0] ?? '');
  t.equal(logout.sub, subjectFor('bob'));
  t.equal(logout.sid, id.sid, 'the logout token names the session of the ID token');
  t.ok(logout.events?.['http://schemas.openid.net/event/backchannel-logout'], 'the back-channel logout event');

  const relogin = await browser.follow(`${rp.origin}/`);
  t.match(relogin.final.body, /type="password"/, 'the IdP asks for the password again');
});

t.test('loginThroughIdp rejects with LOGIN_FAILED when the IdP shows the form again', async (t) => {
  const { rp } = await startStack(t);
  const browser = createBrowser();
  t.teardown(() => browser.close());
  await t.rejects(loginThroughIdp(browser, `${rp.origin}/`, { username: 'alice', password: 'nope' }), {
    code: TestkitErrorCode.LoginFailed,
  });
});

t.test('stopAt ends the journey before requesting the matching URL', async (t) => {
  const { rp } = await startStack(t);
  const browser = createBrowser();
  t.teardown(() => browser.close());
  const { finalResponse } = await loginThroughIdp(
    browser,
    `${rp.origin}/`,
    { username: 'alice', password: 'alice-password' },
    { stopAt: (url) => url.startsWith(`${rp.origin}/cb`) },
  );
  t.equal(finalResponse.status, 303);
  t.match(finalResponse.location, new RegExp(`^${rp.origin}/cb\\?code=`));
});

t.test('resolve sends a hostname to a chosen loopback port while Host keeps the URL host', async (t) => {
  const upstream = await startUpstream({ name: 'resolved' });
  t.teardown(() => upstream.close());
  const browser = createBrowser({ resolve: { 'app.example.test': upstream.port } });
  t.teardown(() => browser.close());
  const res = await browser.request('http://app.example.test/hello?x=1');
  const echo = JSON.parse(res.body);
  t.equal(echo.name, 'resolved');
  t.equal(echo.headers.host, 'app.example.test');
  t.equal(echo.url, '/hello?x=1');
});

t.test('request sends form bodies, stores Set-Cookie and resolves Location', async (t) => {
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    res.writeHead(302, {
      location: '../next',
      'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
      'x-echo': `${req.method} ${req.headers['content-type']} ${body} ${req.headers.cookie ?? ''}`,
    });
    res.end();
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => closeServer(server));
  const browser = createBrowser();
  t.teardown(() => browser.close());
  const first = await browser.request(`http://web.localhost:${port}/dir/page`, { method: 'post', body: new URLSearchParams({ k: 'v w' }) });
  t.equal(first.headers['x-echo'], 'POST application/x-www-form-urlencoded k=v+w ');
  t.equal(first.location, `http://web.localhost:${port}/next`);
  t.same(first.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
  const second = await browser.request(`http://web.localhost:${port}/`, { headers: { Cookie: 'explicit=1' } });
  t.match(second.headers['x-echo'], /explicit=1; a=1; b=2$/, 'jar cookies are added after explicit ones');
});

t.test('follow turns a 302 after POST into a GET, and throws TOO_MANY_REDIRECTS on a loop', async (t) => {
  const methods: string[] = [];
  const server = createServer((req, res) => {
    methods.push(`${req.method} ${req.url}`);
    if (req.url === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (req.url === '/start') return res.writeHead(302, { location: '/done' }).end();
    if (req.url === '/keep') return res.writeHead(307, { location: '/done' }).end();
    res.end(req.method);
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => closeServer(server));
  const browser = createBrowser();
  t.teardown(() => browser.close());

  const post = await browser.follow(`http://127.0.0.1:${port}/start`, { method: 'POST', body: 'x' });
  t.equal(post.final.body, 'GET');
  t.same(post.chain.map((s) => s.status), [302, 200]);
  const kept = await browser.follow(`http://127.0.0.1:${port}/keep`, { method: 'POST', body: 'x' });
  t.equal(kept.final.body, 'POST', '307 repeats the method');

  await t.rejects(browser.follow(`http://127.0.0.1:${port}/loop`, undefined, { max: 5 }), { code: TestkitErrorCode.TooManyRedirects });
  t.equal(methods.filter((m) => m === 'GET /loop').length, 5, 'stops after max requests');
});
