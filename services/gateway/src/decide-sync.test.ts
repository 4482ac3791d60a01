// The handler's synchronous decisions: a session known from memory is decided without a promise, with the answer handle() gives; anything that must wait stays a promise; failures stay closed.
import type { SessionReader } from '@portcullis/store';
import t from 'tap';
import type { Answer } from './answers.ts';
import { GatewayHandler, type GatewayHandlerDeps } from './gateway-handler.ts';
import type { IncomingRequest } from './request-context.ts';
import { providerYaml, startTestGateway, testConfig, unreachableRpc } from './test-support.ts';
import { upstreamHeaders } from './upstream.ts';

const BOB = { sub: 'bob-sub', preferred_username: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['users'] };
const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: 'http://127.0.0.1:1', skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f' })}
`);
const request = (url: string, headers: Record<string, string>): IncomingRequest => ({ method: 'GET', url, headers, peer: '127.0.0.1', encrypted: false });
/** The parts of an answer a client or upstream sees. */
const visible = (a: Answer) => (a.kind === 'proxy' ? { kind: a.kind, origin: a.origin, path: a.path, headers: upstreamHeaders(a) } : { kind: a.kind, status: a.status, headers: a.headers, body: a.body });

t.test('decide() answers synchronously exactly when nothing needs waiting for, with the answer handle() gives', async (t) => {
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  const handler = gw.gateway.handler;
  const app = await gw.login('app', BOB);
  const fwd = await gw.login('single', BOB);
  const forged = app.replace(/=.*$/, '=not-a-signed-value');
  const cases: Array<{ name: string; req: IncomingRequest; sync: boolean; expect: (a: Answer) => boolean }> = [
    {
      name: 'forward auth with a live session',
      req: request('/outpost.goauthentik.io/auth/nginx', { host: 'fwd.company', 'x-original-url': 'http://fwd.company/page', cookie: fwd }),
      sync: true,
      expect: (a) => a.kind === 'respond' && a.status === 200 && a.headers.some(([k, v]) => k === 'X-authentik-username' && v === 'bob'),
    },
    {
      name: 'proxy mode with a live session',
      req: request('/hello?q=1', { host: 'app.company', cookie: app }),
      sync: true,
      expect: (a) => a.kind === 'proxy' && a.path === '/hello?q=1' && upstreamHeaders(a)['x-authentik-username'] === 'bob',
    },
    { name: 'proxy mode without a cookie: the login redirect', req: request('/private', { host: 'app.company' }), sync: true, expect: (a) => a.kind === 'respond' && a.status === 302 },
    { name: 'an allow-listed path', req: request('/public/x.css', { host: 'app.company' }), sync: true, expect: (a) => a.kind === 'proxy' },
    { name: 'ping', req: request('/outpost.goauthentik.io/ping', { host: 'app.company' }), sync: true, expect: (a) => a.kind === 'respond' && a.status === 204 },
    {
      name: 'a cookie with a bad signature: the redirect that deletes it',
      req: request('/private', { host: 'app.company', cookie: forged }),
      sync: true,
      expect: (a) => a.kind === 'respond' && a.status === 302 && a.headers.some(([k]) => k === 'set-cookie'),
    },
    {
      name: 'a session ended meanwhile (the store must be asked, read-your-writes)',
      req: request('/hello', { host: 'app.company', cookie: await gw.login('app', { ...BOB, sub: 'ended' }) }),
      sync: false,
      expect: (a) => a.kind === 'respond' && a.status === 302,
    },
    { name: 'sign-out (asks the auth service)', req: request('/outpost.goauthentik.io/sign_out', { host: 'app.company', cookie: app }), sync: false, expect: (a) => a.kind === 'respond' },
    {
      name: 'an Authorization header without a session (asks the auth service)',
      req: request('/hello', { host: 'app.company', authorization: 'Bearer abc' }),
      sync: false,
      // refused by the test auth service; intercept_header_auth (default on) answers 401
      expect: (a) => a.kind === 'respond' && a.status === 401,
    },
  ];
  await gw.signOut('ended');
  for (const c of cases) {
    const decided = handler.decide(c.req);
    t.equal(decided instanceof Promise, !c.sync, `${c.name}: ${c.sync ? 'synchronous' : 'a promise'}`);
    const answer = await decided;
    t.ok(c.expect(answer), `${c.name}: the expected answer`);
    t.same(visible(answer), visible(await handler.handle(c.req)), `${c.name}: what handle() answers`);
  }
});

t.test('a store that throws while answering from memory, or rejects, fails closed: 503, never a 2xx, never a throw', async (t) => {
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  const fwd = await gw.login('single', BOB);
  const app = await gw.login('app', BOB);
  const deps = (store: SessionReader): GatewayHandlerDeps => ({
    config,
    rpc: unreachableRpc,
    store,
    version: 'x',
    waitForRevocation: async () => 'unprojected',
    log: { warn: () => {}, error: () => {} },
  });
  const down = async () => Promise.reject(new Error('redis down'));
  const stores: Array<[string, SessionReader]> = [
    [
      'peek throws',
      {
        appliedSeq: down,
        getLiveSession: down,
        listLiveSessions: async () => [],
        waitForApplied: async () => false,
        peekLiveSession: () => {
          throw new Error('broken cache');
        },
      },
    ],
    ['reads reject', { appliedSeq: down, getLiveSession: down, listLiveSessions: async () => [], waitForApplied: async () => false, peekLiveSession: () => undefined }],
  ];
  for (const [name, store] of stores) {
    const handler = new GatewayHandler(deps(store));
    for (const req of [
      request('/outpost.goauthentik.io/auth/nginx', { host: 'fwd.company', 'x-original-url': 'http://fwd.company/page', cookie: fwd }),
      request('/hello', { host: 'app.company', cookie: app }),
    ]) {
      let decided: Answer | Promise<Answer> | undefined;
      t.doesNotThrow(() => {
        decided = handler.decide(req);
      }, `${name}, ${req.url}: decide() does not throw`);
      const answer = await decided;
      t.equal(answer?.kind === 'respond' && answer.status, 503, `${name}, ${req.url}: 503`);
      t.same(answer?.kind === 'respond' && answer.headers.filter(([k]) => k === 'retry-after'), [['retry-after', '5']], `${name}, ${req.url}: Retry-After`);
    }
  }
});
