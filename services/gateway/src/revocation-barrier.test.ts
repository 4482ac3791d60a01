// The sign-out barrier's collector: which gateways it waits for, and what counts as their acknowledgement.
import { createMemoryBus } from '@portcullis/bus';
import t from 'tap';
import { BARRIER_SUBJECTS, PresenceTracker, collectRevocationAcks } from './revocation-barrier.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('an ack from a gateway the presence list does not know yet does not stand in for a known one that is still applying', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const presence = new PresenceTracker(bus.rpc);
  presence.start();
  t.teardown(() => presence.stop());
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
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const presence = new PresenceTracker(bus.rpc);
  presence.start();
  t.teardown(() => presence.stop());
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
