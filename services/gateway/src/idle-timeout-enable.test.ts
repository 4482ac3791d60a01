// Turning on idle_timeout for a running provider judges sessions by their real uses, not by their login time.
import { createMemoryBus } from '@portcullis/bus';
import { createEvent } from '@portcullis/events';
import { cookieKeyId, sessionCookieName, signSessionCookie } from '@portcullis/protocol';
import { createSessionService, createSessionUpkeep } from '@portcullis/session';
import { createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { ActivityReporter } from './activity-reporter.ts';
import { createGateway } from './server.ts';
import { providerYaml, testConfig } from './test-support.ts';

t.test('a session used a moment ago survives idle_timeout being turned on', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", https: null, metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'forward_single', external_host: 'https://app.company' })}
`);
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const projector = createSessionService({ log: bus.log, store });
  await projector.start();
  const upkeep = createSessionUpkeep({ bus, store, config, cookieKeyId });
  await upkeep.start();
  const activity = new ActivityReporter({ rpc: bus.rpc, providers: config.providers });
  const gateway = await createGateway({
    config,
    activity,
    rpc: bus.rpc,
    store,
    version: 'portcullis/test',
    waitForRevocation: async () => 'propagated',
    log: { warn: () => {}, error: () => {} },
  });
  t.teardown(async () => {
    await gateway.stop();
    await upkeep.stop();
    await projector.stop();
    await store.close();
  });

  // Logged in two hours ago, still working: the last request is now.
  const p = config.providers[0]!;
  const loginAt = Date.now() - 2 * 3_600_000;
  const seq = await bus.log.append(
    createEvent('SessionStarted', {
      sessionId: 'busy-user-session',
      provider: 'app',
      issuer: p.issuer,
      sub: 'alice',
      sid: null,
      claims: { sub: 'alice' },
      accessToken: 'at',
      idToken: null,
      jwksUri: 'http://idp.test/jwks',
      createdAt: loginAt,
      expiresAt: loginAt + 8 * 3_600_000,
      keyId: cookieKeyId(p.cookie_secret),
    }),
  );
  t.ok(await store.waitForApplied(seq, 1000));
  const cookie = `${sessionCookieName(p.client_id)}=${signSessionCookie(p.cookie_secret, { sessionId: 'busy-user-session', seq })}`;
  const r = await gateway.http.inject({
    url: '/outpost.goauthentik.io/auth/nginx',
    headers: { host: 'app.company', 'x-original-uri': '/work', cookie },
  });
  t.equal(r.statusCode, 200, 'the session is accepted');
  await activity.flush();

  // The operator turns on a 30-minute idle timeout.
  const next = { ...config, providers: config.providers.map((x) => ({ ...x, idle_timeout: 1800 })) };
  gateway.reload(next);
  activity.configure(next.providers);
  await upkeep.reload(next);
  await upkeep.sweepNow();
  await store.waitForApplied(await bus.log.lastSeq(), 1000);
  t.ok(await store.getLiveSession('busy-user-session'), 'a session used seconds ago is not idle');
});
