// The session service keeps projecting through store failures: it backs off, resubscribes from the applied sequence, and never stops.
import { createMemoryBus } from '@portcullis/bus';
import { createEvent, type SequencedEvent, type SessionEvent } from '@portcullis/events';
import { type SessionStore, StoreError, StoreErrorCode, createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { type RetryNotice, createSessionService } from './app.ts';

const signedOut = (sub: string): SessionEvent => createEvent('UserSignedOut', { sub, provider: 'app', reason: 'sign_out' });

/**
 * A memory store whose apply fails with `errors` (one per call, in order) before it starts working.
 * `handed`: every seq passed to apply; `applied`: those that changed the projection; `inner`: the store itself.
 */
function flakyStore(errors: unknown[]): { store: SessionStore; applied: number[]; handed: number[]; inner: SessionStore } {
  const inner = createMemoryStore();
  const applied: number[] = [];
  const handed: number[] = [];
  const store: SessionStore = {
    appliedSeq: () => inner.appliedSeq(),
    getLiveSession: (id, now) => inner.getLiveSession(id, now),
    listLiveSessions: (f, now) => inner.listLiveSessions(f, now),
    waitForApplied: (seq, ms) => inner.waitForApplied(seq, ms),
    consumeOnce: (k, ms) => inner.consumeOnce(k, ms),
    releaseOnce: (k) => inner.releaseOnce(k),
    settleOnce: (k, outcome) => inner.settleOnce(k, outcome),
    onceOutcome: (k) => inner.onceOutcome(k),
    dueForRefresh: (now, limit) => inner.dueForRefresh(now, limit),
    postponeRefresh: (id, at) => inner.postponeRefresh(id, at),
    recordActivity: (entries) => inner.recordActivity(entries),
    lastActivity: (id) => inner.lastActivity(id),
    idleSessions: (provider, before, limit) => inner.idleSessions(provider, before, limit),
    forEachLiveSessionPage: (onPage, size) => inner.forEachLiveSessionPage(onPage, size),
    idpSessionEnded: (issuer, sid) => inner.idpSessionEnded(issuer, sid),
    close: () => inner.close(),
    async apply(e: SequencedEvent) {
      handed.push(e.seq);
      const err = errors.shift();
      if (err !== undefined) throw err;
      const before = await inner.appliedSeq();
      await inner.apply(e);
      if ((await inner.appliedSeq()) > before) applied.push(e.seq);
    },
  };
  return { store, applied, handed, inner };
}

async function waitUntil(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a projection that throws a few times then works: every event is applied once, in order, and each failure is reported', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const failures = [
    new StoreError(StoreErrorCode.Unavailable, 'redis down'),
    new StoreError(StoreErrorCode.Unavailable, 'redis down'),
    new StoreError(StoreErrorCode.Rebuilding, 'rebuilding'),
  ];
  const { store, applied, handed } = flakyStore([...failures]);
  const notices: Array<{ err: unknown; notice: RetryNotice }> = [];
  const service = createSessionService({
    log: bus.log,
    store,
    onError: (err, notice) => notices.push({ err, notice }),
    retry: { initialMs: 20, maxMs: 1000, rebuildingPollMs: 30 },
  });
  for (let i = 1; i <= 5; i++) await bus.log.append(signedOut(`user-${i}`));
  await service.start();
  t.teardown(() => service.stop());
  await waitUntil(async () => (await store.appliedSeq()) === 5, 'the first five events');
  for (let i = 6; i <= 8; i++) await bus.log.append(signedOut(`user-${i}`));
  await waitUntil(async () => (await store.appliedSeq()) === 8, 'events appended after the recovery');
  t.same(applied, [1, 2, 3, 4, 5, 6, 7, 8], 'nothing skipped, nothing applied twice');
  t.same(handed, [1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8], 'the failed event is retried, then the log continues in order');
  t.same(
    notices.map((n) => n.err),
    failures,
    'every failure reported through onError',
  );
  t.same(
    notices.map((n) => n.notice),
    [
      { retryInMs: 20, rebuilding: false, attempt: 1 },
      { retryInMs: 40, rebuilding: false, attempt: 2 },
      { retryInMs: 30, rebuilding: true, attempt: 3 },
    ],
    'the wait doubles on failures in a row; a rebuild is polled at its own steady pace',
  );
});

t.test('the default back-off starts at 250 ms, doubles to a 5 s cap, and polls a rebuild every 500 ms', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const notices: RetryNotice[] = [];
  // A store that always fails: the service keeps retrying and never gives up.
  const { store } = flakyStore(Array.from({ length: 100 }, () => new StoreError(StoreErrorCode.Unavailable, 'down')));
  await bus.log.append(signedOut('u'));
  const service = createSessionService({ log: bus.log, store, onError: (_e, n) => notices.push(n) });
  await service.start();
  await waitUntil(() => notices.length >= 2, 'two failures', 5_000);
  await service.stop();
  t.same(
    notices.slice(0, 2).map((n) => n.retryInMs),
    [250, 500],
  );
  const { store: rebuilding } = flakyStore([new StoreError(StoreErrorCode.Rebuilding, 'rebuilding')]);
  const polled: RetryNotice[] = [];
  const second = createSessionService({ log: bus.log, store: rebuilding, onError: (_e, n) => polled.push(n) });
  await second.start();
  t.teardown(() => second.stop());
  await waitUntil(() => polled.length === 1, 'the rebuilding refusal');
  t.equal(polled[0]!.retryInMs, 500);
  t.equal(polled[0]!.rebuilding, true);
  await waitUntil(async () => (await rebuilding.appliedSeq()) === 1, 'applied once the rebuild is over');
});

t.test('the wait grows to its cap and never beyond', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const notices: RetryNotice[] = [];
  const { store } = flakyStore(Array.from({ length: 100 }, () => new Error('boom')));
  await bus.log.append(signedOut('u'));
  const service = createSessionService({ log: bus.log, store, onError: (_e, n) => notices.push(n), retry: { initialMs: 1, maxMs: 8 } });
  await service.start();
  await waitUntil(() => notices.length >= 6, 'six failures');
  await service.stop();
  t.same(
    notices.slice(0, 6).map((n) => n.retryInMs),
    [1, 2, 4, 8, 8, 8],
  );
});

t.test('resubscribing starts after the store’s applied sequence, so events applied by someone else meanwhile are not applied again', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const { store, handed, inner } = flakyStore([new StoreError(StoreErrorCode.Rebuilding, 'rebuilding')]);
  for (let i = 1; i <= 3; i++) await bus.log.append(signedOut(`user-${i}`));
  let sawError = false;
  const service = createSessionService({
    log: bus.log,
    store,
    onError: () => {
      sawError = true;
    },
    retry: { rebuildingPollMs: 200 },
  });
  await service.start();
  t.teardown(() => service.stop());
  await waitUntil(() => sawError, 'the refusal');
  // While the service waits, a rebuild (here: a direct apply) brings the projection to seq 2.
  await inner.apply({ seq: 1, event: signedOut('user-1') });
  await inner.apply({ seq: 2, event: signedOut('user-2') });
  await waitUntil(async () => (await store.appliedSeq()) === 3, 'the rest of the log');
  t.same(handed, [1, 3], 'the refused event, then straight on from applied + 1');
});

t.test('stop() during a back-off cancels the retry: nothing is applied after it', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const { store } = flakyStore([new Error('once')]);
  let errors = 0;
  const service = createSessionService({
    log: bus.log,
    store,
    onError: () => {
      errors += 1;
    },
    retry: { initialMs: 100 },
  });
  await bus.log.append(signedOut('u'));
  await service.start();
  await waitUntil(() => errors === 1, 'the failure');
  await service.stop();
  await new Promise((r) => setTimeout(r, 200));
  t.equal(await store.appliedSeq(), 0, 'no resubscribe after stop');
});

t.test('start() rejects when the applied sequence cannot be read at all', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const { store } = flakyStore([]);
  const broken: SessionStore = { ...store, appliedSeq: () => Promise.reject(new StoreError(StoreErrorCode.Unavailable, 'down')) };
  const service = createSessionService({ log: bus.log, store: broken });
  await t.rejects(service.start(), { code: 'PORTCULLIS_STORE_UNAVAILABLE' });
});

t.test("another rebuild's drop of the projection is not a loss; a rebuild reports 'started' only once it holds the marker", async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const { store } = flakyStore([]);
  // What Redis says around a rebuild: the marker, and the applied sequence the drop took away.
  let marker = false;
  let dropped = false;
  const appliedSeq = store.appliedSeq;
  store.appliedSeq = async () => (dropped ? 0 : appliedSeq());
  const notices: unknown[] = [];
  const phases: string[] = [];
  let attempts = 0;
  /** Rebuild attempts that find the marker held by another rebuild (which then finishes). */
  let othersFirst = 0;
  const service = createSessionService({
    log: bus.log,
    store,
    onError: (err) => notices.push(err),
    onRebuild: (phase, detail) => phases.push(`${phase}: ${detail}`),
    rebuild: async (onBegun) => {
      attempts += 1;
      // Like rebuildProjection: the marker first; held by another rebuild, it refuses before anything begins.
      if (marker || othersFirst > 0) {
        othersFirst -= 1;
        throw new StoreError(StoreErrorCode.Rebuilding, 'another rebuild of the projection is in progress');
      }
      onBegun();
      dropped = false;
    },
    rebuildInProgress: async () => marker,
    lossCheckEveryMs: 20,
    retry: { initialMs: 20, maxMs: 100, rebuildingPollMs: 20 },
  });
  await service.start();
  t.teardown(() => service.stop());
  for (let i = 1; i <= 3; i++) await bus.log.append(signedOut(`user-${i}`));
  await waitUntil(async () => (await store.appliedSeq()) === 3, 'the log projected');

  // `sessions rebuild` takes the marker and drops the projection; many loss checks run meanwhile.
  marker = true;
  dropped = true;
  const after = Date.now() + 300;
  await waitUntil(() => Date.now() > after, 'some fifteen loss checks');
  t.same(notices, [], 'nothing reported while the other rebuild holds the projection');
  t.equal(attempts, 0, 'no rebuild of its own attempted');
  marker = false;
  dropped = false;
  await bus.log.append(signedOut('user-4'));
  await waitUntil(async () => (await store.appliedSeq()) === 4, 'projecting again after the rebuild');

  // The same drop with no marker is a loss: reported and rebuilt. Another rebuild gets the marker
  // first twice: waited for, and 'started' is said once, by the attempt that held the marker.
  othersFirst = 2;
  dropped = true;
  await waitUntil(() => phases.length === 2, 'the rebuild reported');
  t.match(String(notices[0]), /went from #4 back to #0/, 'the loss is reported');
  t.equal(attempts, 3, 'two attempts found the marker held, the third held it');
  t.match(phases[0], /^started: /);
  t.match(phases[1], /^finished:/);
});
