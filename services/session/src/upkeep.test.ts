// Session upkeep over the embedded bus and store: activity reports, idle sweeps across replicas, and the config reconciler.
import { type Bus, type Subscription, createMemoryBus } from '@portcullis/bus';
import { type SequencedEvent, SESSION_SUBJECTS, type SessionEndedData, type SessionStartedData, createEvent } from '@portcullis/events';
import { createHash } from 'node:crypto';
import { type SessionStore, createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { parseActivityReport } from './activity-server.ts';
import { createSessionService } from './app.ts';
import type { UpkeepProvider } from './idle-sweeper.ts';
import { changedProviders } from './reconciler.ts';
import { type UpkeepLogger, createSessionUpkeep } from './upkeep.ts';

/** Stands in for @portcullis/protocol's cookieKeyId (injected into the upkeep): any stable fingerprint of the secret. */
const cookieKeyId = (secret: string): string => createHash('sha256').update(secret).digest('base64url').slice(0, 16);

const SECRET_A = 'cookie-secret-a-0123456789abcdef0123';
const SECRET_B = 'cookie-secret-b-0123456789abcdef0123';

function provider(name: string, over: Partial<UpkeepProvider> = {}): UpkeepProvider {
  return { name, idle_timeout: null, cookie_secret: SECRET_A, ...over };
}

function started(provider: string, over: Partial<SessionStartedData> = {}): SessionStartedData {
  const now = Date.now();
  return {
    sessionId: `s${Math.random().toString(36).slice(2)}`,
    provider,
    issuer: 'http://idp',
    sub: `u${Math.random().toString(36).slice(2)}`,
    sid: null,
    claims: {},
    accessToken: 'access-token-value',
    idToken: 'id-token-value',
    jwksUri: '',
    createdAt: now,
    expiresAt: now + 3_600_000,
    ...over,
  };
}

function recordingLogger() {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  const logger: UpkeepLogger = {
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
  return { lines, logger };
}

/** A memory bus and store with the projector running; sessions started through the log. */
async function world(t: import('tap').Test) {
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const projector = createSessionService({ log: bus.log, store });
  await projector.start();
  t.teardown(async () => {
    await projector.stop();
    await store.close();
  });
  return {
    bus,
    store,
    async begin(data: SessionStartedData): Promise<SessionStartedData> {
      const seq = await bus.log.append(createEvent('SessionStarted', data));
      if (!(await store.waitForApplied(seq, 5000))) throw new Error('projection did not apply the session');
      return data;
    },
  };
}

/** Every event of the log, read through a subscription. */
async function events(bus: Bus): Promise<SequencedEvent[]> {
  const out: SequencedEvent[] = [];
  const last = await bus.log.lastSeq();
  if (last === 0) return out;
  let sub: Subscription | undefined;
  await new Promise<void>((resolve, reject) => {
    sub = bus.log.subscribe(
      1,
      (e) => {
        if (e.seq <= last) out.push(e);
        if (e.seq >= last) resolve();
      },
      reject,
    );
  });
  await sub?.close();
  return out;
}

async function endedEvents(bus: Bus): Promise<Array<{ id: string; data: SessionEndedData }>> {
  return (await events(bus)).flatMap(({ event }) => (event.type === 'SessionEnded' ? [{ id: event.id, data: event.data }] : []));
}

/** The same bus, counting SessionEnded appends (before the log de-duplicates them). */
function countEnds(bus: Bus): { countingBus: Bus; appends: () => number } {
  let n = 0;
  const countingBus: Bus = {
    ...bus,
    log: {
      append: (e) => {
        if (e.type === 'SessionEnded') n += 1;
        return bus.log.append(e);
      },
      lastSeq: () => bus.log.lastSeq(),
      subscribe: (from, h, onError) => bus.log.subscribe(from, h, onError),
    },
  };
  return { countingBus, appends: () => n };
}

async function waitUntil(check: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- activity reports ----------------------------------------------------------------------------

t.test('an activity report is recorded; a malformed one is refused and changes nothing', async (t) => {
  const { bus, store, begin } = await world(t);
  const { lines, logger } = recordingLogger();
  const clock = Date.now() + 60_000;
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('app', { idle_timeout: 60 })] }, logger, now: () => clock });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  const s = await begin(started('app'));
  t.equal(await store.lastActivity(s.sessionId), s.createdAt, 'the start counts as the first use');
  const at = s.createdAt + 1234;
  t.same(await bus.rpc.request(SESSION_SUBJECTS.activity, { entries: [{ sessionId: s.sessionId, provider: 'app', at }] }), { recorded: 1 });
  t.equal(await store.lastActivity(s.sessionId), at);

  const bad = [
    null,
    { entries: 'x' },
    { entries: [{ sessionId: s.sessionId, provider: 'app', at: 'soon' }] },
    { entries: [{ sessionId: s.sessionId, provider: 'app', at: at + 5000 }, { sessionId: '', provider: 'app', at }] },
  ];
  for (const payload of bad) {
    await t.rejects(bus.rpc.request(SESSION_SUBJECTS.activity, payload), /invalid session activity report/, JSON.stringify(payload));
  }
  t.equal(await store.lastActivity(s.sessionId), at, 'a refused report records none of its entries');
  t.equal(lines.filter((l) => l.msg === 'session activity report refused').length, bad.length);
});

t.test('a use stamped in the future is capped at the session service clock', async (t) => {
  const now = 1_700_000_000_000;
  t.same(parseActivityReport({ entries: [{ sessionId: 'a', provider: 'p', at: now + 60_000 }] }, now), [{ sessionId: 'a', provider: 'p', at: now }]);
  t.throws(() => parseActivityReport({ entries: new Array(10_001).fill({ sessionId: 'a', provider: 'p', at: 1 }) }, now), /at most 10000/);
});

// ---- idle sweeps -----------------------------------------------------------------------------------

t.test('an idle session ends; one reported as used does not; other providers are not swept', async (t) => {
  const { bus, store, begin } = await world(t);
  let clock = Date.now();
  const upkeep = createSessionUpkeep({
    cookieKeyId,
    bus,
    store,
    config: { providers: [provider('app', { idle_timeout: 60 }), provider('forever')] },
    now: () => clock,
    sweepMs: 1000,
    graceMs: 2000,
  });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  const idle = await begin(started('app'));
  const active = await begin(started('app'));
  const other = await begin(started('forever'));

  clock += 61_000;
  await upkeep.sweepNow();
  t.equal((await endedEvents(bus)).length, 0, 'within the grace period: nothing ends yet');

  await bus.rpc.request(SESSION_SUBJECTS.activity, { entries: [{ sessionId: active.sessionId, provider: 'app', at: clock }] });
  clock += 2_000;
  await upkeep.sweepNow();
  const ended = await endedEvents(bus);
  t.same(
    ended.map((e) => e.data),
    [{ sessionId: idle.sessionId, reason: 'idle timeout: no request for 60 s' }],
  );
  t.equal(ended[0]!.id, `idle:${idle.sessionId}`);
  await waitUntil(async () => (await store.getLiveSession(idle.sessionId)) === null, 'the idle session to be projected as ended');
  t.ok(await store.getLiveSession(active.sessionId), 'the used session lives');
  t.ok(await store.getLiveSession(other.sessionId), 'a provider without idle_timeout is never swept');
});

t.test('two replicas sharing bus and store end an idle session with exactly one SessionEnded', async (t) => {
  const { bus, store, begin } = await world(t);
  const { countingBus, appends } = countEnds(bus);
  // idle_timeout 1 s with a 50 ms sweep and grace: real timers, small intervals.
  const config = { providers: [provider('app', { idle_timeout: 1 })] };
  const replicas = [0, 1].map(() => createSessionUpkeep({ cookieKeyId, bus: countingBus, store, config, sweepMs: 50, graceMs: 50 }));
  for (const r of replicas) await r.start();
  t.teardown(async () => {
    for (const r of replicas) await r.stop();
  });
  const s = await begin(started('app'));
  await waitUntil(async () => (await store.getLiveSession(s.sessionId)) === null, 'the idle session to end');
  // Several more intervals: neither replica may end it again.
  await new Promise((r) => setTimeout(r, 300));
  const ended = (await endedEvents(bus)).filter((e) => e.data.sessionId === s.sessionId);
  t.equal(ended.length, 1, 'one SessionEnded in the log');
  t.equal(appends(), 1, 'and one append: one replica took the turn');
});

t.test('two replicas sweeping the same slot at once: one takes the turn, one event', async (t) => {
  const { bus, store, begin } = await world(t);
  let clock = Date.now();
  const config = { providers: [provider('app', { idle_timeout: 60 })] };
  const { countingBus, appends } = countEnds(bus);
  const replicas = [0, 1].map(() => createSessionUpkeep({ cookieKeyId, bus: countingBus, store, config, now: () => clock, sweepMs: 1000, graceMs: 0 }));
  const s = await begin(started('app'));
  clock += 61_000;
  await Promise.all(replicas.map((r) => r.sweepNow()));
  t.same(
    (await endedEvents(bus)).map((e) => e.data.sessionId),
    [s.sessionId],
  );
  t.equal(appends(), 1, 'the other replica found the turn taken');
  clock += 1000;
  await Promise.all(replicas.map((r) => r.sweepNow()));
  t.equal(appends(), 1, 'the next slot finds it ended');
});

t.test('a reload that sets an idle timeout starts sweeping; one that removes it stops', async (t) => {
  const { bus, store, begin } = await world(t);
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('app')] }, sweepMs: 50, graceMs: 50 });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  const s = await begin(started('app', { createdAt: Date.now() - 10_000 }));
  await new Promise((r) => setTimeout(r, 200));
  t.ok(await store.getLiveSession(s.sessionId), 'no idle timeout: never ended');
  await upkeep.reload({ providers: [provider('app', { idle_timeout: 1 })] });
  await waitUntil(async () => (await store.getLiveSession(s.sessionId)) === null, 'the idle session to end after the reload');
  t.same(
    (await endedEvents(bus)).map((e) => e.data.reason),
    ['idle timeout: no request for 1 s'],
  );
});

// ---- reconciler -------------------------------------------------------------------------------------

t.test('a removed provider: its sessions end, the others stay', async (t) => {
  const { bus, store, begin } = await world(t);
  const { lines, logger } = recordingLogger();
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('keep'), provider('gone')] }, logger });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  const kept = await begin(started('keep', { keyId: cookieKeyId(SECRET_A) }));
  const goneCookie = await begin(started('gone', { keyId: cookieKeyId(SECRET_A) }));
  const goneHeader = await begin(started('gone'));
  await upkeep.reload({ providers: [provider('keep')] });
  const ended = await endedEvents(bus);
  t.same(ended.map((e) => e.data.sessionId).sort(), [goneCookie.sessionId, goneHeader.sessionId].sort(), 'cookie and header sessions alike');
  for (const e of ended) {
    t.equal(e.data.reason, 'provider "gone" was removed from the configuration');
    t.equal(e.id, `reconcile:${e.data.sessionId}:removed`);
  }
  await waitUntil(async () => (await store.listLiveSessions()).length === 1, 'the projection to drop them');
  t.ok(await store.getLiveSession(kept.sessionId));
  t.ok(lines.some((l) => l.level === 'info' && /provider "gone" ended/.test(l.msg) && (l.obj as { ended: number }).ended === 2));
  t.notOk(/access-token-value|id-token-value/.test(JSON.stringify(lines)), 'no tokens logged');
});

t.test('a changed cookie secret: that provider cookie sessions end; its header sessions and other providers stay', async (t) => {
  const { bus, store, begin } = await world(t);
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('rotated'), provider('other')] } });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  const oldCookie = await begin(started('rotated', { keyId: cookieKeyId(SECRET_A) }));
  const header = await begin(started('rotated'));
  const other = await begin(started('other', { keyId: cookieKeyId(SECRET_A) }));
  await upkeep.reload({ providers: [provider('rotated', { cookie_secret: SECRET_B }), provider('other')] });
  const ended = await endedEvents(bus);
  t.same(
    ended.map((e) => e.data),
    [{ sessionId: oldCookie.sessionId, reason: 'cookie secret of provider "rotated" changed: cookies signed with the old secret are no longer valid' }],
  );
  t.equal(ended[0]!.id, `reconcile:${oldCookie.sessionId}:${cookieKeyId(SECRET_A)}`);
  const newCookie = await begin(started('rotated', { keyId: cookieKeyId(SECRET_B) }));
  await waitUntil(async () => (await store.getLiveSession(oldCookie.sessionId)) === null, 'the projection to drop it');
  for (const s of [header, other, newCookie]) t.ok(await store.getLiveSession(s.sessionId), s.sessionId);
});

t.test('a reload that changes neither providers nor secrets appends nothing, even where keys disagree', async (t) => {
  const { bus, store, begin } = await world(t);
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('app', { idle_timeout: 600 }), provider('b')] } });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  await begin(started('app', { keyId: cookieKeyId(SECRET_A) }));
  // Recorded after start with a key this config does not have: only a start or a change of this provider looks at it.
  await begin(started('b', { keyId: cookieKeyId(SECRET_B) }));
  const before = await bus.log.lastSeq();
  await upkeep.reload({ providers: [provider('app', { idle_timeout: 300 }), provider('b')] });
  await upkeep.reload({ providers: [provider('app', { idle_timeout: 300 }), provider('b'), provider('new')] });
  t.equal(await bus.log.lastSeq(), before, 'nothing appended');
});

t.test('on start, sessions of unknown providers and of old secrets end (and nothing else)', async (t) => {
  const { bus, store, begin } = await world(t);
  const orphan = await begin(started('gone'));
  const stale = await begin(started('app', { keyId: cookieKeyId(SECRET_B) }));
  const fine = await begin(started('app', { keyId: cookieKeyId(SECRET_A) }));
  const legacy = await begin(started('app'));
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store, config: { providers: [provider('app')] } });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  t.same((await endedEvents(bus)).map((e) => e.data.sessionId).sort(), [orphan.sessionId, stale.sessionId].sort());
  await waitUntil(async () => (await store.listLiveSessions()).length === 2, 'the projection to drop them');
  t.ok(await store.getLiveSession(fine.sessionId));
  t.ok(await store.getLiveSession(legacy.sessionId));
});

t.test('two replicas reloading the same change together append one event per session', async (t) => {
  const { bus, store, begin } = await world(t);
  const config = { providers: [provider('app'), provider('gone')] };
  const replicas = [0, 1].map(() => createSessionUpkeep({ cookieKeyId, bus, store, config }));
  for (const r of replicas) await r.start();
  t.teardown(async () => {
    for (const r of replicas) await r.stop();
  });
  const sessions = [await begin(started('gone')), await begin(started('app', { keyId: cookieKeyId(SECRET_A) }))];
  const next = { providers: [provider('app', { cookie_secret: SECRET_B })] };
  await Promise.all(replicas.map((r) => r.reload(next)));
  t.same((await endedEvents(bus)).map((e) => e.data.sessionId).sort(), sessions.map((s) => s.sessionId).sort());
});

t.test('a reconcile that fails (store down) is retried until it succeeds', async (t) => {
  const { bus, store, begin } = await world(t);
  const orphan = await begin(started('gone'));
  let failures = 2;
  const flaky: SessionStore = Object.create(store) as SessionStore;
  flaky.forEachLiveSessionPage = async (onPage, size) => {
    if (failures > 0) {
      failures -= 1;
      throw new Error('store unreachable');
    }
    return store.forEachLiveSessionPage(onPage, size);
  };
  flaky.waitForApplied = (seq, ms) => store.waitForApplied(seq, ms);
  const { lines, logger } = recordingLogger();
  const upkeep = createSessionUpkeep({ cookieKeyId, bus, store: flaky, config: { providers: [provider('app')] }, logger, reconcileRetryMs: 20 });
  await upkeep.start();
  t.teardown(() => upkeep.stop());
  await waitUntil(async () => (await store.getLiveSession(orphan.sessionId)) === null, 'the retried reconcile to end the orphan');
  t.equal(lines.filter((l) => /reconcile with the config failed/.test(l.msg)).length, 2);
});

t.test('changedProviders: removed or new secret only', async (t) => {
  const prev = [provider('a'), provider('b'), provider('c', { idle_timeout: 10 })];
  const next = [provider('a', { idle_timeout: 99 }), provider('c', { cookie_secret: SECRET_B }), provider('d')];
  t.same([...changedProviders(prev, next)].sort(), ['b', 'c']);
});
