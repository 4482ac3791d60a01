// Runs the store contract and the Redis-specific behaviour against a real redis-server.
import { randomBytes } from 'node:crypto';
import type { RedisConfig } from '@portcullis/config';
import { createEvent, type SequencedEvent, type SessionEvent } from '@portcullis/events';
import { startRedisServer } from '@portcullis/testkit';
import { Redis } from 'ioredis';
import t from 'tap';
import { StoreError } from './errors.ts';
import { createRedisKeys } from './redis-keys.ts';
import { ECHO_KEYS_LUA, SIGN_OUT_WATERMARK_MARGIN_MS } from './redis-scripts.ts';
import { createRedisStore, type RedisStore } from './redis-store.ts';
import { runStoreContract, sampleRefresh, sampleSession } from './store-contract.ts';

const server = await startRedisServer();
t.teardown(() => server.stop());
const raw = new Redis(server.url);
t.teardown(() => raw.quit());

const freshPrefix = (): string => `t${randomBytes(4).toString('hex')}:`;
const redisConfig = (over: Partial<RedisConfig> = {}): RedisConfig => ({
  url: server.url,
  key_prefix: freshPrefix(),
  tls: null,
  sentinels: null,
  sentinel_name: null,
  cluster_nodes: null,
  password: null,
  ...over,
});

async function openStore(t: import('tap').Test, over: Partial<RedisConfig> = {}): Promise<RedisStore> {
  const store = await createRedisStore({ redis: redisConfig(over) });
  t.teardown(() => store.close());
  return store;
}

/** Every key under `prefix` with its type, value and whether it expires, prefix removed. */
async function dumpKeys(prefix: string): Promise<Record<string, unknown>> {
  const keys = (await raw.keys(`${prefix}*`)).sort();
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await raw.type(key);
    const value =
      type === 'set' ? (await raw.smembers(key)).sort() : type === 'zset' ? await raw.zrange(key, '0', '-1', 'WITHSCORES') : await raw.get(key);
    out[key.slice(prefix.length)] = { type, value, expires: (await raw.pttl(key)) > 0 };
  }
  return out;
}

const at = (seq: number, event: SessionEvent): SequencedEvent => ({ seq, event });

t.test('Redis store meets the store contract', async (t) => {
  runStoreContract(t, async () => createRedisStore({ redis: redisConfig() }));
});

t.test('the Lua key builders make exactly the keys redis-keys.ts makes', async (t) => {
  const keys = createRedisKeys('pc:');
  const parts = ['sess-1', 'user:with:colons', 'https://idp.example/ä', 'sid-ü', 'provider:with:colons-ö'] as const;
  const fromLua = await raw.eval(ECHO_KEYS_LUA, 0, keys.base, ...parts);
  t.same(fromLua, [
    keys.session(parts[0]),
    keys.userSessions(parts[1]),
    keys.idpSessions(parts[2], parts[3]),
    keys.signOut(parts[1]),
    keys.ended(parts[0]),
    keys.refreshDue,
    keys.activity(parts[4]),
    keys.idpEnded(parts[2], parts[3]),
  ]);
  t.not(keys.activity('a:b'), keys.activity('a'), 'provider names map to distinct keys');
  t.ok(keys.isKeptOnDrop(keys.activity('x')), 'activity is kept by dropProjection');
  t.notOk(keys.isKeptOnDrop(keys.refreshDue), 'the refresh schedule is rebuilt');
  t.match(keys.session('x'), /^pc:\{s\}:/, 'prefix first, then the shared hash tag');
});

t.test('a session record expires in Redis at its expiresAt', async (t) => {
  const cfg = redisConfig();
  const store = await createRedisStore({ redis: cfg });
  t.teardown(() => store.close());
  const keys = createRedisKeys(cfg.key_prefix);
  const long = sampleSession({ expiresAt: Date.now() + 3_600_000 });
  const short = sampleSession({ expiresAt: Date.now() + 300 });
  await store.apply(at(1, createEvent('SessionStarted', long)));
  await store.apply(at(2, createEvent('SessionStarted', short)));
  t.equal(await raw.pexpiretime(keys.session(long.sessionId)), long.expiresAt, 'PEXPIREAT = expiresAt');
  const pttl = await raw.pttl(keys.session(long.sessionId));
  t.ok(pttl > 3_590_000 && pttl <= 3_600_000, `PTTL ≈ 1 h (${pttl})`);
  // Absolute expiry times (PEXPIRETIME), so time passing between the two reads cannot matter.
  t.ok((await raw.pexpiretime(keys.userSessions(long.sub))) >= long.expiresAt, 'the user index lives at least as long as its sessions');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(await raw.exists(keys.session(short.sessionId)), 0, 'the short session is gone from Redis');
  t.equal(await store.getLiveSession(short.sessionId), null);
});

t.test('a sign-out watermark expires once every session it ends has: it does not stay for ever', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const hour = sampleSession({ sub: 'carol', expiresAt: Date.now() + 3_600_000 });
  const minute = sampleSession({ sub: 'carol', expiresAt: Date.now() + 60_000 });
  await store.apply(at(1, createEvent('SessionStarted', hour)));
  await store.apply(at(2, createEvent('SessionStarted', minute)));
  await store.apply(at(3, createEvent('UserSignedOut', { sub: 'carol', provider: 'app', reason: 'sign_out' })));
  const first = await raw.pexpiretime(keys.signOut('carol'));
  t.ok(first >= hour.expiresAt, 'the watermark outlives the longest session it ends');
  t.ok(first <= hour.expiresAt + SIGN_OUT_WATERMARK_MARGIN_MS + 1_000, `and expires a minute after it (${first - hour.expiresAt} ms)`);
  t.equal(await store.getLiveSession(hour.sessionId), null, 'the session it ends is dead');
  // A second sign-out with only a short session since: the first sign-out's sessions still need the watermark.
  const short = sampleSession({ sub: 'carol', expiresAt: Date.now() + 1_000 });
  await store.apply(at(4, createEvent('SessionStarted', short)));
  await store.apply(at(5, createEvent('UserSignedOut', { sub: 'carol', provider: 'app', reason: 'sign_out' })));
  t.equal(await raw.get(keys.signOut('carol')), '5', 'the watermark moved to the second sign-out');
  t.ok((await raw.pexpiretime(keys.signOut('carol'))) >= first - 5, 'its expiry was not shortened');
  t.equal(await store.getLiveSession(hour.sessionId), null, 'the first sign-out\'s session is still dead');
  // A user who signs out with no session: a short-lived watermark.
  await store.apply(at(6, createEvent('UserSignedOut', { sub: 'dave', provider: 'app', reason: 'sign_out' })));
  const pttl = await raw.pttl(keys.signOut('dave'));
  t.ok(pttl > 0 && pttl <= SIGN_OUT_WATERMARK_MARGIN_MS, `a user without sessions: the margin only (${pttl} ms)`);
});

t.test('a session ended once stays ended when its SessionStarted is appended again (tombstone)', async (t) => {
  const store = await openStore(t);
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  await store.apply(at(2, createEvent('SessionEnded', { sessionId: s.sessionId, reason: 'admin' })));
  await store.apply(at(3, createEvent('SessionStarted', s)));
  t.equal(await store.getLiveSession(s.sessionId), null);
  t.same(await store.listLiveSessions({ sub: s.sub }), []);
});

t.test('a second SessionEnded leaves the tombstone as the first wrote it: same value, same expiry (the session’s own)', async (t) => {
  const prefix = freshPrefix();
  const store = await openStore(t, { key_prefix: prefix });
  const s = sampleSession({ expiresAt: Date.now() + 60_000 });
  await store.apply(at(1, createEvent('SessionStarted', s)));
  await store.apply(at(2, createEvent('SessionEnded', { sessionId: s.sessionId, reason: 'idle' })));
  const tomb = createRedisKeys(prefix).ended(s.sessionId);
  t.equal(await raw.get(tomb), String(s.createdAt), 'the tombstone names the ended record');
  await store.apply(at(3, createEvent('SessionEnded', { sessionId: s.sessionId, reason: 'admin' })));
  t.equal(await raw.get(tomb), String(s.createdAt), 'still the ended record, not "unknown"');
  const pttl = await raw.pttl(tomb);
  t.ok(pttl > 0 && pttl <= 60_000, `it still expires with the session, not in 24 h (${pttl} ms left)`);
});

t.test('listLiveSessions lists a user’s live sessions in log order and leaves out expired ones', async (t) => {
  const store = await openStore(t);
  const a = sampleSession();
  const b = sampleSession();
  const bob = sampleSession({ sub: 'bob', sid: 'bob-sid' });
  await store.apply(at(1, createEvent('SessionStarted', a)));
  await store.apply(at(2, createEvent('SessionStarted', b)));
  await store.apply(at(3, createEvent('SessionStarted', bob)));
  t.same(
    (await store.listLiveSessions({ sub: 'alice' })).map((s) => s.sessionId),
    [a.sessionId, b.sessionId],
  );
  t.same(
    (await store.listLiveSessions({}, b.expiresAt + 1)).map((s) => s.sessionId),
    [],
    'nothing is live after every expiry',
  );
});

t.test('two stores applying the same events concurrently (interleaved, duplicated) end in the state one store reaches', async (t) => {
  const reference = redisConfig();
  const shared = redisConfig();
  const one = await createRedisStore({ redis: reference });
  const replicaA = await createRedisStore({ redis: shared });
  const replicaB = await createRedisStore({ redis: shared });
  t.teardown(() => Promise.all([one.close(), replicaA.close(), replicaB.close()]));

  const users = ['alice', 'bob', 'carol'];
  const history: SequencedEvent[] = [];
  const started: string[] = [];
  for (let seq = 1; seq <= 60; seq++) {
    const sub = users[seq % users.length]!;
    let event: SessionEvent;
    if (seq % 10 === 0) event = createEvent('UserSignedOut', { sub, provider: 'app', reason: 'sign_out' });
    else if (seq % 7 === 0 && started.length > 0) event = createEvent('SessionEnded', { sessionId: started[seq % started.length]!, reason: 'admin' });
    // An ended IdP session is never reused: sessions started after it get the next one.
    else if (seq % 13 === 0) event = createEvent('IdpSessionEnded', { issuer: 'http://idp.test', sid: `${sub}-sid-${seq / 13 - 1}`, sub: null });
    else if (seq % 11 === 0 && started.length > 0)
      event = createEvent('SessionRefreshed', sampleRefresh(started[seq % started.length]!, { refreshAt: seq % 2 ? null : Date.now() + seq }));
    else {
      const s = sampleSession({ sub, sid: `${sub}-sid-${Math.floor(seq / 13)}`, claims: { sub, groups: [], n: seq }, refreshAt: seq % 3 ? Date.now() + seq : null });
      started.push(s.sessionId);
      event = createEvent('SessionStarted', s);
    }
    history.push(at(seq, event));
  }
  for (const e of history) await one.apply(e);

  // Each replica applies the log in order (as a consumer does), every event twice, with random pauses
  // so the two interleave differently on every run.
  const follow = async (store: RedisStore) => {
    for (const e of history) {
      await store.apply(e);
      if (Math.random() < 0.3) await new Promise((r) => setTimeout(r, Math.random() * 3));
      await store.apply(e);
    }
  };
  await Promise.all([follow(replicaA), follow(replicaB)]);

  t.same(await dumpKeys(shared.key_prefix), await dumpKeys(reference.key_prefix), 'the same keys, values and expiries');
  t.equal(await replicaA.appliedSeq(), 60);
  t.same(
    (await replicaB.listLiveSessions()).map((s) => s.sessionId),
    (await one.listLiveSessions()).map((s) => s.sessionId),
  );
  t.ok((await one.listLiveSessions()).length > 0, 'the scenario leaves some sessions live');
  const keys = createRedisKeys(reference.key_prefix);
  t.ok((await raw.zcard(keys.refreshDue)) > 0 && (await raw.zcard(keys.activity('app'))) > 0, 'the scenario fills both upkeep indexes');
});

t.test('dropProjection empties the projection and keeps the single-use keys', async (t) => {
  const cfg = redisConfig();
  const store = await createRedisStore({ redis: cfg });
  t.teardown(() => store.close());
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  await store.apply(at(2, createEvent('SessionStarted', sampleSession({ sub: 'bob', sid: 'b' }))));
  await store.apply(at(3, createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'sign_out' })));
  t.equal(await store.consumeOnce('state-x', 60_000), true);
  await store.dropProjection();
  t.same(Object.keys(await dumpKeys(cfg.key_prefix)), ['{s}:activity:app', '{s}:once:state-x'], 'the activity index is kept: it is not in the log');
  t.equal(await store.appliedSeq(), 0);
  t.equal(await store.getLiveSession(s.sessionId), null);
  t.equal(await store.consumeOnce('state-x', 60_000), false, 'a consumed login state stays consumed');
  await store.apply(at(1, createEvent('SessionStarted', s)));
  t.ok(await store.getLiveSession(s.sessionId), 'the projection can be rebuilt from seq 1');
});

t.test('waitForApplied on one replica resolves when another replica applies the sequence', async (t) => {
  const cfg = redisConfig();
  const reader = await createRedisStore({ redis: cfg });
  const writer = await createRedisStore({ redis: cfg });
  t.teardown(() => Promise.all([reader.close(), writer.close()]));
  const waiting = reader.waitForApplied(2, 5000);
  await writer.apply(at(1, createEvent('SessionStarted', sampleSession())));
  await writer.apply(at(2, createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' })));
  t.equal(await waiting, true);
  t.equal(await reader.waitForApplied(1, 10), true, 'an already applied sequence resolves at once');
});

t.test('close() resolves pending waiters with false', async (t) => {
  const store = await createRedisStore({ redis: redisConfig() });
  const waiting = store.waitForApplied(99, 60_000);
  await new Promise((r) => setTimeout(r, 50));
  await store.close();
  t.equal(await waiting, false);
});

t.test('ping is true while Redis answers', async (t) => {
  const store = await openStore(t);
  t.equal(await store.ping(), true);
});

t.test('a Redis that goes away makes reads fail (never a silent null) and ping false', async (t) => {
  const own = await startRedisServer();
  const store = await createRedisStore({ redis: redisConfig({ url: own.url }) });
  t.teardown(() => store.close());
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  t.ok(await store.getLiveSession(s.sessionId));
  own.kill();
  await own.exited;
  await t.rejects(store.getLiveSession(s.sessionId), { code: 'PORTCULLIS_STORE_UNAVAILABLE' });
  t.equal(await store.ping(), false);
});

t.test('a Redis that stops answering but keeps the connection open fails reads within seconds (never a hang); they work again once it answers', async (t) => {
  const own = await startRedisServer();
  let paused = false;
  t.teardown(async () => {
    if (paused) process.kill(own.pid, 'SIGCONT');
    await own.stop();
  });
  const store = await createRedisStore({ redis: redisConfig({ url: own.url }) });
  t.teardown(() => store.close());
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  // Stopped, not killed: the kernel keeps its sockets open, so no reset or FIN tells the client.
  process.kill(own.pid, 'SIGSTOP');
  paused = true;
  const startedAt = Date.now();
  await t.rejects(store.getLiveSession(s.sessionId), { code: 'PORTCULLIS_STORE_UNAVAILABLE', message: /read session got no answer within 2 s/ });
  t.ok(Date.now() - startedAt < 10_000, `does not hang (${Date.now() - startedAt} ms)`);
  await t.rejects(store.appliedSeq(), { code: 'PORTCULLIS_STORE_UNAVAILABLE' }, 'nor does the next command (on the new connection tried meanwhile)');
  process.kill(own.pid, 'SIGCONT');
  paused = false;
  let back: unknown;
  for (let i = 0; i < 100 && back === undefined; i++) {
    back = await store.getLiveSession(s.sessionId).catch(() => undefined);
    if (back === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(back, { sessionId: s.sessionId }, 'reads answer again once Redis does');
});

t.test('evictionHazard: a Redis that may evict keys (maxmemory with allkeys-lru, volatile-lru) is reported naming noeviction; noeviction or no maxmemory is not', async (t) => {
  for (const policy of ['allkeys-lru', 'volatile-lru']) {
    const evicting = await startRedisServer({ args: ['--maxmemory', '50mb', '--maxmemory-policy', policy] });
    t.teardown(() => evicting.stop());
    const store = await openStore(t, { url: evicting.url });
    const hazard = await store.evictionHazard();
    t.match(hazard, new RegExp(`maxmemory-policy ${policy}`), policy);
    t.match(hazard, /Set maxmemory-policy noeviction/);
    t.match(hazard, /signed-out sessions back/);
  }
  const safe = await startRedisServer({ args: ['--maxmemory', '50mb', '--maxmemory-policy', 'noeviction'] });
  t.teardown(() => safe.stop());
  t.equal(await (await openStore(t, { url: safe.url })).evictionHazard(), null, 'noeviction');
  const unlimited = await startRedisServer({ args: ['--maxmemory-policy', 'allkeys-lru'] });
  t.teardown(() => unlimited.stop());
  t.equal(await (await openStore(t, { url: unlimited.url })).evictionHazard(), null, 'no maxmemory: nothing is ever evicted');
});

t.test('evictionHazard with CONFIG disabled still reads the policy; with INFO refused too it says the policy could not be checked', async (t) => {
  const noConfig = await startRedisServer({ args: ['--maxmemory', '50mb', '--maxmemory-policy', 'allkeys-lru', '--rename-command', 'CONFIG', ''] });
  t.teardown(() => noConfig.stop());
  t.match(await (await openStore(t, { url: noConfig.url })).evictionHazard(), /maxmemory-policy allkeys-lru/);
  // A user whose ACL refuses INFO and CONFIG (as some managed services do).
  await raw.call('ACL', 'SETUSER', 'limited', 'on', '>limited-pw', '~*', '&*', '+@all', '-info', '-config');
  t.teardown(() => raw.call('ACL', 'DELUSER', 'limited'));
  const limited = await openStore(t, { url: server.url.replace('redis://', 'redis://limited:limited-pw@') });
  t.match(await limited.evictionHazard(), /could not read its maxmemory-policy .*make sure it is noeviction/);
});

t.test('a projection Redis lost (restarted empty): a store that saw it refuses session reads and normal applies with PORTCULLIS_STORE_PROJECTION_LOST; a rebuild restores them', async (t) => {
  let own = await startRedisServer();
  t.teardown(() => own.stop());
  const store = await openStore(t, { url: own.url });
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  t.ok(await store.getLiveSession(s.sessionId));
  const fresh = sampleSession({ sessionId: 'after-the-loss' });
  await own.stop();
  own = await startRedisServer({ port: own.port });
  const lost = (err: unknown) => (err as { code?: string }).code === 'PORTCULLIS_STORE_PROJECTION_LOST';
  // The first command after the restart may meet the closed connection: retried until Redis answers.
  let read: unknown;
  for (let i = 0; i < 50; i++) {
    read = await store.getLiveSession(s.sessionId).then((v) => v, (e: unknown) => e);
    if (lost(read) || read === null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(lost(read), 'the read is refused, not answered "no such session"');
  t.match((read as Error).message, /sessions rebuild/);
  await t.rejects(store.apply(at(2, createEvent('SessionStarted', fresh))), { code: 'PORTCULLIS_STORE_PROJECTION_LOST' }, 'the next event is not applied onto the empty projection');
  t.equal(await store.appliedSeq(), 0, 'nothing was applied');
  const other = await openStore(t, { url: own.url });
  t.equal(await other.getLiveSession(s.sessionId), null, 'a store that never saw the projection cannot tell (a new deployment)');
  // A rebuild (here of a log holding only the lost event) makes the projection trusted again.
  await store.beginRebuild('r', 10_000);
  await store.dropProjection();
  await store.applyAs('r', at(1, createEvent('SessionStarted', s)));
  t.ok(await store.endRebuild('r'));
  t.ok(await store.getLiveSession(s.sessionId));
  await store.apply(at(2, createEvent('SessionStarted', fresh)));
  t.ok(await store.getLiveSession(fresh.sessionId));
});

t.test('a rebuild of an empty log leaves applied seq 0 behind: the projection counts as present', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  await store.beginRebuild('r', 10_000);
  await store.dropProjection();
  t.ok(await store.endRebuild('r'));
  t.equal(await raw.get(`${cfg.key_prefix}{s}:applied`), '0');
});

t.test('a Redis nobody listens on fails the start with a message naming it', async (t) => {
  const startedAt = Date.now();
  const err = await createRedisStore({ redis: redisConfig({ url: 'redis://:secret@127.0.0.1:1' }), startTimeoutMs: 2000 }).catch((e: unknown) => e);
  t.type(err, StoreError);
  t.match(err, { code: 'PORTCULLIS_STORE_CONNECT_FAILED', message: /redis:\/\/\*\*\*@127\.0\.0\.1:1/ });
  t.notMatch((err as Error).message, /secret/, 'the password stays out of the message');
  t.ok(Date.now() - startedAt < 4000, 'does not hang');
});

t.test('while a rebuild runs, a normal apply is refused with PORTCULLIS_STORE_REBUILDING and changes nothing', async (t) => {
  const store = await openStore(t);
  await store.apply(at(1, createEvent('SessionStarted', sampleSession())));
  await store.beginRebuild('rebuild-1', 60_000);
  t.equal(await store.rebuildInProgress(), true);
  const err = await store.apply(at(2, createEvent('SessionStarted', sampleSession()))).catch((e: unknown) => e);
  t.type(err, StoreError);
  t.match(err, { code: 'PORTCULLIS_STORE_REBUILDING', statusCode: 503 });
  t.equal(await store.appliedSeq(), 1, 'the refused event was not applied');
});

t.test('while a rebuild runs, every session read and listing is refused (never "no such session")', async (t) => {
  const store = await openStore(t);
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  t.ok(await store.getLiveSession(s.sessionId), 'live before the rebuild');
  await store.beginRebuild('rebuild-1', 60_000);
  // null would tell a gateway the cookie is stale (it deletes it: the user is logged out for good).
  await t.rejects(store.getLiveSession(s.sessionId), { code: 'PORTCULLIS_STORE_REBUILDING' }, 'refused while rebuilding (the record is still there)');
  await t.rejects(store.listLiveSessions(), { code: 'PORTCULLIS_STORE_REBUILDING' });
  t.equal(await store.endRebuild('rebuild-1'), true);
  t.ok(await store.getLiveSession(s.sessionId), 'readable again once the rebuild ended');
});

t.test('applyAs applies only for the token that holds the rebuild', async (t) => {
  const store = await openStore(t);
  const s = sampleSession();
  await t.rejects(store.applyAs('nobody', at(1, createEvent('SessionStarted', s))), { code: 'PORTCULLIS_STORE_REBUILD_LOST' }, 'no rebuild running');
  await store.beginRebuild('mine', 60_000);
  await t.rejects(store.applyAs('theirs', at(1, createEvent('SessionStarted', s))), { code: 'PORTCULLIS_STORE_REBUILD_LOST' }, 'another token');
  t.equal(await store.appliedSeq(), 0, 'nothing applied by a wrong token');
  await store.applyAs('mine', at(1, createEvent('SessionStarted', s)));
  await store.applyAs('mine', at(2, createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' })));
  t.equal(await store.appliedSeq(), 2, 'the holder applies');
  await t.rejects(store.beginRebuild('second', 60_000), { code: 'PORTCULLIS_STORE_REBUILDING' }, 'one rebuild at a time');
  t.equal(await store.endRebuild('theirs'), false, 'another token cannot end it');
  t.equal(await store.rebuildInProgress(), true);
  t.equal(await store.endRebuild('mine'), true);
  t.equal(await store.rebuildInProgress(), false);
  await store.apply(at(3, createEvent('SessionStarted', sampleSession({ sub: 'bob' }))));
  t.equal(await store.appliedSeq(), 3, 'normal applies resume after endRebuild');
  t.equal(await store.getLiveSession(s.sessionId), null, 'the rebuilt sign-out holds');
  t.equal(await store.countSignOutWatermarks(), 1);
  await t.rejects(store.applyAs('mine', at(4, createEvent('SessionEnded', { sessionId: 'x', reason: 'admin' }))), {
    code: 'PORTCULLIS_STORE_REBUILD_LOST',
  });
});

t.test('dropProjection during a rebuild keeps the rebuild marker', async (t) => {
  const cfg = redisConfig();
  const store = await createRedisStore({ redis: cfg });
  t.teardown(() => store.close());
  await store.apply(at(1, createEvent('SessionStarted', sampleSession())));
  await store.beginRebuild('mine', 60_000);
  await store.dropProjection();
  t.same(Object.keys(await dumpKeys(cfg.key_prefix)), ['{s}:activity:app', '{s}:rebuilding']);
  t.equal(await store.rebuildInProgress(), true);
});

t.test('the rebuild marker expires on its own (a crashed rebuild frees the projection); refreshRebuild extends it', async (t) => {
  const cfg = redisConfig();
  const store = await createRedisStore({ redis: cfg });
  t.teardown(() => store.close());
  const s = sampleSession();
  await store.apply(at(1, createEvent('SessionStarted', s)));
  await store.beginRebuild('crashing', 600);
  await new Promise((r) => setTimeout(r, 400));
  await store.refreshRebuild('crashing', 600);
  await new Promise((r) => setTimeout(r, 400));
  t.equal(await store.rebuildInProgress(), true, 'still held 800 ms after a 600 ms start thanks to the refresh');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await store.rebuildInProgress(), false, 'gone once the TTL passed without a refresh');
  await t.rejects(store.refreshRebuild('crashing', 600), { code: 'PORTCULLIS_STORE_REBUILD_LOST' });
  await store.apply(at(2, createEvent('SessionStarted', sampleSession())));
  t.equal(await store.appliedSeq(), 2, 'normal applies work again');
  t.ok(await store.getLiveSession(s.sessionId), 'reads work again');
});

t.test('SessionRefreshed keeps the record’s expiry (TTL) and the identity part byte for byte', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const s = sampleSession({ refreshAt: Date.now() + 1_000 });
  await store.apply(at(1, createEvent('SessionStarted', s)));
  const before = (await raw.get(keys.session(s.sessionId)))!;
  await store.apply(at(2, createEvent('SessionRefreshed', sampleRefresh(s.sessionId, { accessToken: 'at-2' }))));
  const after = (await raw.get(keys.session(s.sessionId)))!;
  t.equal(await raw.pexpiretime(keys.session(s.sessionId)), s.expiresAt, 'PEXPIREAT still = expiresAt');
  t.equal(after.split('\n')[0], before.split('\n')[0], 'identity part unchanged');
  t.notOk(after.split('\n')[0]!.includes('at-2'), 'the tokens live in the second part');
  t.equal((await store.getLiveSession(s.sessionId))?.accessToken, 'at-2');
  t.equal(await raw.zscore(keys.refreshDue, s.sessionId), null, 'refreshAt null → off the schedule');
});

t.test('a record stored before the identity/tokens split is read, refreshed and tracked', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const s = sampleSession({ createdAt: Date.now() - 60_000 });
  // The former layout: one JSON object, no activity entry. Written as the former apply script did.
  await raw.set(keys.session(s.sessionId), JSON.stringify({ ...s, seq: 1 }), 'PXAT', s.expiresAt);
  await raw.sadd(keys.userSessions(s.sub), s.sessionId);
  await raw.set(keys.applied, '1');
  t.equal((await store.getLiveSession(s.sessionId))?.accessToken, 'at');
  t.equal(await store.lastActivity(s.sessionId), s.createdAt, 'no activity entry → its start');
  await store.recordActivity([{ sessionId: s.sessionId, provider: 'app', at: s.createdAt + 5_000 }]);
  t.equal(await store.lastActivity(s.sessionId), s.createdAt + 5_000, 'a reported use adds it to the index');
  await store.apply(at(2, createEvent('SessionRefreshed', sampleRefresh(s.sessionId, { accessToken: 'at-2', refreshAt: Date.now() - 1 }))));
  const got = await store.getLiveSession(s.sessionId);
  t.equal(got?.accessToken, 'at-2', 'the refreshed tokens win over the old ones');
  t.same(got?.claims, sampleRefresh(s.sessionId).claims);
  t.equal(got?.seq, 1);
  t.same(await store.dueForRefresh(Date.now(), 10), [s.sessionId]);
  await store.apply(at(3, createEvent('SessionEnded', { sessionId: s.sessionId, reason: 'admin' })));
  t.equal(await store.getLiveSession(s.sessionId), null);
  t.equal(await raw.zscore(keys.activity('app'), s.sessionId), null, 'ending it removes it from the indexes');
  t.same(await store.dueForRefresh(Date.now(), 10), []);
});

t.test('ending a session removes it from the refresh schedule and its provider’s activity index', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const bySid = sampleSession({ provider: 'p:1', sid: 'one', refreshAt: Date.now() });
  const bySub = sampleSession({ provider: 'p:1', sid: null, refreshAt: Date.now() });
  const byId = sampleSession({ provider: 'p:1', sub: 'bob', sid: 'bob-sid', refreshAt: Date.now() });
  const kept = sampleSession({ provider: 'p:1', refreshAt: Date.now(), issuer: 'http://other.test' });
  for (const [i, s] of [bySid, bySub, byId, kept].entries()) await store.apply(at(i + 1, createEvent('SessionStarted', s)));
  t.equal(await raw.zcard(keys.activity('p:1')), 4);
  await store.apply(at(5, createEvent('IdpSessionEnded', { issuer: 'http://idp.test', sid: 'one', sub: null })));
  await store.apply(at(6, createEvent('IdpSessionEnded', { issuer: 'http://idp.test', sid: null, sub: 'alice' })));
  await store.apply(at(7, createEvent('SessionEnded', { sessionId: byId.sessionId, reason: 'admin' })));
  t.same(await raw.zrange(keys.activity('p:1'), '0', '-1'), [kept.sessionId]);
  t.same(await raw.zrange(keys.refreshDue, '0', '-1'), [kept.sessionId]);
});

t.test('the upkeep reads drop dead members from the indexes; a sign-out itself touches neither', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const now = Date.now();
  const bob = sampleSession({ sub: 'bob', sid: 'bob-sid', createdAt: now - 10_000, refreshAt: now - 1_000 });
  const live = sampleSession({ createdAt: now - 5_000, refreshAt: now - 500 });
  await store.apply(at(1, createEvent('SessionStarted', bob)));
  await store.apply(at(2, createEvent('SessionStarted', live)));
  await store.apply(at(3, createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'sign_out' })));
  t.not(await raw.zscore(keys.refreshDue, bob.sessionId), null, 'UserSignedOut is O(1): it enumerates nothing');
  t.not(await raw.zscore(keys.activity('app'), bob.sessionId), null);
  await store.apply(at(4, createEvent('SessionRefreshed', sampleRefresh(bob.sessionId, { accessToken: 'late', refreshAt: now + 99 }))));
  t.notMatch(await raw.get(keys.session(bob.sessionId)), /late/, 'a refresh of the signed-out session leaves its record alone');
  t.equal(Number(await raw.zscore(keys.refreshDue, bob.sessionId)), now - 1_000, 'and its schedule');
  t.same(await store.dueForRefresh(now, 10), [live.sessionId]);
  t.equal(await raw.zscore(keys.refreshDue, bob.sessionId), null, 'met by dueForRefresh → dropped');
  t.same(await store.idleSessions('app', now, 10), [live.sessionId]);
  t.equal(await raw.zscore(keys.activity('app'), bob.sessionId), null, 'met by idleSessions → dropped');
  await store.postponeRefresh(bob.sessionId, now + 1_000);
  t.equal(await raw.zscore(keys.refreshDue, bob.sessionId), null, 'postponeRefresh never puts a dropped session back');
});

t.test('each SessionStarted drops expired members at the head of the indexes (bounded without readers)', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const short = sampleSession({ provider: 'quiet', createdAt: Date.now() - 1_000, refreshAt: Date.now() - 1_000, expiresAt: Date.now() + 150 });
  await store.apply(at(1, createEvent('SessionStarted', short)));
  await new Promise((r) => setTimeout(r, 300)); // its record expires (TTL)
  t.equal(await raw.zcard(keys.activity('quiet')), 1, 'still indexed: nobody read it');
  await store.apply(at(2, createEvent('SessionStarted', sampleSession({ provider: 'quiet', refreshAt: Date.now() + 60_000 }))));
  t.equal(await raw.zscore(keys.activity('quiet'), short.sessionId), null, 'dropped from the activity index');
  t.equal(await raw.zscore(keys.refreshDue, short.sessionId), null, 'and from the refresh schedule');
  t.equal(await raw.zcard(keys.activity('quiet')), 1);
});

t.test('rebuild: the activity index survives dropProjection + replay, the refresh schedule is rebuilt by the replay', async (t) => {
  const cfg = redisConfig();
  const store = await openStore(t, cfg);
  const keys = createRedisKeys(cfg.key_prefix);
  const now = Date.now();
  const a = sampleSession({ createdAt: now - 600_000, refreshAt: now - 1_000 });
  const b = sampleSession({ createdAt: now - 500_000, refreshAt: now - 2_000 });
  const c = sampleSession({ createdAt: now - 400_000 });
  const gone = sampleSession({ createdAt: now - 300_000, refreshAt: now - 3_000 });
  const history: SequencedEvent[] = [
    at(1, createEvent('SessionStarted', a)),
    at(2, createEvent('SessionStarted', b)),
    at(3, createEvent('SessionStarted', c)),
    at(4, createEvent('SessionStarted', gone)),
    at(5, createEvent('SessionRefreshed', sampleRefresh(b.sessionId, { accessToken: 'at-b2', refreshAt: null }))),
    at(6, createEvent('SessionEnded', { sessionId: gone.sessionId, reason: 'admin' })),
  ];
  for (const e of history) await store.apply(e);
  await store.recordActivity([
    { sessionId: a.sessionId, provider: 'app', at: now - 10_000 },
    { sessionId: b.sessionId, provider: 'app', at: now - 450_000 },
  ]);
  t.same(await store.dueForRefresh(now, 10), [a.sessionId]);
  t.same(await store.idleSessions('app', now, 10), [b.sessionId, c.sessionId, a.sessionId]);

  await store.beginRebuild('rebuild-1', 60_000);
  await store.dropProjection();
  t.equal(await raw.exists(keys.refreshDue), 0, 'the refresh schedule is dropped (derived from the log)');
  t.equal(await raw.zcard(keys.activity('app')), 3, 'the activity index is kept');
  t.same(await store.dueForRefresh(now, 10), [], 'while rebuilding: nothing due');
  t.same(await store.idleSessions('app', now, 10), [], 'while rebuilding: nothing idle');
  t.equal(await store.lastActivity(a.sessionId), null, 'while rebuilding: no session');
  t.equal(await raw.zcard(keys.activity('app')), 3, 'the refused reads dropped nothing though no record exists yet');
  await store.recordActivity([{ sessionId: c.sessionId, provider: 'app', at: now - 5_000 }]);
  for (const e of history) await store.applyAs('rebuild-1', e);
  t.equal(await store.endRebuild('rebuild-1'), true);

  t.equal(await store.lastActivity(a.sessionId), now - 10_000, 'the replayed start did not move the recorded use back (GT)');
  t.equal(await store.lastActivity(c.sessionId), now - 5_000, 'a use reported during the rebuild is kept');
  t.equal(await store.lastActivity(b.sessionId), now - 450_000, 'a use of a session replayed later is kept (no pruning while rebuilding)');
  t.same(await store.dueForRefresh(now, 10), [a.sessionId], 'the schedule is rebuilt, with the replayed refresh applied');
  t.equal((await store.getLiveSession(b.sessionId))?.accessToken, 'at-b2');
  t.same(await store.idleSessions('app', now, 10), [b.sessionId, a.sessionId, c.sessionId]);
  t.same(await raw.zrange(keys.activity('app'), '0', '-1'), [b.sessionId, a.sessionId, c.sessionId], 'the ended session stays out');
});

t.test('recordActivity sends a large batch in chunks and rejects a non-numeric time naming the session', async (t) => {
  const store = await openStore(t);
  const sessions = Array.from({ length: 5 }, (_, i) => sampleSession({ createdAt: Date.now() - 60_000 + i }));
  for (const [i, s] of sessions.entries()) await store.apply(at(i + 1, createEvent('SessionStarted', s)));
  const report = Array.from({ length: 2_500 }, (_, i) => ({ sessionId: sessions[i % 5]!.sessionId, provider: 'app', at: Date.now() - 3_000 + i }));
  await store.recordActivity(report);
  for (const [i, s] of sessions.entries()) t.equal(await store.lastActivity(s.sessionId), report[2_495 + i]!.at, 'the latest use of each');
  await t.rejects(store.recordActivity([{ sessionId: 'x', provider: 'app', at: Number.NaN }]), { name: 'TypeError', message: /session x/ });
});

t.test('a Redis password holding an unencoded "@" stays out of error messages', async (t) => {
  // The URL parser takes the last "@" of the authority, so this is user "default", password "abc@def".
  const err = await createRedisStore({ redis: redisConfig({ url: 'redis://default:abc@def@127.0.0.1:1' }), startTimeoutMs: 1000 }).then(
    () => null,
    (e: unknown) => e as Error,
  );
  t.ok(err instanceof StoreError, 'the start fails with a StoreError');
  t.match(err?.message, /cannot connect to Redis redis:\/\/\*\*\*@127\.0\.0\.1:1 /);
  t.notMatch(err?.message, /abc|def/, 'no part of the password');
});
