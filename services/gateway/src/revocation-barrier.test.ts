// The sign-out barrier: which gateways the collector waits for, what counts as an acknowledgement, and the lease.
import { type RequestBus, createMemoryBus } from '@portcullis/bus';
import { createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { BARRIER_SUBJECTS, GatewayBarrierMember, PresenceTracker, collectRevocationAcks } from './revocation-barrier.ts';
import { CachedSessionReader } from './session-cache.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An embedded bus with a presence tracker listening on it, both closed at the end of the test. */
function busWithPresence(t: import('tap').Test) {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const presence = new PresenceTracker(bus.rpc);
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
