// The session service's upkeep beside the projector: activity reports, the idle sweeper and the config reconciler.
import type { EventLog, RequestBus, Subscription } from '@portcullis/bus';
import type { OnceStore, SessionReader, SessionUpkeep } from '@portcullis/store';
import { serveActivityReports } from './activity-server.ts';
import { activityIntervalMs } from '@portcullis/config';
import { type UpkeepProvider, sweepIdleSessions } from './idle-sweeper.ts';
import { changedProviders, reconcileSessions } from './reconciler.ts';

/** Structured logger (pino-compatible subset): object first, then a short message. */
export interface UpkeepLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

/** Dependencies of {@link createSessionUpkeep}. */
export interface SessionUpkeepDeps {
  bus: { log: EventLog; rpc: Pick<RequestBus, 'serve'> };
  store: Pick<SessionUpkeep, 'recordActivity' | 'idleSessions'> &
    OnceStore &
    Pick<SessionReader, 'waitForApplied' | 'appliedSeq'> &
    Pick<SessionUpkeep, 'forEachLiveSessionPage'>;
  /** The running config (only `providers` is read); replaced by `reload`. */
  config: { providers: readonly UpkeepProvider[] };
  /**
   * The fingerprint sessions record of the cookie secret that signed them: pass `cookieKeyId` from
   * @portcullis/protocol (the one the auth service uses for SessionStarted.keyId).
   */
  cookieKeyId: (secret: string) => string;
  logger?: UpkeepLogger;
  /** Sweep interval (ms); default min(15 s, smallest idle_timeout / 5), recomputed on reload. */
  sweepMs?: number;
  /**
   * How long after its idle timeout a session is still spared, for uses a gateway has not reported
   * yet (ms); default the gateways' report interval, min(15 s, smallest idle_timeout / 5).
   */
  graceMs?: number;
  /** Wait before retrying a reconcile that failed (store or log down), ms. Default 5000. */
  reconcileRetryMs?: number;
  /** Clock (unix ms); default Date.now. */
  now?: () => number;
  /** Sessions this upkeep ended, by provider and cause (metrics). */
  onEnded?: (provider: string, cause: 'idle' | 'provider_removed' | 'cookie_secret_changed' | 'issuer_changed', count: number) => void;
}

/** The running upkeep. */
export interface SessionUpkeepService {
  /** Serves activity reports, reconciles every live session with the config, and starts sweeping. */
  start(): Promise<void>;
  /** Stops serving and sweeping; waits for a sweep or reconcile under way. */
  stop(): Promise<void>;
  /**
   * Follows a new (validated) config: the intervals are recomputed, and the sessions of providers
   * that were removed or whose cookie secret changed are reconciled. Others are never touched.
   * Resolves once that reconcile is done (or failed: it is then retried in the background). Before
   * start (or after stop) only the config is replaced.
   */
  reload(config: { providers: readonly UpkeepProvider[] }): Promise<void>;
  /** Runs one idle sweep now (it still takes the cluster-wide turn of the current slot). */
  sweepNow(): Promise<void>;
}

const DEFAULT_RECONCILE_RETRY_MS = 5_000;
const UNUSED_INTERVAL_MS = 15_000;

/**
 * Builds the upkeep that runs beside the projector ({@link createSessionService}) in each session
 * service replica. Every replica serves activity reports (one replica per report), sweeps when it
 * wins the interval's turn, and reconciles on start and reload with deterministic event ids, so any
 * number of replicas end each session once.
 */
export function createSessionUpkeep(deps: SessionUpkeepDeps): SessionUpkeepService {
  const log = deps.logger;
  const now = deps.now ?? Date.now;
  let providers = deps.config.providers;
  let running = false;
  let served: Subscription | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  let reconciling: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  /** The latest sweep failed (store unreachable): the next one first checks that the store answers again. */
  let storeFailed = false;
  /**
   * Sweeps end nothing before this (unix ms). While the store was down, gateways kept the uses it
   * could not record and send them with their next report, one report interval (the grace) after it
   * answers again, plus the report's own time: until then the store holds stale last uses, and a
   * session in use all along would look idle.
   */
  let holdUntil = 0;
  /** Providers (or everything) a failed reconcile still owes a look at. */
  let owed: 'all' | Set<string> = new Set();

  const sweepMs = () => deps.sweepMs ?? activityIntervalMs(providers) ?? UNUSED_INTERVAL_MS;
  const graceMs = () => deps.graceMs ?? activityIntervalMs(providers) ?? 0;
  const hasIdleTimeouts = () => providers.some((p) => p.idle_timeout !== null);

  const sweep = async (): Promise<void> => {
    if (!hasIdleTimeouts()) return;
    try {
      if (storeFailed) {
        await deps.store.appliedSeq();
        storeFailed = false;
        holdUntil = now() + graceMs() + sweepMs();
        log?.info({ hold_ms: holdUntil - now() }, 'the store answers again; idle sessions are ended once the gateways reported the uses it missed');
      }
      if (now() < holdUntil) return;
      const result = await sweepIdleSessions({ log: deps.bus.log, store: deps.store }, providers, { now: now(), sweepMs: sweepMs(), graceMs: graceMs() });
      for (const [provider, ended] of Object.entries(result.ended)) {
        const p = providers.find((x) => x.name === provider);
        log?.info({ provider, ended, idle_timeout_s: p?.idle_timeout }, 'idle sessions ended');
        deps.onEnded?.(provider, 'idle', ended);
      }
    } catch (err) {
      storeFailed = true;
      log?.warn({ err }, 'idle sweep failed; retrying on the next interval (is the store reachable?)');
    }
  };

  const sweepOnce = (): Promise<void> => {
    sweeping ??= sweep().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  };

  const schedule = (): void => {
    clearTimeout(sweepTimer);
    sweepTimer = undefined;
    if (!running || !hasIdleTimeouts()) return;
    sweepTimer = setTimeout(() => {
      void sweepOnce().then(() => {
        if (running) schedule();
      });
    }, sweepMs());
    sweepTimer.unref();
  };

  const reconcile = async (scope: 'all' | Set<string>): Promise<void> => {
    // Merge with what a failed attempt still owes; the scope is always judged against the current config.
    if (scope === 'all' || owed === 'all') owed = 'all';
    else for (const name of scope) owed.add(name);
    const todo = owed;
    owed = new Set();
    if (todo !== 'all' && todo.size === 0) return;
    try {
      const result = await reconcileSessions({ log: deps.bus.log, store: deps.store, cookieKeyId: deps.cookieKeyId }, providers, todo);
      for (const [provider, ended] of Object.entries(result.removed)) {
        log?.info({ provider, ended, cause: 'provider removed' }, `sessions of provider "${provider}" ended: it was removed from the configuration`);
        deps.onEnded?.(provider, 'provider_removed', ended);
      }
      for (const [provider, ended] of Object.entries(result.secretChanged)) {
        log?.info({ provider, ended, cause: 'cookie secret changed' }, `sessions of provider "${provider}" ended: its cookie secret changed`);
        deps.onEnded?.(provider, 'cookie_secret_changed', ended);
      }
      for (const [provider, ended] of Object.entries(result.issuerChanged)) {
        log?.info({ provider, ended, cause: 'issuer changed' }, `sessions of provider "${provider}" ended: its issuer changed`);
        deps.onEnded?.(provider, 'issuer_changed', ended);
      }
      log?.info({ scope: todo === 'all' ? 'all' : [...todo], providers: providers.map((p) => p.name) }, 'sessions reconciled with the config');
    } catch (err) {
      // Owed again, together with anything added meanwhile.
      const meanwhile = owed as 'all' | Set<string>;
      owed = todo === 'all' || meanwhile === 'all' ? 'all' : new Set([...meanwhile, ...todo]);
      const retryMs = deps.reconcileRetryMs ?? DEFAULT_RECONCILE_RETRY_MS;
      log?.warn({ err, retry_in_ms: retryMs }, 'session reconcile with the config failed; retrying (is the store reachable?)');
      if (running) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          if (running) void runReconcile(new Set());
        }, retryMs);
        retryTimer.unref();
      }
    }
  };

  /** One reconcile at a time: a reload during one waits for it, then reconciles its own scope. */
  const runReconcile = async (scope: 'all' | Set<string>): Promise<void> => {
    while (reconciling) await reconciling;
    const current = reconcile(scope).finally(() => {
      if (reconciling === current) reconciling = undefined;
    });
    reconciling = current;
    await current;
  };

  return {
    async start() {
      if (running) return;
      running = true;
      served = serveActivityReports({
        rpc: deps.bus.rpc,
        store: deps.store,
        now,
        onRefused: (err) => log?.warn({ err: err.message }, 'session activity report refused'),
      });
      await runReconcile('all');
      schedule();
    },
    async stop() {
      running = false;
      clearTimeout(sweepTimer);
      clearTimeout(retryTimer);
      sweepTimer = undefined;
      retryTimer = undefined;
      await served?.close();
      served = undefined;
      await sweeping;
      await reconciling;
    },
    async reload(config) {
      const previous = providers;
      providers = config.providers;
      // Not running: start() reconciles everything against this config anyway.
      if (!running) return;
      schedule();
      await runReconcile(changedProviders(previous, providers));
    },
    sweepNow: sweepOnce,
  };
}
