// A real cluster (3 NATS nodes, Redis, 3 gateways, 2 auth, 2 session processes): no sticky sessions,
// and a sign-out that holds on every replica from the instant its response arrives.
import { loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';
import { ALICE, startCluster } from './cluster-harness.ts';

t.test('cluster: login and sign-out across replicas', async (t) => {
  const c = await startCluster();
  t.teardown(() => c.close());
  const [A, B, C] = [0, 1, 2];

  t.test('login starts on gateway A, the callback lands on B, the next request on C', async (t) => {
    const jar = c.newJar();
    const onA = c.browserOn(A, jar);
    let callback = '';
    await loginThroughIdp(onA, `${c.app}/hello`, ALICE, {
      stopAt: (u) => {
        if (u.includes('/outpost.goauthentik.io/callback')) callback = u;
        return callback !== '';
      },
    });
    t.ok(callback, 'reached the callback');
    const onB = c.browserOn(B, jar);
    const landed = await onB.request(callback);
    t.equal(landed.status, 302, 'B completed the login');
    const onC = c.browserOn(C, jar);
    const page = await onC.request(`${c.app}/hello`);
    t.equal(page.status, 200, 'C accepts the session written through B');
    t.equal((JSON.parse(page.body) as { headers: Record<string, string> }).headers['x-authentik-username'], 'alice');
  });

  t.test('two sessions of alice, sign-out on one replica: from the response on, every replica denies both', async (t) => {
    const jar1 = c.newJar();
    const jar2 = c.newJar();
    await loginThroughIdp(c.browserOn(A, jar1), `${c.app}/`, ALICE);
    await loginThroughIdp(c.browserOn(B, jar2), `${c.app}/`, ALICE);
    // Probe with the cookies captured now: the sign-out response clears jar1's copy, and a probe
    // without a cookie would prove nothing.
    const cookieOf = (jar: ReturnType<typeof c.newJar>) =>
      c
        .browserOn(A, jar)
        .cookies(`${c.app}/`)
        .map((x) => `${x.name}=${x.value}`)
        .join('; ');
    const cookies = [cookieOf(jar1), cookieOf(jar2)];
    t.ok(cookies.every((x) => x.includes('authentik_proxy_')), 'both sessions have a cookie');
    const probes = cookies.flatMap((cookie) => c.gateways().map((_, i) => ({ b: c.browserOn(i), cookie })));
    const probe = (p: (typeof probes)[number]) => p.b.request(`${c.app}/`, { headers: { cookie: p.cookie } });
    for (const p of probes) t.equal((await probe(p)).status, 200, 'logged in everywhere before');

    // Hammer every replica with both cookies while signing out on C.
    let signedOutAt = 0;
    let acceptedAfter = 0;
    let sentAfter = 0;
    let stop = false;
    const hammer = probes.map(async (p) => {
      while (!stop) {
        const sent = performance.now();
        const r = await probe(p);
        if (signedOutAt > 0 && sent > signedOutAt) {
          sentAfter += 1;
          if (r.status === 200) acceptedAfter += 1;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 100));
    const out = await c.browserOn(C, jar1).request(`${c.app}/outpost.goauthentik.io/sign_out`);
    signedOutAt = performance.now();
    t.equal(out.status, 302, 'sign-out answered (to the IdP end-session endpoint)');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(hammer);
    t.ok(sentAfter >= probes.length, `the hammer kept going after the response (${sentAfter} requests)`);
    t.equal(acceptedAfter, 0, 'no request sent after the sign-out response was accepted');
    for (const p of probes) t.equal((await probe(p)).status, 302, 'denied everywhere after');
  });

  t.test('back-channel logout from the IdP ends the session on every replica', async (t) => {
    const jar = c.newJar();
    const b = c.browserOn(A, jar);
    await loginThroughIdp(b, `${c.app}/`, ALICE);
    // Sign out at the IdP directly; it posts the logout token to a gateway.
    await b.follow(`${c.idp.issuer}/session/end`);
    for (let i = 0; i < c.gateways().length; i++) {
      let status = 200;
      for (let n = 0; n < 50 && status === 200; n++) {
        status = (await c.browserOn(i, jar).request(`${c.app}/`)).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 20));
      }
      t.equal(status, 302, `gateway ${i} denies`);
    }
  });

  t.test('every process serves /metrics and ping on its metrics listener; only gateways bind http', async (t) => {
    for (const m of c.members) {
      const r = await fetch(`http://127.0.0.1:${m.metrics}/metrics`);
      t.equal(r.status, 200, `${m.role}[${m.index}] metrics`);
      const http = await fetch(`http://127.0.0.1:${m.http}/outpost.goauthentik.io/ping`).then(
        (x) => x.status,
        () => 'refused',
      );
      t.equal(http, m.role === 'gateway' ? 204 : 'refused', `${m.role}[${m.index}] http listener`);
    }
  });
});
