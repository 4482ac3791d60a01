// The gateway's session cache: hits, revocations that outrun a lagging store, distrust and recovery.
import { createMemoryBus } from '@portcullis/bus';
import { createEvent, type SessionRefreshedData, type SessionStartedData } from '@portcullis/events';
import { signSessionCookie } from '@portcullis/protocol';
import { createSessionService } from '@portcullis/session';
import { type SessionStore, createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { compileProviders } from './provider-runtime.ts';
import { CachedSessionReader } from './session-cache.ts';
import { checkSession } from './session-check.ts';
import { providerYaml, testConfig } from './test-support.ts';

function started(over: Partial<SessionStartedData> = {}): SessionStartedData {
  const now = Date.now();
  return {
    sessionId: `s${Math.random().toString(36).slice(2)}`,
    provider: 'app',
    issuer: 'http://idp',
    sub: 'alice',
    sid: 'sid-1',
    claims: {},
    accessToken: 'at',
    idToken: null,
    jwksUri: '',
    createdAt: now,
    expiresAt: now + 60_000,
    ...over,
  };
}

/** A store whose reads can be counted, and frozen (it keeps answering from its old state). */
function countingStore(inner: SessionStore) {
  let reads = 0;
  return {
    store: {
      ...inner,
      appliedSeq: () => inner.appliedSeq(),
      waitForApplied: (s: number, ms: number) => inner.waitForApplied(s, ms),
      listLiveSessions: (f?: { sub?: string }) => inner.listLiveSessions(f),
      getLiveSession: (id: string, now?: number) => {
        reads += 1;
        return inner.getLiveSession(id, now);
      },
    },
    reads: () => reads,
  };
}

async function setup(t: import('tap').Test, opts: { projecting?: boolean } = {}) {
  const bus = createMemoryBus();
  const inner = createMemoryStore();
  const session = createSessionService({ log: bus.log, store: inner });
  if (opts.projecting !== false) await session.start();
  const { store, reads } = countingStore(inner);
  const trust: Array<[boolean, string]> = [];
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000, onTrustChange: (v, r) => trust.push([v, r]) });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await session.stop();
    await inner.close();
  });
  return { bus, inner, cache, reads, trust };
}

t.test('a session started after the gateway started is served from memory', async (t) => {
  const { bus, cache, reads } = await setup(t);
  const s = started();
  const seq = await bus.log.append(createEvent('SessionStarted', s));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  t.equal((await cache.getLiveSession(s.sessionId))?.seq, seq);
  t.equal(reads(), 0, 'no store read');
});

t.test('a miss reads the store once, then hits', async (t) => {
  const { bus, inner, cache, reads } = await setup(t, { projecting: false });
  const s = started();
  // Projected before this cache followed the log: only the store knows it.
  await inner.apply({ seq: 1, event: createEvent('SessionStarted', s) });
  await bus.log.append(createEvent('SessionStarted', started({ sub: 'other' })));
  t.ok(await cache.getLiveSession(s.sessionId));
  t.ok(await cache.getLiveSession(s.sessionId));
  t.equal(reads(), 1);
});

t.test('a sign-out seen in the log kills cached sessions even while the store still lists them', async (t) => {
  const { bus, inner, cache } = await setup(t, { projecting: false });
  const s = started();
  await inner.apply({ seq: 1, event: createEvent('SessionStarted', s) });
  t.ok(await cache.getLiveSession(s.sessionId), 'cached from the store');
  const seq = await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'test' }));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  t.ok(await inner.getLiveSession(s.sessionId), 'the (frozen) store still has it');
  t.equal(await cache.getLiveSession(s.sessionId), null, 'the cache refuses it and will not re-read it into life');
});

t.test('back-channel and single-session revocations are remembered the same way', async (t) => {
  const { bus, inner, cache } = await setup(t, { projecting: false });
  const bySid = started({ sid: 'idp-1' });
  const bySub = started({ sub: 'bob', sid: null });
  const one = started({ sub: 'carol', sid: null });
  let seq = 0;
  for (const s of [bySid, bySub, one]) await inner.apply({ seq: ++seq, event: createEvent('SessionStarted', s) });
  await bus.log.append(createEvent('IdpSessionEnded', { issuer: 'http://idp', sid: 'idp-1', sub: null }));
  await bus.log.append(createEvent('IdpSessionEnded', { issuer: 'http://idp', sid: null, sub: 'bob' }));
  const last = await bus.log.append(createEvent('SessionEnded', { sessionId: one.sessionId, reason: 'admin' }));
  t.ok(await cache.waitLocalApplied(last, 1000));
  for (const s of [bySid, bySub, one]) t.equal(await cache.getLiveSession(s.sessionId), null, s.sub);
});

t.test('a session started under an IdP session a back-channel logout already ended is not served (a login racing its logout)', async (t) => {
  const { bus, cache, inner } = await setup(t);
  await bus.log.append(createEvent('IdpSessionEnded', { issuer: 'http://idp', sid: 'idp-gone', sub: null }));
  const late = started({ sid: 'idp-gone' });
  const other = started({ sid: 'idp-live' });
  await bus.log.append(createEvent('SessionStarted', late));
  const seq = await bus.log.append(createEvent('SessionStarted', other));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  t.ok(await inner.waitForApplied(seq, 1000));
  t.equal(cache.peekLiveSession(late.sessionId), null, 'not served from memory');
  t.equal(await cache.getLiveSession(late.sessionId), null, 'nor read into life');
  t.ok(await cache.getLiveSession(other.sessionId), 'another IdP session lives');
});

t.test('disconnected → distrusted: every read goes to the store until caught up again', async (t) => {
  const { bus, cache, reads, trust } = await setup(t);
  const s = started();
  const seq = await bus.log.append(createEvent('SessionStarted', s));
  await cache.waitLocalApplied(seq, 1000);
  await cache.setConnected(false);
  t.equal(cache.trusted, false);
  await cache.getLiveSession(s.sessionId);
  await cache.getLiveSession(s.sessionId);
  t.equal(reads(), 2, 'read through');
  await cache.setConnected(true);
  t.equal(cache.trusted, true);
  t.same(
    trust.map(([v]) => v),
    [true, false, true],
  );
});

t.test('peekLiveSession answers from memory only: a live hit, null for a revoked or expired hit, undefined for a miss or while distrusted', async (t) => {
  const { bus, inner, cache, reads } = await setup(t, { projecting: false });
  const cached = started();
  const stored = started({ sub: 'bob' });
  const expiring = started({ sub: 'carol', expiresAt: Date.now() + 1_000 });
  await inner.apply({ seq: 1, event: createEvent('SessionStarted', stored) });
  let seq = await bus.log.append(createEvent('SessionStarted', cached));
  seq = await bus.log.append(createEvent('SessionStarted', expiring));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  t.equal(cache.peekLiveSession(cached.sessionId)?.sessionId, cached.sessionId, 'a hit, without waiting');
  t.equal(cache.peekLiveSession(stored.sessionId), undefined, 'a miss: only the store can tell');
  t.equal(cache.peekLiveSession(expiring.sessionId, Date.now() + 2_000), null, 'an expired hit is known dead');
  t.equal(reads(), 0, 'peeking never reads the store');
  seq = await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'test' }));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  t.equal(cache.peekLiveSession(cached.sessionId), undefined, 'a revoked session was evicted: no longer in memory');
  t.equal(await cache.getLiveSession(cached.sessionId), null, 'and the store read that follows refuses it');
  const again = started({ sub: 'dave' });
  seq = await bus.log.append(createEvent('SessionStarted', again));
  t.ok(await cache.waitLocalApplied(seq, 1000));
  await cache.setConnected(false);
  t.equal(cache.peekLiveSession(again.sessionId), undefined, 'distrusted: nothing is answered from memory');
});

/** A compiled proxy-mode provider, for checking its session cookies. */
function appProvider() {
  const [p] = compileProviders(
    testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: 'http://127.0.0.1:1', issuer: 'http://idp' })}
`),
  );
  return p!;
}

t.test('read-your-writes: a fresh cookie is accepted once this gateway read its session from the log, however far the store lags', async (t) => {
  // The store never projects (its session service is stopped): waiting on it alone ends in a stale cookie.
  const { bus, cache, reads } = await setup(t, { projecting: false });
  const p = appProvider();
  const s = started();
  const seq = (await bus.log.lastSeq()) + 1;
  const cookie = `${p.sessionCookie}=${signSessionCookie(p.config.cookie_secret, { sessionId: s.sessionId, seq })}`;
  // The request with the fresh cookie arrives before this gateway has read the SessionStarted.
  const checking = checkSession(cache, p, cookie);
  t.ok(checking instanceof Promise, 'not known yet: the careful way');
  t.equal(await bus.log.append(createEvent('SessionStarted', s)), seq);
  const check = await checking;
  t.equal(check.session?.sessionId, s.sessionId, 'accepted: the log reader knew it, the store still does not');
  t.equal(check.staleCookie, false, 'the cookie is kept (no second login)');
  t.equal(reads(), 1, 'one store read (the miss before the wait), none after');
});

t.test('read-your-writes with a failing store: memory that knows the session answers; otherwise the store error stands (fail closed)', async (t) => {
  const p = appProvider();
  const s = started();
  const record = { ...s, seq: 7 };
  const cookie = `${p.sessionCookie}=${signSessionCookie(p.config.cookie_secret, { sessionId: s.sessionId, seq: 7 })}`;
  const failing = (known: typeof record | undefined) =>
    ({
      appliedSeq: async () => 0,
      getLiveSession: async () => null,
      listLiveSessions: async () => [],
      waitForApplied: () => Promise.reject(new Error('redis down')),
      awaitKnownSession: async () => known,
    }) as import('@portcullis/store').SessionReader;
  t.equal((await checkSession(failing(record), p, cookie)).session?.sessionId, s.sessionId, 'memory knows it: accepted');
  await t.rejects(Promise.resolve(checkSession(failing(undefined), p, cookie)), /redis down/, 'memory cannot tell: the store error propagates');
});

t.test('awaitKnownSession answers only what memory can vouch for', async (t) => {
  const { bus, cache } = await setup(t, { projecting: false });
  const live = started();
  const liveSeq = await bus.log.append(createEvent('SessionStarted', live));
  t.equal((await cache.awaitKnownSession(live.sessionId, liveSeq, 1000))?.sessionId, live.sessionId, 'known at its version');
  t.equal(await cache.awaitKnownSession(live.sessionId, liveSeq - 1, 1000), undefined, 'another version: only the projection can tell');
  t.equal(await cache.awaitKnownSession('never-started', liveSeq, 1000), undefined, 'unknown id');
  const revoked = started({ sub: 'bob' });
  const revokedSeq = await bus.log.append(createEvent('SessionStarted', revoked));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'test' }));
  t.equal(await cache.awaitKnownSession(revoked.sessionId, revokedSeq, 1000), undefined, 'revoked since: never vouched for');
  t.equal(await cache.awaitKnownSession(live.sessionId, (await bus.log.lastSeq()) + 5, 50), undefined, 'not reached in time');
  await cache.setConnected(false);
  t.equal(await cache.awaitKnownSession(live.sessionId, liveSeq, 50), undefined, 'distrusted: memory vouches for nothing');
});

t.test('distrustUntil a sequence not yet applied reads through until it is', async (t) => {
  const { bus, cache } = await setup(t);
  const next = (await bus.log.lastSeq()) + 1;
  cache.distrustUntil(next, 'missed a barrier');
  t.equal(cache.trusted, false);
  await bus.log.append(createEvent('UserSignedOut', { sub: 'x', provider: 'app', reason: 'test' }));
  t.ok(await cache.waitLocalApplied(next, 1000));
  t.equal(cache.trusted, true);
});

t.test('the cache holds at most maxEntries sessions', async (t) => {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000, maxEntries: 3 });
  await cache.start();
  t.teardown(() => cache.stop());
  let last = 0;
  for (let i = 0; i < 10; i++) last = await bus.log.append(createEvent('SessionStarted', started()));
  await cache.waitLocalApplied(last, 1000);
  t.equal(cache.size, 3);
});

function refreshed(sessionId: string, over: Partial<SessionRefreshedData> = {}): SessionRefreshedData {
  return {
    sessionId,
    claims: { sub: 'alice', groups: ['after-refresh'] },
    accessToken: 'at-2',
    idToken: 'id-2',
    refreshToken: 'sealed-rt-2',
    refreshAt: Date.now() + 30_000,
    refreshedAt: Date.now(),
    ...over,
  };
}

t.test('a refresh replaces a cached session with a new record: new claims and tokens, same seq and expiry, no store read', async (t) => {
  const { bus, cache, reads } = await setup(t);
  const s = started({ claims: { sub: 'alice', groups: ['before'] } });
  const seq = await bus.log.append(createEvent('SessionStarted', s));
  await cache.waitLocalApplied(seq, 1000);
  const before = await cache.getLiveSession(s.sessionId);
  t.ok(before);
  const r = await bus.log.append(createEvent('SessionRefreshed', refreshed(s.sessionId)));
  t.ok(await cache.waitLocalApplied(r, 1000));
  const after = await cache.getLiveSession(s.sessionId);
  t.not(after, before, 'a new object, so identity headers cached per record are recomputed');
  t.same(after?.claims, { sub: 'alice', groups: ['after-refresh'] });
  t.equal(after?.accessToken, 'at-2');
  t.equal(after?.idToken ?? null, null, 'nor the ID token (the auth service reads it from the store at sign-out)');
  t.equal(after?.refreshToken ?? null, null, 'the sealed refresh token is not held by the gateway');
  t.equal(after?.seq, seq, 'seq kept: the cookie still matches');
  t.equal(after?.expiresAt, s.expiresAt, 'expiry kept');
  t.equal(after?.createdAt, s.createdAt);
  t.same(before?.claims, { sub: 'alice', groups: ['before'] }, 'the old record is not mutated');
  t.equal(reads(), 0);
});

t.test('a refresh of a session that is not cached caches nothing', async (t) => {
  const { bus, cache } = await setup(t, { projecting: false });
  const r = await bus.log.append(createEvent('SessionRefreshed', refreshed('never-seen')));
  t.ok(await cache.waitLocalApplied(r, 1000));
  t.equal(cache.size, 0);
  t.equal(await cache.getLiveSession('never-seen'), null, 'the store does not know it, and the refresh did not create it');
});

t.test('a refresh never revives a revoked session', async (t) => {
  const { bus, inner, cache } = await setup(t, { projecting: false });
  const ended = started();
  const signedOut = started({ sub: 'bob', sid: null });
  await inner.apply({ seq: 1, event: createEvent('SessionStarted', ended) });
  await inner.apply({ seq: 2, event: createEvent('SessionStarted', signedOut) });
  t.ok(await cache.getLiveSession(ended.sessionId), 'cached from the store');
  t.ok(await cache.getLiveSession(signedOut.sessionId), 'cached from the store');
  await bus.log.append(createEvent('SessionEnded', { sessionId: ended.sessionId, reason: 'admin' }));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'test' }));
  await bus.log.append(createEvent('SessionRefreshed', refreshed(ended.sessionId)));
  const last = await bus.log.append(createEvent('SessionRefreshed', refreshed(signedOut.sessionId, { claims: { sub: 'bob' } })));
  t.ok(await cache.waitLocalApplied(last, 1000));
  t.equal(cache.size, 0, 'nothing re-inserted');
  t.ok(await inner.getLiveSession(ended.sessionId), 'the (frozen) store still has it');
  t.equal(await cache.getLiveSession(ended.sessionId), null);
  t.equal(await cache.getLiveSession(signedOut.sessionId), null);
});

t.test('a refresh does not bring back a session evicted for room', async (t) => {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000, maxEntries: 2 });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await store.close();
  });
  const first = started();
  await bus.log.append(createEvent('SessionStarted', first));
  await bus.log.append(createEvent('SessionStarted', started()));
  await bus.log.append(createEvent('SessionStarted', started()));
  const r = await bus.log.append(createEvent('SessionRefreshed', refreshed(first.sessionId)));
  t.ok(await cache.waitLocalApplied(r, 1000));
  t.equal(cache.size, 2);
  t.equal(await cache.getLiveSession(first.sessionId), null, 'evicted, not re-inserted (this store projects nothing)');
});

t.test('a store that has not applied a refresh yet is read through, not cached, until it has', async (t) => {
  const bus = createMemoryBus();
  const inner = createMemoryStore();
  const { store, reads } = countingStore(inner);
  const s = started({ claims: { sub: 'alice', groups: ['before'] } });
  const startSeq = await bus.log.append(createEvent('SessionStarted', s));
  await inner.apply({ seq: startSeq, event: createEvent('SessionStarted', s) });
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000 });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await inner.close();
  });
  const refresh = createEvent('SessionRefreshed', refreshed(s.sessionId));
  const r = await bus.log.append(refresh);
  t.ok(await cache.waitLocalApplied(r, 1000));
  t.same((await cache.getLiveSession(s.sessionId))?.claims, { sub: 'alice', groups: ['before'] }, 'the lagging store answers');
  await cache.getLiveSession(s.sessionId);
  t.equal(reads(), 2, 'not cached while the store lags');
  await inner.apply({ seq: r, event: refresh });
  t.same((await cache.getLiveSession(s.sessionId))?.claims, { sub: 'alice', groups: ['after-refresh'] });
  t.same((await cache.getLiveSession(s.sessionId))?.claims, { sub: 'alice', groups: ['after-refresh'] });
  t.equal(reads(), 3, 'cached once the store has the refresh');
});

t.test('a gateway started after a sign-out that the store has not applied yet reads the log from the store\'s position: the session is dead here at once', async (t) => {
  const bus = createMemoryBus();
  const inner = createMemoryStore();
  const { store, reads } = countingStore(inner);
  const s = started();
  const startSeq = await bus.log.append(createEvent('SessionStarted', s));
  await inner.apply({ seq: startSeq, event: createEvent('SessionStarted', s) });
  // The sign-out is in the log before this gateway starts, but the store lags (its session services
  // down): it still lists the session.
  const out = createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' });
  const outSeq = await bus.log.append(out);
  const trust: Array<[boolean, string]> = [];
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000, onTrustChange: (v, r) => trust.push([v, r]) });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await inner.close();
  });
  t.equal(await cache.getLiveSession(s.sessionId), null, 'the sign-out, read from the log, outweighs the lagging store');
  t.equal(cache.localApplied, outSeq, 'the log was read from the store\'s position to its end');
  t.equal(cache.trusted, true, 'trusted once caught up with the end');
  t.same(trust, [[true, 'caught up with the log']]);
  // The store is up to date with where this gateway joined: misses are cached.
  const later = started({ sub: 'bob' });
  await inner.apply({ seq: outSeq, event: out });
  await inner.apply({ seq: outSeq + 1, event: createEvent('SessionStarted', later) });
  await cache.getLiveSession(later.sessionId);
  await cache.getLiveSession(later.sessionId);
  t.equal(reads(), 2, 'read once, then cached');
});

t.test('a read while a fresh cache cannot finish reading the backlog fails closed', async (t) => {
  const bus = createMemoryBus();
  const inner = createMemoryStore();
  const s = started();
  await inner.apply({ seq: 1, event: createEvent('SessionStarted', s) });
  await bus.log.append(createEvent('SessionStarted', s));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }));
  // A log whose subscription never delivers (the backlog cannot be read).
  const stuck = { append: bus.log.append.bind(bus.log), lastSeq: () => bus.log.lastSeq(), subscribe: () => ({ close: async () => {} }) };
  const cache = new CachedSessionReader({ log: stuck, store: inner, revocationMemoryMs: 60_000 });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await inner.close();
  });
  t.equal(cache.trusted, false);
  await t.rejects(cache.getLiveSession(s.sessionId), /still reading the log up to #2/, 'not the lagging store\'s "live"');
});

t.test('a revocation is remembered for revocationMemoryMs after its latest record, then forgotten', async (t) => {
  const realNow = Date.now;
  let now = realNow();
  Date.now = () => now;
  t.teardown(() => {
    Date.now = realNow;
  });
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const alice = started({ sessionId: 'sa', sub: 'alice', claims: { sub: 'alice' } });
  const bob = started({ sessionId: 'sb', sub: 'bob', claims: { sub: 'bob' } });
  // The store holds both sessions and never sees the sign-outs (a store lagging behind the log).
  for (const s of [alice, bob]) {
    const e = createEvent('SessionStarted', s);
    await store.apply({ seq: await bus.log.append(e), event: e });
  }
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 1000 });
  await cache.start();
  t.teardown(async () => {
    await cache.stop();
    await store.close();
  });
  const signOut = async (sub: string) => cache.waitLocalApplied(await bus.log.append(createEvent('UserSignedOut', { sub, provider: 'app', reason: 'sign_out' })), 1000);
  await signOut('alice');
  await signOut('bob');
  t.equal(await cache.getLiveSession('sa'), null, "alice's session is revoked by the remembered sign-out");
  now += 600;
  await signOut('bob');
  now += 600;
  // A later fact makes the cache forget what is older than the memory: alice's sign-out, not bob's (renewed).
  await cache.waitLocalApplied(await bus.log.append(createEvent('SessionEnded', { sessionId: 'other', reason: 'admin' })), 1000);
  t.equal(await cache.getLiveSession('sb'), null, "bob's sign-out, remembered again 600 ms later, is kept");
  t.equal((await cache.getLiveSession('sa'))?.sessionId, 'sa', "alice's, older than any session, is forgotten (the memory stays bounded)");
});

t.test('a SessionStarted appended again after its session ended (a publish retried past the de-duplication window) revives nothing', async (t) => {
  const { bus, inner, cache } = await setup(t);
  const p = appProvider();
  const ended = started({ provider: 'app' });
  const signedOut = started({ provider: 'app', sub: 'bob', sid: 'sid-2' });
  const endedSeq = await bus.log.append(createEvent('SessionStarted', ended));
  const signedOutSeq = await bus.log.append(createEvent('SessionStarted', signedOut));
  await bus.log.append(createEvent('SessionEnded', { sessionId: ended.sessionId, reason: 'logout' }));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'test' }));
  // The same records again, in new envelopes (so not de-duplicated by event id), at later sequences.
  await bus.log.append(createEvent('SessionStarted', ended));
  const last = await bus.log.append(createEvent('SessionStarted', signedOut));
  t.ok(await cache.waitLocalApplied(last, 1000));
  t.ok(await inner.waitForApplied(last, 1000));

  t.equal(cache.peekLiveSession(ended.sessionId), undefined, 'an ended session id started again is not pre-warmed');
  t.equal(await cache.getLiveSession(ended.sessionId), null, 'read from the store: dead (its tombstone)');
  t.equal(await inner.getLiveSession(signedOut.sessionId), null, 'the store refuses the signed-out copy too');
  for (const [s, seq] of [[ended, endedSeq], [signedOut, signedOutSeq]] as const) {
    // The user's cookie names the sequence its session started at, which no later copy has.
    const cookie = `${p.sessionCookie}=${signSessionCookie(p.config.cookie_secret, { sessionId: s.sessionId, seq })}`;
    const check = await checkSession(cache, p, cookie);
    t.equal(check.session, null, `${s.sub}'s old cookie is refused`);
    t.equal(check.staleCookie, true, `${s.sub}'s old cookie is deleted`);
  }
});

/**
 * A gateway that starts after its sessions were logged (restarted, scaled out) over a projection that
 * does not apply them (its session service is not running): it reads the SessionStarted while
 * catching up with the log, so nothing is pre-warmed and only the projection could vouch for them.
 */
async function startedLate(t: import('tap').Test, log: import('@portcullis/bus').EventLog = createMemoryBus().log) {
  const inner = createMemoryStore();
  const session = createSessionService({ log, store: inner });
  t.teardown(async () => {
    await session.stop();
    await inner.close();
  });
  return {
    inner,
    session,
    async cache() {
      const cache = new CachedSessionReader({ log, store: inner, revocationMemoryMs: 60_000 });
      await cache.start();
      t.teardown(() => cache.stop());
      t.ok(await cache.waitLocalApplied(await log.lastSeq(), 1000), 'the cache read the log');
      return cache;
    },
  };
}

const cookieFor = (p: ReturnType<typeof appProvider>, sessionId: string, seq: number) =>
  `${p.sessionCookie}=${signSessionCookie(p.config.cookie_secret, { sessionId, seq })}`;

t.test('a cookie the log holds but the projection has not applied is "cannot tell yet" (fails closed, cookie kept), then accepted once projected', async (t) => {
  const bus = createMemoryBus();
  const { inner, session, cache: startCache } = await startedLate(t, bus.log);
  const p = appProvider();
  const s = started();
  const seq = await bus.log.append(createEvent('SessionStarted', s));
  const cache = await startCache();
  const cookie = cookieFor(p, s.sessionId, seq);
  await t.rejects(
    Promise.resolve(checkSession(cache, p, cookie)),
    { code: 'PORTCULLIS_GATEWAY_PROJECTION_BEHIND', statusCode: 503, applied: 0, cookieSeq: seq },
    'not "no such session": the caller answers 503 and keeps the cookie',
  );
  // The embedded store cannot ask the log (and, projected in-process, does not lag like this): stale as before.
  t.equal((await checkSession(inner, p, cookie)).staleCookie, true, 'a reader without logHolds answers as before');
  await session.start();
  t.ok(await inner.waitForApplied(seq, 1000), 'the projection caught up');
  const check = await checkSession(cache, p, cookie);
  t.equal(check.session?.sessionId, s.sessionId, 'the same cookie is accepted');
  t.equal(check.staleCookie, false);
});

t.test('a cookie beyond the end of the log (written to a stream since replaced) is stale, not "cannot tell" forever', async (t) => {
  const bus = createMemoryBus();
  const { cache: startCache } = await startedLate(t, bus.log);
  await bus.log.append(createEvent('SessionStarted', started()));
  const cache = await startCache();
  const p = appProvider();
  const check = await checkSession(cache, p, cookieFor(p, 'from-the-old-stream', (await bus.log.lastSeq()) + 5));
  t.equal(check.session, null);
  t.equal(check.staleCookie, true, 'deleted: the user logs in again');
});

t.test('a cookie whose seq the projection has applied and whose session ended is stale as before, not a 503', async (t) => {
  const bus = createMemoryBus();
  const { inner, session, cache: startCache } = await startedLate(t, bus.log);
  await session.start();
  const p = appProvider();
  const ended = started();
  const signedOut = started({ sub: 'bob', sid: 'sid-2' });
  const endedSeq = await bus.log.append(createEvent('SessionStarted', ended));
  const signedOutSeq = await bus.log.append(createEvent('SessionStarted', signedOut));
  await bus.log.append(createEvent('SessionEnded', { sessionId: ended.sessionId, reason: 'logout' }));
  const last = await bus.log.append(createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'test' }));
  t.ok(await inner.waitForApplied(last, 1000));
  const cache = await startCache();
  for (const [s, seq] of [[ended, endedSeq], [signedOut, signedOutSeq]] as const) {
    const check = await checkSession(cache, p, cookieFor(p, s.sessionId, seq));
    t.equal(check.staleCookie, true, `${s.sub}'s cookie is deleted`);
  }
});

t.test('a cookie the projection has not applied while the log cannot be asked fails closed (the error propagates, the cookie is kept)', async (t) => {
  const bus = createMemoryBus();
  let logDown = false;
  const log = {
    append: bus.log.append.bind(bus.log),
    subscribe: bus.log.subscribe.bind(bus.log),
    lastSeq: () => (logDown ? Promise.reject(new Error('NATS down')) : bus.log.lastSeq()),
  };
  const { cache: startCache } = await startedLate(t, log);
  await bus.log.append(createEvent('SessionStarted', started()));
  const cache = await startCache();
  logDown = true;
  const p = appProvider();
  // Beyond what this cache applied: only the log could tell whether it holds the cookie's session.
  await t.rejects(Promise.resolve(checkSession(cache, p, cookieFor(p, 'unknown', (await bus.log.lastSeq()) + 1))), /NATS down/);
});
