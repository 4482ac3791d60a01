// The session service: follows the event log and projects it into the session store (single writer), resuming after any failure.
import type { EventLog, Subscription } from '@portcullis/bus';
import type { SessionProjection, SessionReader } from '@portcullis/store';

/** The store error code that means "a rebuild holds the projection" (from @portcullis/store's StoreErrorCode). */
const REBUILDING_CODE = 'PORTCULLIS_STORE_REBUILDING';
/** The store error code that means "Redis lost the projection" (StoreErrorCode.ProjectionLost). */
const PROJECTION_LOST_CODE = 'PORTCULLIS_STORE_PROJECTION_LOST';

/** How the service waits before resubscribing after a failure. */
export interface RetryPolicy {
  /** First wait after a failure (ms); doubles on each failure in a row. Default 250. */
  initialMs: number;
  /** Cap of the doubling wait (ms). Default 5000. */
  maxMs: number;
  /** Wait while the store says a rebuild is in progress (ms): polled at a steady pace, not backed off. Default 500. */
  rebuildingPollMs: number;
}

/** What the service reports with each failure it recovers from. */
export interface RetryNotice {
  /** Milliseconds until the next attempt. */
  retryInMs: number;
  /** True when the store refused because a rebuild holds the projection (expected during `sessions rebuild`). */
  rebuilding: boolean;
  /** Failures in a row, this one included. */
  attempt: number;
}

export interface SessionServiceDeps {
  log: EventLog;
  store: SessionProjection & Pick<SessionReader, 'appliedSeq'>;
  /** Called for every applied event (metrics, logs). */
  onApplied?: (seq: number, type: string) => void;
  /**
   * Called for every failure (store down, rebuild in progress, log subscription lost, ...). The service
   * does not stop: it resubscribes from the store's applied sequence after `notice.retryInMs`.
   */
  onError?: (err: unknown, notice: RetryNotice) => void;
  /** Back-off; defaults: 250 ms doubling to 5 s, 500 ms while rebuilding. */
  retry?: Partial<RetryPolicy>;
  /**
   * Rebuilds the projection from the whole log under the store's rebuild marker (`sessions rebuild`),
   * so that no half-replayed projection is ever read. Called instead of replaying from seq 1 unguarded:
   * when the store lost the projection (PORTCULLIS_STORE_PROJECTION_LOST: Redis restarted empty), and
   * when it holds nothing while the log does. Without it (the in-memory store, which cannot lose its
   * data on its own) the service replays from the store's applied sequence as before.
   */
  rebuild?: (onBegun: () => void) => Promise<unknown>;
  /**
   * Whether a rebuild (`sessions rebuild`, or another replica's) holds the projection right now. Its
   * drop of the projection is not a loss: without this, the idle loss check would report one and
   * start a rebuild of its own, which then only waits for the running one.
   */
  rebuildInProgress?: () => Promise<boolean>;
  /** Called when this service's rebuild has begun (why; once it holds the marker) and when it ends, for the logs. */
  onRebuild?: (phase: 'started' | 'finished', detail: string) => void;
  /** How often an idle projector checks the store for a lost projection (ms; default 2000). */
  lossCheckEveryMs?: number;
}

export interface SessionService {
  /** Subscribes after the store's applied sequence; rejects only when that first read fails. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULT_RETRY: RetryPolicy = { initialMs: 250, maxMs: 5_000, rebuildingPollMs: 500 };
/**
 * With `rebuild`, how often an idle projector checks that the store still holds what it applied: a
 * Redis restarted empty while no event arrives would otherwise go unnoticed (and gateways answer 503
 * for every session read) until the next event.
 */
const LOSS_CHECK_EVERY_MS = 2_000;

/**
 * Builds the projector. It always resumes at `store.appliedSeq() + 1`, so a restart (or a resubscribe
 * after an error) replays nothing twice and skips nothing — including after a rebuild, which moves the
 * applied sequence while this service waits.
 */
export function createSessionService(deps: SessionServiceDeps): SessionService {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...deps.retry };
  let sub: Subscription | undefined;
  let running = false;
  let failures = 0;
  /** Failures in a row other than "rebuilding" (those are polled at a steady pace and do not grow the wait). */
  let backoffStep = 0;
  let timer: NodeJS.Timeout | undefined;
  /** The recovery in progress (closing the failed subscription, then waiting), so stop() can await it. */
  let recovering: Promise<void> | undefined;

  /** Set by a lost projection: the next subscribe rebuilds first. */
  let lost = false;
  /** The highest applied sequence seen in the store: it never goes down unless the store lost it. */
  let highest = 0;
  let lossCheck: NodeJS.Timeout | undefined;
  let checking = false;

  const subscribe = async (): Promise<void> => {
    let from = (await deps.store.appliedSeq()) + 1;
    highest = from - 1;
    if (!running) return;
    // Replaying from seq 1 onto an empty projection would let gateways read it half-replayed (a
    // session whose sign-out is not replayed yet looks live): rebuild under the marker instead.
    if (deps.rebuild && (lost || (from === 1 && (await deps.log.lastSeq()) > 0))) {
      const why = lost ? 'Redis lost the projection' : 'the projection is empty while the log holds events';
      try {
        // Reported once the marker is held: another rebuild holding it is a wait ("paused"), not this one.
        await deps.rebuild(() => deps.onRebuild?.('started', why));
      } catch (err) {
        // Retried like any failure (never fatal, also at start): "rebuilding" when another replica rebuilds first.
        fail(err, undefined);
        return;
      }
      lost = false;
      from = (await deps.store.appliedSeq()) + 1;
      highest = from - 1;
      deps.onRebuild?.('finished', `rebuilt up to #${from - 1} (${why})`);
      if (!running) return;
    }
    let current: Subscription | undefined;
    let failedEarly = false;
    current = deps.log.subscribe(
      from,
      async (e) => {
        await deps.store.apply(e);
        highest = Math.max(highest, e.seq);
        failures = 0;
        backoffStep = 0;
        deps.onApplied?.(e.seq, e.event.type);
      },
      (err) => {
        // A bus that reports before subscribe() returned leaves `current` unset: closed below instead.
        if (current === undefined) failedEarly = true;
        fail(err, current);
      },
    );
    if (failedEarly) await current.close().catch(() => {});
    else sub = current;
  };

  /** Reports the failure, drops the failed subscription and schedules a fresh one. */
  const fail = (err: unknown, failed: Subscription | undefined): void => {
    if (!running) return;
    failures += 1;
    if ((err as { code?: unknown } | null)?.code === PROJECTION_LOST_CODE) lost = true;
    const rebuilding = (err as { code?: unknown } | null)?.code === REBUILDING_CODE;
    // Another rebuild (a replica that noticed first, or `sessions rebuild`) restores the projection.
    if (rebuilding) lost = false;
    if (!rebuilding) backoffStep += 1;
    const retryInMs = rebuilding ? policy.rebuildingPollMs : Math.min(policy.maxMs, policy.initialMs * 2 ** (backoffStep - 1));
    deps.onError?.(err, { retryInMs, rebuilding, attempt: failures });
    if (sub === failed) sub = undefined;
    // Not awaited here: a subscription's onError runs inside its delivery loop, which close() waits for.
    recovering = (async () => {
      await failed?.close().catch(() => {});
      if (!running) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (running) subscribe().catch((e: unknown) => fail(e, undefined));
      }, retryInMs);
    })();
  };

  /** While subscribed: a store whose applied sequence went down lost the projection. */
  const checkForLoss = async (): Promise<void> => {
    const current = sub;
    if (checking || current === undefined) return;
    checking = true;
    try {
      const applied = await deps.store.appliedSeq();
      // A rebuild holding the marker dropped the projection itself and is refilling it: not a loss.
      if (running && sub === current && applied < highest && !(await deps.rebuildInProgress?.())) {
        // Nothing left: rebuilt from the whole log. Some left (a failover to a replica that lagged): the
        // resubscription replays what it misses, from its applied sequence on.
        const err = new Error(`the store's applied sequence went from #${highest} back to #${applied}: Redis lost ${applied === 0 ? 'the projection' : 'its latest writes'}`);
        fail(applied === 0 ? Object.assign(err, { code: PROJECTION_LOST_CODE }) : err, current);
      }
    } catch {
      // The store is unreachable: the next apply reports it.
    } finally {
      checking = false;
    }
  };

  return {
    async start() {
      running = true;
      try {
        await subscribe();
      } catch (err) {
        running = false;
        throw err;
      }
      if (deps.rebuild) lossCheck = setInterval(() => void checkForLoss(), deps.lossCheckEveryMs ?? LOSS_CHECK_EVERY_MS);
    },
    async stop() {
      running = false;
      clearInterval(lossCheck);
      clearTimeout(timer);
      timer = undefined;
      await recovering;
      await sub?.close();
      sub = undefined;
    },
  };
}
