// End-to-end: a machine client whose IdP cannot be reached gets a 503 (retry later), never a 2xx, never "unauthenticated".
import t from 'tap';
import { startSystem } from './support/system.ts';

/** A real client_credentials token (opaque: every check is an introspection at the IdP). */
async function clientToken(issuer: string, client: string): Promise<string> {
  const r = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  if (r.status !== 200) throw new Error(`client_credentials for ${client}: ${r.status}`);
  return ((await r.json()) as { access_token: string }).access_token;
}

t.test('header authentication while the IdP is down', async (t) => {
  const sys = await startSystem((gw) => [
    { name: 'api', mode: 'proxy', external_host: `http://127.0.0.1:${gw}` },
    { name: 'nointercept', mode: 'proxy', external_host: `http://localhost:${gw}`, intercept_header_auth: false },
  ]);
  t.teardown(() => sys.close());
  const gw = sys.gatewayPort;
  const get = (host: string, authorization: string) => fetch(`http://${host}:${gw}/api/items`, { headers: { authorization }, redirect: 'manual' });
  const apiToken = await clientToken(sys.idp.issuer, 'api');
  const otherToken = await clientToken(sys.idp.issuer, 'nointercept');

  t.equal((await get('127.0.0.1', 'Bearer not-a-token-anyone-issued')).status, 401, 'IdP up: a credential it refuses → 401 (intercept_header_auth)');
  t.equal((await get('localhost', 'Bearer not-a-token-anyone-issued')).status, 302, 'IdP up: refused without intercept_header_auth → the login redirect');

  await sys.idp.close();
  sys.idp.close = async () => {}; // closed already; sys.close() must not close it twice
  for (const [host, token, what] of [
    ['127.0.0.1', apiToken, 'intercept_header_auth on'],
    ['localhost', otherToken, 'intercept_header_auth off'],
  ] as const) {
    const r = await get(host, `Bearer ${token}`);
    t.equal(r.status, 503, `IdP down, ${what}: 503 (the credential could not be checked), not a 401 or a login redirect`);
    t.notOk(r.headers.get('location'), `IdP down, ${what}: no redirect to a login the client cannot do`);
    t.equal(r.headers.get('retry-after'), '5', `IdP down, ${what}: the client is told to retry in a few seconds`);
    t.match(await r.text(), /cannot be checked right now/);
  }
});
