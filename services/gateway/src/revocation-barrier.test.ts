// The sign-out barrier: which gateways the collector waits for, what counts as an acknowledgement, and the lease.
import { type RequestBus, createMemoryBus } from '@portcullis/bus';
import { createEvent } from '@portcullis/events';
import { createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { BARRIER_SUBJECTS, GatewayBarrierMember, PresenceTracker, collectRevocationAcks } from './revocation-barrier.ts';
import { CachedSessionReader } from './session-cache.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An embedded bus with a presence tracker listening on it, both closed at the end of the test. */
function busWithPresence(t: import('tap').Test) {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  // These tests announce every gateway themselves: the list is complete at once.
  const presence = new PresenceTracker(bus.rpc, { warmupMs: 0 });
  presence.start();
  t.teardown(() => presence.stop());
  return { bus, presence };
}

t.test('an ack from a gateway the presence list does not know yet does not stand in for a known one that is still applying', async (t) => {
  const { bus, presence } = busWithPresence(t);
  // A gateway that just joined answers at once; the known one needs a moment to apply the sign-out.
  const subs = [
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => ({ id: 'newcomer', applied: true })),
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => {
      await sleep(150);
      return { id: 'known', applied: true };
    }),
  ];
  t.teardown(() => Promise.all(subs.map((s) => s.close())));
  bus.rpc.publish(BARRIER_SUBJECTS.heartbeat, { id: 'known' });
  await sleep(10);
  t.same(presence.alive(), ['known']);
  const started = Date.now();
  t.equal(await collectRevocationAcks(bus.rpc, presence, 7, 2000), true, 'the known gateway acknowledged: propagated');
  t.ok(Date.now() - started >= 140, 'waited for the known gateway, not just for as many answers as it expected');
});

t.test('a known gateway that never answers makes the barrier bounded, after the bound', async (t) => {
  const { bus, presence } = busWithPresence(t);
  const subs = [
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => ({ id: 'other', applied: true })),
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => {
      await sleep(1000);
      return { id: 'silent', applied: true };
    }),
  ];
  t.teardown(() => Promise.all(subs.map((s) => s.close())));
  bus.rpc.publish(BARRIER_SUBJECTS.heartbeat, { id: 'silent' });
  await sleep(10);
  const started = Date.now();
  t.equal(await collectRevocationAcks(bus.rpc, presence, 7, 200), false);
  t.ok(Date.now() - started >= 190, 'waited the bound');
});

t.test('the lease runs on a monotonic clock: a wall clock stepped back does not keep a cut-off gateway trusting its cache', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const store = createMemoryStore();
  const cache = new CachedSessionReader({ log: bus.log, store, revocationMemoryMs: 60_000 });
  await cache.start();
  t.teardown(() => cache.stop());
  // Cut off from the bus: no round trip comes back, so the lease is never renewed.
  const rpc: RequestBus = {
    request: (s, p, ms) => bus.rpc.request(s, p, ms),
    serve: (s, h) => bus.rpc.serve(s, h),
    listen: (s, h) => bus.rpc.listen(s, h),
    publish: (s, p) => bus.rpc.publish(s, p),
    gather: (s, p, o) => bus.rpc.gather(s, p, o),
    ping: () => new Promise<void>(() => {}),
  };
  const member = new GatewayBarrierMember({ id: 'g', rpc, cache, boundMs: 100 });
  member.start();
  t.teardown(() => member.stop());
  t.equal(cache.trusted, true);
  const realNow = Date.now;
  // NTP steps the wall clock back an hour.
  const steppedBack = realNow() - 3_600_000;
  const since = performance.now();
  Date.now = () => steppedBack + (performance.now() - since);
  t.teardown(() => {
    Date.now = realNow;
  });
  await sleep(200);
  t.equal(cache.trusted, false, 'the lease lapsed after the bound, whatever the wall clock says');
});

/**
 * A gateway on `bus` that can be cut off from it without noticing (no disconnect reported): from then
 * on nothing reaches it (log, barrier) and nothing it sends arrives (heartbeats, pings never answer).
 */
async function cuttableGateway(t: import('tap').Test, bus: ReturnType<typeof createMemoryBus>, boundMs: number) {
  let cut = false;
  const store = createMemoryStore();
  t.teardown(() => store.close());
  const log: import('@portcullis/bus').EventLog = {
    append: (e) => bus.log.append(e),
    lastSeq: () => bus.log.lastSeq(),
    subscribe: (from, h, onError) => bus.log.subscribe(from, (e) => (cut ? undefined : h(e)), onError),
  };
  const cache = new CachedSessionReader({ log, store, revocationMemoryMs: 60_000 });
  await cache.start();
  t.teardown(() => cache.stop());
  const rpc: RequestBus = {
    request: (s, p, ms) => bus.rpc.request(s, p, ms),
    serve: (s, h) => bus.rpc.serve(s, h),
    listen: (s, h) => bus.rpc.listen(s, (p) => (cut ? new Promise(() => {}) : h(p))),
    publish: (s, p) => {
      if (!cut) bus.rpc.publish(s, p);
    },
    gather: (s, p, o) => bus.rpc.gather(s, p, o),
    ping: () => (cut ? new Promise<void>(() => {}) : bus.rpc.ping()),
  };
  const member = new GatewayBarrierMember({ id: 'cut-off', rpc, cache, boundMs });
  member.start();
  t.teardown(() => member.stop());
  return {
    cache,
    cutOff: () => {
      cut = true;
    },
  };
}

t.test('with a bound longer than the presence TTL, a sign-out still waits for a silently cut-off gateway whose lease holds', async (t) => {
  const boundMs = 4000;
  const { bus, presence } = busWithPresence(t);
  const g = await cuttableGateway(t, bus, boundMs);
  const seq = await bus.log.append(
    createEvent('SessionStarted', {
      sessionId: 'sess-1',
      provider: 'app',
      issuer: 'http://idp',
      sub: 'alice',
      sid: null,
      claims: {},
      accessToken: 'at',
      idToken: null,
      jwksUri: '',
      createdAt: Date.now(),
      expiresAt: Date.now() + 60_000,
    }),
  );
  t.ok(await g.cache.waitLocalApplied(seq, 1000));
  await sleep(20);
  t.same(presence.alive(), ['cut-off']);
  g.cutOff();
  // Past the presence TTL (3 s), still well within the gateway's lease (the bound).
  await sleep(3100);
  const out = await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }));
  const acked = await collectRevocationAcks(bus.rpc, presence, out, boundMs);
  // The sign-out answers now: the cut-off gateway must not accept alice's session any more.
  const served = g.cache.peekLiveSession('sess-1');
  t.notOk(acked && served, 'a sign-out answered as propagated while a gateway still serves the session from its cache');
});

t.test('a gateway that has just started waits for the running gateways it has not heard from yet', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  // A gateway running for a while: it heartbeats every second and needs a moment to apply a sign-out.
  let otherApplied = false;
  // (This gateway's own barrier listener is registered first only because the embedded bus checks
  // the answers in listener order; over NATS the first answer to arrive is checked first.)
  const subs = [
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => ({ id: 'self', applied: true })),
    bus.rpc.listen(BARRIER_SUBJECTS.barrier, async () => {
      await sleep(150);
      otherApplied = true;
      return { id: 'other', applied: true };
    }),
  ];
  bus.rpc.publish(BARRIER_SUBJECTS.heartbeat, { id: 'other' });
  const beats = setInterval(() => bus.rpc.publish(BARRIER_SUBJECTS.heartbeat, { id: 'other' }), 1000);
  t.teardown(() => clearInterval(beats));
  await sleep(50);
  // This gateway starts (as start-portcullis wires it) and serves a sign-out before the other's next beat.
  const presence = new PresenceTracker(bus.rpc);
  presence.start();
  t.teardown(() => presence.stop());
  t.teardown(() => Promise.all(subs.map((s) => s.close())));
  bus.rpc.publish(BARRIER_SUBJECTS.heartbeat, { id: 'self' });
  await sleep(10);
  const acked = await collectRevocationAcks(bus.rpc, presence, 7, 500);
  t.ok(otherApplied || !acked, 'not answered as propagated before the running gateway applied the sign-out');
});
