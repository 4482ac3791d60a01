// The session service: follows the event log and projects it into the session store (single writer), resuming after any failure.
import type { EventLog, Subscription } from '@portcullis/bus';
import type { SessionProjection, SessionReader } from '@portcullis/store';

/** The store error code that means "a rebuild holds the projection" (from @portcullis/store's StoreErrorCode). */
const REBUILDING_CODE = 'PORTCULLIS_STORE_REBUILDING';

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
}

export interface SessionService {
  /** Subscribes after the store's applied sequence; rejects only when that first read fails. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULT_RETRY: RetryPolicy = { initialMs: 250, maxMs: 5_000, rebuildingPollMs: 500 };

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

  const subscribe = async (): Promise<void> => {
    const from = (await deps.store.appliedSeq()) + 1;
    if (!running) return;
    let current: Subscription | undefined;
    let failedEarly = false;
    current = deps.log.subscribe(
      from,
      async (e) => {
        await deps.store.apply(e);
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
    const rebuilding = (err as { code?: unknown } | null)?.code === REBUILDING_CODE;
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

  return {
    async start() {
      running = true;
      try {
        await subscribe();
      } catch (err) {
        running = false;
        throw err;
      }
    },
    async stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
      await recovering;
      await sub?.close();
      sub = undefined;
    },
  };
}
