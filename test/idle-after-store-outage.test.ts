// Idle timeouts across a Redis outage: a session used while the store was down is not ended as idle when it comes back.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryBus } from '@portcullis/bus';
import { createEvent, SESSION_SUBJECTS, type SessionStartedData } from '@portcullis/events';
import { createSessionService, createSessionUpkeep, serveActivityReports } from '@portcullis/session';
import { createRedisStore } from '@portcullis/store';
import { startRedisServer } from '@portcullis/testkit';
import { Redis } from 'ioredis';
import t from 'tap';

const SECRET = 'cookie-secret-a-0123456789abcdef0123';

t.test('a Redis outage longer than idle_timeout: sessions used meanwhile survive the first sweep after it', async (t) => {
  // The data survives the outage (as with a persistent Redis or a failover): saved, killed, restarted on the same port and dir.
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-outage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let server = await startRedisServer({ dir });
  t.teardown(() => server.stop());
  const store = await createRedisStore({
    redis: { url: server.url, key_prefix: 'outage:', tls: null, sentinels: null, sentinel_name: null, cluster_nodes: null, password: null },
  });
  t.teardown(() => store.close());
  const bus = createMemoryBus();
  const projector = createSessionService({ log: bus.log, store, retry: { initialMs: 50, maxMs: 200 } });
  await projector.start();
  t.teardown(() => projector.stop());
  // The activity server as every session replica runs it; sweeps are driven by the test clock.
  const served = serveActivityReports({ rpc: bus.rpc, store, now: () => clock });
  t.teardown(() => served.close());
  const T0 = Date.now();
  let clock = T0;
  // idle_timeout 60 s: report interval, sweep interval and grace 12 s (min(15 s, 60 s / 5)).
  const upkeep = createSessionUpkeep({
    cookieKeyId: () => 'k',
    bus,
    store,
    config: { providers: [{ name: 'app', idle_timeout: 60, cookie_secret: SECRET }] },
    now: () => clock,
  });

  const data: SessionStartedData = {
    sessionId: 'used-during-outage',
    provider: 'app',
    issuer: 'http://idp',
    sub: 'alice',
    sid: null,
    claims: {},
    accessToken: 'access-token-value',
    idToken: null,
    jwksUri: '',
    createdAt: T0,
    expiresAt: T0 + 3_600_000,
  };
  const seq = await bus.log.append(createEvent('SessionStarted', data));
  t.ok(await store.waitForApplied(seq, 5000));
  const raw = new Redis(server.url);
  await raw.save();
  raw.disconnect();

  server.kill();
  await server.exited;
  // The user keeps working through the gateways; their report of a use at T0 + 80 s cannot be recorded (the gateway keeps it).
  const use = { sessionId: data.sessionId, provider: 'app', at: T0 + 80_000 };
  clock = T0 + 85_000;
  await t.rejects(bus.rpc.request(SESSION_SUBJECTS.activity, { entries: [use] }, 10_000), 'the report fails while Redis is down');
  clock = T0 + 90_000;
  await upkeep.sweepNow();

  server = await startRedisServer({ port: server.port, dir });
  const until = Date.now() + 15_000;
  while ((await store.appliedSeq().catch(() => -1)) !== seq && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  t.ok(await store.getLiveSession(data.sessionId, T0 + 100_000), 'the session came back with the store');

  // The first sweep after the outage, before the gateways' next report (due within one report interval).
  clock = T0 + 105_000;
  await upkeep.sweepNow();
  await new Promise((r) => setTimeout(r, 200));
  t.ok(await store.getLiveSession(data.sessionId, clock), 'a session used 25 s ago is not ended as idle');

  // The gateway's next report carries the use it kept; the session lives on, and ends once really idle.
  await bus.rpc.request(SESSION_SUBJECTS.activity, { entries: [use] }, 10_000);
  clock = T0 + 130_000;
  await upkeep.sweepNow();
  await new Promise((r) => setTimeout(r, 200));
  t.ok(await store.getLiveSession(data.sessionId, clock), 'still in use within its idle timeout');
  clock = T0 + 160_000;
  await upkeep.sweepNow();
  const ended = Date.now() + 5000;
  while ((await store.getLiveSession(data.sessionId, clock)) !== null && Date.now() < ended) await new Promise((r) => setTimeout(r, 50));
  t.equal(await store.getLiveSession(data.sessionId, clock), null, 'idle for 80 s: ended');
});
