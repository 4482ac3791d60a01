// A header credential the auth service could not check (not refused): 503 so the client retries, with the Retry-After the auth service named (else 5 s).
import type { HeaderAuthReply } from '@portcullis/events';
import t, { type Test } from 'tap';
import { providerYaml, startTestGateway, testConfig } from './test-support.ts';

async function askWithBearer(t: Test, reply: HeaderAuthReply) {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'https://app.company', internal_host: 'http://127.0.0.1:1' })}
${providerYaml({ name: 'fwd', mode: 'forward_single', external_host: 'https://fwd.company', client_id: 'client-f' })}
`);
  const gw = await startTestGateway(config, { headerAuthReply: reply });
  t.teardown(() => gw.close());
  const inject = gw.gateway.http.inject.bind(gw.gateway.http);
  return {
    logged: { warnings: gw.warnings, errors: gw.errors },
    proxy: await inject({ url: '/api', headers: { host: 'app.company', authorization: 'Bearer a.b.c' } }),
    forward: await inject({ url: '/outpost.goauthentik.io/auth/nginx', headers: { host: 'fwd.company', 'x-original-url': 'https://fwd.company/api', authorization: 'Bearer a.b.c' } }),
  };
}

t.test('"unavailable" with retryAfterSeconds (a token signed by a key the IdP rotated in) → 503 with that Retry-After, proxy and forward auth', async (t) => {
  const { proxy, forward, logged } = await askWithBearer(t, { ok: false, reason: 'unavailable', retryAfterSeconds: 17 });
  t.same(logged.errors, [], 'expected after every IdP key rotation: not logged as an error');
  t.ok(logged.warnings.some((m) => m.includes('header authentication deferred')), 'but as a warning');
  for (const [mode, r] of [['proxy', proxy], ['forward auth', forward]] as const) {
    t.equal(r.statusCode, 503, `${mode}: not a refusal (401) and not a login redirect`);
    t.notOk(r.headers.location, `${mode}: no redirect`);
    t.equal(r.headers['retry-after'], '17', `${mode}: the client is told when the credential can be checked`);
    t.match(r.body, /cannot be checked right now/);
  }
});

t.test('"unavailable" without a retry time (IdP down) → 503 with the outage Retry-After (5 s); a malformed one is not sent, the default is', async (t) => {
  const plain = await askWithBearer(t, { ok: false, reason: 'unavailable' });
  t.ok(plain.logged.errors.some((m) => m.includes('header authentication unavailable')), 'an IdP that cannot be reached is an error');
  t.equal(plain.proxy.statusCode, 503);
  t.equal(plain.proxy.headers['retry-after'], '5', 'the client is told to retry in a few seconds, as for the other outages');
  for (const bad of [0, -5, 2.5, Number.NaN, '3\r\nx-injected: 1' as unknown as number]) {
    const r = await askWithBearer(t, { ok: false, reason: 'unavailable', retryAfterSeconds: bad });
    t.equal(r.proxy.statusCode, 503, `${String(bad)}: still 503`);
    t.equal(r.proxy.headers['retry-after'], '5', `${String(bad)}: not sent, the default is`);
  }
});

t.test('a refusal stays a refusal: 401 with intercept_header_auth, no Retry-After', async (t) => {
  const { proxy } = await askWithBearer(t, { ok: false, reason: 'token signature invalid' });
  t.equal(proxy.statusCode, 401);
  t.equal(proxy.headers['retry-after'], undefined);
});
