// Rebuilding the Redis projection from the log while a session service keeps running and events keep arriving.
import { randomBytes } from 'node:crypto';
import { createMemoryBus } from '@portcullis/bus';
import type { RedisConfig } from '@portcullis/config';
import { createEvent, type SessionStartedData } from '@portcullis/events';
import { createSessionService } from '@portcullis/session';
import { type RedisStore, createRedisStore } from '@portcullis/store';
import { startRedisServer } from '@portcullis/testkit';
import t from 'tap';
import { type RebuildStore, rebuildProjection } from './sessions-rebuild.ts';

/** The store's rebuild operations, with `applyAs` replaced (the store's fields are private: no prototype tricks). */
function withApplyAs(store: RedisStore, applyAs: RebuildStore['applyAs']): RebuildStore {
  return {
    beginRebuild: (token, ttl) => store.beginRebuild(token, ttl),
    refreshRebuild: (token, ttl) => store.refreshRebuild(token, ttl),
    endRebuild: (token) => store.endRebuild(token),
    dropProjection: () => store.dropProjection(),
    applyAs,
  };
}

const server = await startRedisServer();
t.teardown(() => server.stop());

const redisConfig = (): RedisConfig => ({
  url: server.url,
  key_prefix: `t${randomBytes(4).toString('hex')}:`,
  tls: null,
  sentinels: null,
  sentinel_name: null,
  cluster_nodes: null,
  password: null,
});

function session(sub: string, over: Partial<SessionStartedData> = {}): SessionStartedData {
  const now = Date.now();
  return {
    sessionId: `s-${randomBytes(6).toString('hex')}`,
    provider: 'app',
    issuer: 'http://idp.test',
    sub,
    sid: `${sub}-sid`,
    claims: { sub, preferred_username: sub },
    accessToken: 'at',
    idToken: null,
    jwksUri: 'http://idp.test/jwks',
    createdAt: now,
    expiresAt: now + 3_600_000,
    ...over,
  };
}

async function openStore(t: import('tap').Test, cfg: RedisConfig): Promise<RedisStore> {
  const store = await createRedisStore({ redis: cfg });
  t.teardown(() => store.close());
  return store;
}

async function waitUntil(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a rebuild while a session service runs: the signed-out session is never readable, and the result is the whole log', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const cfg = redisConfig();
  const admin = await openStore(t, cfg);
  const replica = await openStore(t, cfg);
  const gatewayView = await openStore(t, cfg);
  const service = createSessionService({ log: bus.log, store: replica, retry: { rebuildingPollMs: 20 } });
  await service.start();
  t.teardown(() => service.stop());

  const alice = session('alice');
  const bob = session('bob');
  await bus.log.append(createEvent('SessionStarted', alice));
  // Many events between alice's start and her sign-out: the window in which a half-replayed projection
  // would hold her session as live.
  for (let i = 0; i < 400; i++) await bus.log.append(createEvent('UserSignedOut', { sub: `dummy-${i}`, provider: 'app', reason: 'test' }));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }));
  await bus.log.append(createEvent('SessionStarted', bob));
  const before = await bus.log.lastSeq();
  await waitUntil(async () => (await replica.appliedSeq()) === before, 'the service to catch up');

  let reads = 0;
  let aliceAccepted = 0;
  let rebuilding = true;
  const probe = (async () => {
    while (rebuilding) {
      reads += 1;
      // A read refused while rebuilding (PORTCULLIS_STORE_REBUILDING) is not an acceptance either.
      const seen = await gatewayView.getLiveSession(alice.sessionId).catch((err: { code?: string }) => {
        if (err.code !== 'PORTCULLIS_STORE_REBUILDING') throw err;
        return null;
      });
      if (seen) aliceAccepted += 1;
    }
  })();
  const carol = session('carol');
  let appendedDuring = false;
  const result = await rebuildProjection({
    log: bus.log,
    store: admin,
    onProgress: (seq) => {
      // An event arrives while the rebuild replays: it must be part of the result.
      if (seq === 200 && !appendedDuring) {
        appendedDuring = true;
        void bus.log.append(createEvent('SessionStarted', carol));
      }
    },
  });
  rebuilding = false;
  await probe;

  t.ok(appendedDuring, 'an event was appended mid-rebuild');
  t.equal(result.appliedSeq, before + 1, 'replayed up to the event appended meanwhile');
  t.equal(result.replayed, before + 1);
  t.ok(reads > 5, `the probe read during the rebuild (${reads} reads)`);
  t.equal(aliceAccepted, 0, 'alice’s signed-out session was never readable while rebuilding');
  t.equal(await admin.rebuildInProgress(), false, 'the marker is gone');
  t.same(
    (await admin.listLiveSessions()).map((s) => s.sub),
    ['bob', 'carol'],
  );
  t.equal(await admin.countSignOutWatermarks(), 401, 'alice and the 400 dummies');

  // The session service resumes after the rebuild and applies what comes next.
  const dave = session('dave');
  const seq = await bus.log.append(createEvent('SessionStarted', dave));
  t.equal(await admin.waitForApplied(seq, 5_000), true, 'the session service applies new events again');
  t.ok(await gatewayView.getLiveSession(dave.sessionId));
});

t.test('a failing rebuild removes its marker and rejects with the cause', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const store = await openStore(t, redisConfig());
  for (let i = 0; i < 20; i++) await bus.log.append(createEvent('SessionStarted', session(`u${i}`)));
  const failing = withApplyAs(store, async (token, e) => {
    if (e.seq === 10) throw new Error('redis went away');
    return store.applyAs(token, e);
  });
  await t.rejects(rebuildProjection({ log: bus.log, store: failing }), { message: 'redis went away' });
  t.equal(await store.rebuildInProgress(), false, 'the projection is not left frozen');
});

t.test('a rebuild whose marker is taken away stops with PORTCULLIS_STORE_REBUILD_LOST', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const store = await openStore(t, redisConfig());
  for (let i = 0; i < 50; i++) await bus.log.append(createEvent('SessionStarted', session(`u${i}`)));
  const slow = withApplyAs(store, async (token, e) => {
    // The marker vanishes mid-replay (as when its TTL ran out during a long pause).
    if (e.seq === 5) await store.endRebuild(token);
    return store.applyAs(token, e);
  });
  await t.rejects(rebuildProjection({ log: bus.log, store: slow }), { code: 'PORTCULLIS_STORE_REBUILD_LOST' });
});

t.test('a second rebuild is refused while one runs', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const store = await openStore(t, redisConfig());
  await store.beginRebuild('someone-else', 60_000);
  await t.rejects(rebuildProjection({ log: bus.log, store }), { code: 'PORTCULLIS_STORE_REBUILDING' });
  t.equal(await store.rebuildInProgress(), true, 'the other rebuild keeps its marker');
});

t.test('an empty log rebuilds to an empty projection', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const store = await openStore(t, redisConfig());
  t.same(await rebuildProjection({ log: bus.log, store }), { replayed: 0, appliedSeq: 0 });
  t.equal(await store.rebuildInProgress(), false);
});
