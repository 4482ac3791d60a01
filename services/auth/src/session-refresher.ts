// Background refresh of sessions' IdP tokens: once per session cluster-wide, claims and mappings recomputed, a refusal ends the session.
import { APPEND_BUDGET_MS, type EventLog } from '@portcullis/bus';
import { createEvent, type SessionEvent } from '@portcullis/events';
import { decodeJwt } from 'jose';
import type { OnceStore, SessionReader, SessionRecord, SessionUpkeep } from '@portcullis/store';
import type { AuthLogger } from './app.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import type { OidcClients } from './oidc-clients.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import { type RefreshedTokens, RefreshRefusedError, refreshAtIdp } from './refresh-grant.ts';
import { nextRefreshAt } from './refresh-schedule.ts';
import { openRefreshToken, sealRefreshToken } from './sealed-refresh-token.ts';
import { computeSessionClaims } from './session-claims.ts';

/** What happened to one due session: refreshed, ended because the IdP (or a mapping) refused it, or kept after a failure. */
export type RefreshOutcome = 'refreshed' | 'refused' | 'failed';

/** The providers and OIDC clients the refresher works with (read on every pass, so a config reload is seen). */
export interface RefresherProviders {
  readonly providers: ReadonlyMap<string, ProviderRuntime>;
  readonly clients: OidcClients;
}

/** Dependencies of {@link createSessionRefresher}. */
export interface SessionRefresherDeps {
  /** Where SessionRefreshed / SessionEnded are appended; its lastSeq tells how far the store must have caught up. */
  log: EventLog;
  /** The shared projection: due sessions, the cluster-wide refresh lock (`consumeOnce`), postponing. */
  store: SessionReader & SessionUpkeep & OnceStore;
  /** The current providers and clients; null while none are built yet (the pass is skipped). */
  providers: () => RefresherProviders | null;
  /** Upper bound of each IdP call (for the error messages; the OIDC clients apply it). */
  timeoutMs: number;
  /** Clock in unix ms (tests). Default Date.now. */
  now?: () => number;
  /** Time between passes. Default 1000 ms. */
  intervalMs?: number;
  /** Due sessions handled per pass at most. Default 50. */
  batch?: number;
  /**
   * How long one replica holds a session's refresh lock. It must outlast one refresh: the wait for the
   * store to catch up, discovery, token, key set and userinfo calls (each bounded by `timeoutMs`) and
   * the append (retried up to the bus's budget), else another replica could use a token the IdP is
   * rotating. Default: that sum, or 30 s (the first failure back-off) when that is longer.
   */
  lockMs?: number;
  logger?: AuthLogger;
  /** Called once per due session handled (metrics). */
  onOutcome?: (provider: string, outcome: RefreshOutcome) => void;
}

/** A running (or stopped) refresher. */
export interface SessionRefresher {
  /** Runs a pass every `intervalMs` until `stop`. */
  start(): void;
  /** Stops the timer and waits for the pass in progress. */
  stop(): Promise<void>;
  /** Runs one pass now (after any pass in progress); for tests and for `start`'s timer. */
  tick(): Promise<void>;
}

/** How long a pass waits for the store to apply the log's newest event before it gives up (and retries next pass). */
const SYNC_TIMEOUT_MS = 2_000;
const FIRST_BACKOFF_MS = 30_000;
const MAX_BACKOFF_MS = 300_000;
/** Sessions refreshed at the same time within one pass. */
const CONCURRENCY = 4;
/** A repeated pass-level problem (store behind, store down) is logged at most this often. */
const PASS_WARNING_EVERY_MS = 60_000;
/** Purpose prefix of the cluster-wide refresh lock in the once-store. */
const LOCK_PREFIX = 'refresh-lock:';

/**
 * Builds the refresher. Every replica of the auth service runs one; the store's `consumeOnce` lock
 * makes sure each scheduled refresh of a session reaches the IdP once cluster-wide — important with
 * refresh token rotation, where a second use of the same token makes the IdP revoke the grant.
 */
export function createSessionRefresher(deps: SessionRefresherDeps): SessionRefresher {
  const { log, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const intervalMs = deps.intervalMs ?? 1000;
  const batch = deps.batch ?? 50;
  const lockMs = deps.lockMs ?? Math.max(FIRST_BACKOFF_MS, SYNC_TIMEOUT_MS + 4 * deps.timeoutMs + APPEND_BUDGET_MS);
  /** Consecutive failures per session (this replica's view), for the back-off. */
  const failures = new Map<string, number>();
  /**
   * Refreshes the IdP granted but the log did not take (bus down), by session id, with the lock key
   * this replica keeps holding for them. With refresh token rotation the old token is spent: the
   * session's next attempt must record this event, never ask the IdP again with the old token.
   */
  const unsent = new Map<string, { event: SessionEvent; lockKey: string }>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let stopping = false;
  let current: Promise<void> = Promise.resolve();
  const lastPassWarning = new Map<string, number>();

  function warnPass(kind: string, o: object, m: string, level: 'warn' | 'error' = 'warn'): void {
    const at = Date.now();
    if ((lastPassWarning.get(kind) ?? 0) + PASS_WARNING_EVERY_MS > at) return;
    lastPassWarning.set(kind, at);
    logger?.[level](o, m);
  }

  /** True once the store has applied everything the log held when asked: never refresh with a stale (rotated) token. */
  async function caughtUp(): Promise<boolean> {
    const lastSeq = await log.lastSeq();
    if (await store.waitForApplied(lastSeq, SYNC_TIMEOUT_MS)) return true;
    warnPass(
      'behind',
      { lastSeq, appliedSeq: await store.appliedSeq().catch(() => null) },
      `session refresh waits: the session store has not applied the session log within ${SYNC_TIMEOUT_MS} ms. ` +
        'Check that the session service is running and can reach the store.',
    );
    return false;
  }

  /** One pass; true when it found a full batch (more may be due: the next pass starts at once). */
  async function pass(): Promise<boolean> {
    const ctx = deps.providers();
    if (ctx === null || ![...ctx.providers.values()].some((p) => p.config.refresh)) return false;
    if (!(await caughtUp())) return false;
    const ids = await store.dueForRefresh(now(), batch);
    let next = 0;
    let locked = 0;
    const worker = async (): Promise<void> => {
      while (next < ids.length && !stopping) {
        const id = ids[next++]!;
        await refreshOne(ctx, id, () => locked++).catch((err: unknown) => {
          // Sessions are independent: one unexpected failure (store down, a bug) never stops the pass.
          logger?.error({ err: describe(err) }, 'refreshing a session failed unexpectedly; it is retried on a later pass');
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, ids.length) }, worker));
    // A full batch this replica made progress on: more may be due. (A batch held entirely by other
    // replicas' locks is not a backlog of ours: waiting the interval avoids spinning on it.)
    return ids.length >= batch && locked > 0;
  }

  /** Refreshes one due session; `onLocked` is called once this replica holds the session's refresh lock. */
  async function refreshOne(ctx: RefresherProviders, id: string, onLocked: () => void): Promise<void> {
    // Another replica may have refreshed or ended it since the pass started: be as fresh as the log.
    if (!(await caughtUp())) return;
    const at = now();
    const seen = await store.getLiveSession(id, at);
    if (seen === null) {
      failures.delete(id);
      unsent.delete(id);
      return;
    }
    // Refreshed elsewhere meanwhile (its next refresh is in the future): nothing to do.
    if (seen.refreshAt != null && seen.refreshAt > at) {
      unsent.delete(id);
      return;
    }
    const lockKey = `${LOCK_PREFIX}${id}:${seen.refreshAt ?? 0}`;
    const kept = unsent.get(id);
    // One lock per scheduled refresh: a replica that took it refreshes; the others skip this cycle.
    // (A replica keeping an unrecorded refresh of this session still holds that lock.)
    if (kept?.lockKey !== lockKey && !(await store.consumeOnce(lockKey, lockMs))) return;
    onLocked();
    const session = await store.getLiveSession(id, at);
    if (session === null) return;
    if (kept?.lockKey === lockKey) {
      await recordRefresh(session, kept.event, lockKey, ctx.providers.get(session.provider));
      return;
    }

    const provider = ctx.providers.get(session.provider);
    if (!provider?.config.refresh || provider.config.issuer !== session.issuer || !session.refreshToken) {
      // Refresh turned off (or the provider is gone / moved to another IdP) since login: the session lives to its expiry.
      await store.postponeRefresh(id, session.expiresAt);
      failures.delete(id);
      return;
    }
    const { config } = provider;
    const who = { provider: config.name, issuer: config.issuer, sub: session.sub, seq: session.seq };

    const token = openRefreshToken(config.cookie_secret, session.refreshToken, id, at);
    if (token === null) {
      await endSession(
        session,
        'refresh token unusable: the provider cookie_secret changed since login',
        who,
        `a session's refresh token can no longer be opened (the cookie_secret of provider "${config.name}" changed); the session was ended`,
      );
      return;
    }

    let refreshed: RefreshedTokens;
    try {
      const oidc = await ctx.clients.get(config.issuer, config.client_id, config.client_secret);
      refreshed = await refreshAtIdp(oidc, { issuer: config.issuer, timeoutMs: deps.timeoutMs, refreshToken: token, sub: session.sub });
    } catch (err) {
      if (err instanceof RefreshRefusedError) {
        await endSession(
          session,
          `refresh refused by the identity provider (${err.detail})`,
          who,
          `the identity provider refused to refresh a session (${err.detail}): the user was disabled or signed out there, or the token was revoked; the session was ended`,
        );
        return;
      }
      await keepAfterFailure(session, provider, err, who);
      return;
    }

    let claims: Record<string, unknown>;
    try {
      // Without a new ID token the base is the last one's claims, never session.claims: those hold the
      // previous userinfo and mapping results, which would otherwise survive the refresh.
      const base = refreshed.idTokenClaims ?? idTokenClaimsOf(session.idToken) ?? session.claims;
      claims = computeSessionClaims(base, refreshed.userinfo, provider.mappings, config);
    } catch (err) {
      if (!(err instanceof AuthError) || err.code !== AuthErrorCode.MappingFailed) throw err;
      const cause = err.cause instanceof Error ? err.cause.message : String(err.cause);
      const mapping = (err.cause as { mapping?: unknown } | undefined)?.mapping;
      const name = typeof mapping === 'string' ? mapping : 'unknown';
      logger?.error(
        { ...who, code: err.code, mapping: name },
        `The scope mapping "${name}" of provider "${config.name}" failed while refreshing a session (${cause}); ` +
          'the session was ended. An administrator must fix this mapping.',
      );
      await endSession(session, `scope mapping "${name}" failed at refresh`, who, null);
      return;
    }

    const refreshAt = nextRefreshAt({
      now: at,
      expiresInSeconds: refreshed.expiresIn,
      refreshIntervalSeconds: config.refresh_interval,
      sessionExpiresAt: session.expiresAt,
    });
    const refreshToken =
      refreshed.refreshToken === null ? session.refreshToken : sealRefreshToken(config.cookie_secret, refreshed.refreshToken, id, session.expiresAt, at);
    const event = createEvent('SessionRefreshed', {
      sessionId: id,
      claims,
      accessToken: refreshed.accessToken,
      idToken: refreshed.idToken ?? session.idToken,
      refreshToken,
      refreshAt,
      refreshedAt: at,
    });
    await recordRefresh(session, event, lockKey, provider);
  }

  /**
   * Appends a granted refresh. When the log refuses it, the event is kept (with its refresh lock,
   * held until the retry) and appended, not refreshed again, at the session's next attempt: with
   * refresh token rotation the token it replaces is spent, and using it would end the session.
   */
  async function recordRefresh(session: SessionRecord, event: SessionEvent, lockKey: string, provider: ProviderRuntime | undefined): Promise<void> {
    const id = session.sessionId;
    const name = provider?.config.name ?? session.provider;
    try {
      await log.append(event);
    } catch (err) {
      const attempt = backoff(id);
      unsent.delete(id);
      unsent.set(id, { event, lockKey });
      // Bounded like `failures`: the oldest kept refreshes go first (their sessions may end at their next refresh).
      if (unsent.size > 10_000) unsent.delete(unsent.keys().next().value!);
      await store.postponeRefresh(id, now() + attempt.delayMs).catch(() => {});
      // Held until this replica retries: another would refresh with the spent token.
      await store.releaseOnce(lockKey).catch(() => {});
      await store.consumeOnce(lockKey, attempt.delayMs + lockMs).catch(() => false);
      logger?.error(
        { provider: name, issuer: session.issuer, sub: session.sub, seq: session.seq, attempt: attempt.count, retryInSeconds: attempt.delayMs / 1000, err: describe(err) },
        `A session of provider "${name}" was refreshed at the identity provider, but the session log refused the result (${describe(err).message}). ` +
          `This replica keeps it and records it in ${attempt.delayMs / 1000} s. Check the bus (NATS JetStream) connection.`,
      );
      deps.onOutcome?.(name, 'failed');
      return;
    }
    unsent.delete(id);
    failures.delete(id);
    deps.onOutcome?.(name, 'refreshed');
  }

  /** Appends SessionEnded (one id per session, so replicas ending it at once record it once). */
  async function endSession(session: SessionRecord, reason: string, who: Record<string, unknown>, warning: string | null): Promise<void> {
    const provider = String(who['provider']);
    try {
      await log.append(createEvent('SessionEnded', { sessionId: session.sessionId, reason }, `session-refresh-ended:${session.sessionId}`));
    } catch (err) {
      const attempt = backoff(session.sessionId);
      await store.postponeRefresh(session.sessionId, now() + attempt.delayMs).catch(() => {});
      logger?.error(
        { ...who, reason, err: describe(err), retryInSeconds: attempt.delayMs / 1000 },
        `a session must end (${reason}) but the session log refused the event; retried in ${attempt.delayMs / 1000} s. Check the bus (NATS JetStream) connection.`,
      );
      deps.onOutcome?.(provider, 'failed');
      return;
    }
    failures.delete(session.sessionId);
    if (warning !== null) logger?.warn({ ...who, reason }, warning);
    deps.onOutcome?.(provider, 'refused');
  }

  /** Keeps the session, retries later with back-off, and says what to check. */
  async function keepAfterFailure(session: SessionRecord, provider: ProviderRuntime, err: unknown, who: Record<string, unknown>): Promise<void> {
    const attempt = backoff(session.sessionId);
    await store.postponeRefresh(session.sessionId, now() + attempt.delayMs);
    const retry = `The session is kept; its refresh is retried in ${attempt.delayMs / 1000} s.`;
    const fields = { ...who, attempt: attempt.count, retryInSeconds: attempt.delayMs / 1000 };
    if (err instanceof AuthError) {
      logger?.error({ ...fields, code: err.code, cause: describe(err.cause) }, `${err.message} ${retry}`);
    } else {
      logger?.error(
        { ...fields, err: describe(err) },
        `Refreshing a session of provider "${provider.config.name}" at ${provider.config.issuer} failed (${describe(err).message}). ` +
          `Check that the identity provider and the session log are reachable. ${retry}`,
      );
    }
    deps.onOutcome?.(provider.config.name, 'failed');
  }

  function backoff(sessionId: string): { count: number; delayMs: number } {
    const count = (failures.get(sessionId) ?? 0) + 1;
    failures.set(sessionId, count);
    // Sessions that ended elsewhere are dropped when next met; this bounds the map if many never are.
    if (failures.size > 100_000) failures.clear();
    return { count, delayMs: Math.min(FIRST_BACKOFF_MS * 2 ** (count - 1), MAX_BACKOFF_MS) };
  }

  /** Set by a pass that found a full batch: a backlog (e.g. after an IdP outage) is drained without waiting. */
  let backlog = false;

  function tick(): Promise<void> {
    const run = current
      .then(pass)
      .then((full) => {
        backlog = full;
      })
      .catch((err: unknown) => {
        backlog = false;
        warnPass('pass', { err: describe(err) }, 'a session refresh pass failed (the store or the bus is unavailable); it is retried on the next pass', 'error');
      });
    current = run;
    return run;
  }

  function schedule(delayMs = backlog ? 0 : intervalMs): void {
    if (!running) return;
    timer = setTimeout(() => {
      timer = undefined;
      void tick().then(() => schedule());
    }, delayMs);
    timer.unref();
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopping = false;
      // The first pass at once: sessions that fell due while no refresher ran are not kept waiting.
      schedule(0);
    },
    async stop() {
      running = false;
      stopping = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await current;
      stopping = false;
    },
    tick,
  };
}

/** The claims of a session's ID token (validated when it was received), or null when there is none or it does not decode. */
function idTokenClaimsOf(idToken: string | null): Record<string, unknown> | null {
  if (!idToken) return null;
  try {
    return { ...decodeJwt(idToken) };
  } catch {
    return null;
  }
}

/** Name, code and message of an error (never a token: causes may hold request parameters). */
function describe(err: unknown): { name?: string; message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { message: String(err) };
}
