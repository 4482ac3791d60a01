// A sign-out or back-channel logout recorded but not projected in time, or not taken at all: the gateway's 503 tells the client when to retry.
import { AUTH_SUBJECTS, type AuthReply, createEvent } from '@portcullis/events';
import t, { type Test } from 'tap';
import { providerYaml, startTestGateway, testConfig } from './test-support.ts';

const ALICE = { sub: 'alice-sub', preferred_username: 'alice' };

/** A gateway for one proxy-mode provider (app.company), closed with `t`. */
async function startAppGateway(t: Test) {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'https://app.company', internal_host: 'http://127.0.0.1:1' })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  return gw;
}

/** An IdP's back-channel logout POST (the token's content does not matter: the auth service is stood in for or absent). */
function postLogoutToken(gw: Awaited<ReturnType<typeof startAppGateway>>) {
  return gw.gateway.http.inject({
    method: 'POST',
    url: '/outpost.goauthentik.io/backchannel-logout',
    headers: { host: 'app.company', 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'logout_token=x.y.z',
  });
}

t.test('a revocation recorded but not confirmed everywhere in time → 503 with Retry-After (sign_out and back-channel logout)', async (t) => {
  const gw = await startAppGateway(t);
  const inject = gw.gateway.http.inject.bind(gw.gateway.http);
  const cookie = await gw.login('app', ALICE);
  // The projection stops: what is appended from now on is recorded in the log and never applied, so
  // the gateway's wait for the revocation ends unconfirmed ('unprojected').
  await gw.stopProjection();
  // The auth service's part, as it does it: append the revocation to the log, answer with its position.
  const signOuts = gw.bus.rpc.serve(AUTH_SUBJECTS.signOut, async (): Promise<AuthReply> => {
    const seq = await gw.bus.log.append(createEvent('UserSignedOut', { sub: ALICE.sub, provider: 'app', reason: 'sign_out' }));
    return { status: 302, location: 'https://idp.example/end-session', setCookies: ['authentik_proxy_x=; Max-Age=0'], revokedAtSeq: seq };
  });
  const logouts = gw.bus.rpc.serve(AUTH_SUBJECTS.backchannelLogout, async (): Promise<AuthReply> => {
    const seq = await gw.bus.log.append(createEvent('IdpSessionEnded', { issuer: 'http://127.0.0.1:1/', sid: 'idp-sid', sub: null }));
    return { status: 200, setCookies: [], revokedAtSeq: seq };
  });
  t.teardown(async () => {
    await signOuts.close();
    await logouts.close();
  });
  const before = await gw.bus.log.lastSeq();

  const signOut = await inject({ url: '/outpost.goauthentik.io/sign_out', headers: { host: 'app.company', cookie } });
  t.equal(signOut.statusCode, 503, 'not a success: the sign-out is not known to hold everywhere');
  t.match(signOut.body, /recorded but could not be confirmed/);
  t.equal(signOut.headers['retry-after'], '1', 'the browser or script is told to retry in a second');

  const logout = await postLogoutToken(gw);
  t.equal(logout.statusCode, 503);
  t.equal(logout.json().error, 'temporarily_unavailable');
  t.match(logout.json().error_description, /recorded but is not confirmed everywhere yet/);
  t.equal(logout.headers['retry-after'], '1', 'the IdP is told to retry in a second (its retry of the same token is idempotent)');
  t.equal(logout.headers['cache-control'], 'no-store');

  t.equal(await gw.bus.log.lastSeq(), before + 2, 'both revocations were recorded in the log');
});

t.test('a back-channel logout the auth service cannot take (nobody answers) → 503 temporarily_unavailable with Retry-After, so the IdP retries', async (t) => {
  const gw = await startAppGateway(t);
  const logout = await postLogoutToken(gw);
  t.equal(logout.statusCode, 503);
  t.equal(logout.json().error, 'temporarily_unavailable');
  t.equal(logout.headers['retry-after'], '5');
});
