// The auth service: builds per-provider state, serves the auth subjects on the bus, logs outcomes, runs the session refresher.
import type { Bus, Subscription } from '@portcullis/bus';
import type { PortcullisConfig } from '@portcullis/config';
import { AUTH_SUBJECTS, type AuthReply, HEADER_AUTH_UNAVAILABLE, type HeaderAuthReply } from '@portcullis/events';
import { withSpan } from '@portcullis/telemetry';
import type { IdpSessionTombstones, OnceStore, SessionReader, SessionUpkeep } from '@portcullis/store';
import type { AuthContext } from './auth-context.ts';
import { errorReply, oauthErrorReply } from './auth-replies.ts';
import { backchannelLogout } from './backchannel-logout.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import { finishLogin } from './finish-login.ts';
import { headerAuth, headerAuthFailureReply } from './header-auth.ts';
import { isInsecureIssuer, isLoopbackUrl, OidcClients } from './oidc-clients.ts';
import { buildProviderRuntime, type ProviderRuntime } from './provider-runtime.ts';
import { RemoteKeySets } from './remote-key-sets.ts';
import { createSessionRefresher, type RefreshOutcome, type SessionRefresher } from './session-refresher.ts';
import {
  parseBackchannelLogoutRequest,
  parseCallbackRequest,
  parseHeaderAuthRequest,
  parseSignOutRequest,
  parseStartLoginRequest,
} from './request-guards.ts';
import { signOut } from './sign-out.ts';
import { startLogin } from './start-login.ts';

/** Structured logger (pino-compatible subset): object first, then a short message. */
export interface AuthLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

/** Dependencies of {@link createAuthService}. */
export interface AuthServiceDeps {
  config: PortcullisConfig;
  /** `rpc.serve` answers the AUTH_SUBJECTS; `log.append` records SessionStarted / UserSignedOut / IdpSessionEnded / SessionRefreshed / SessionEnded. */
  bus: Bus;
  /**
   * Single-use login state and back-channel logout `jti`s; for session refresh, the live sessions,
   * which are due, and the cluster-wide refresh lock.
   */
  store: OnceStore & SessionReader & SessionUpkeep & IdpSessionTombstones;
  logger?: AuthLogger;
  /** Upper bound of every IdP HTTP call (discovery, token, userinfo, introspection, JWKS). Default 5000 ms. */
  idpTimeoutMs?: number;
  /** Least time between two fetches of an IdP's key set for a token naming a key it lacks. Default 30 000 ms (tests shorten it). */
  keySetCooldownMs?: number;
  /** How long a back-channel logout delivery may hold its jti unrecorded before a redelivery records it. Default PENDING_LOGOUT_TAKEOVER_MS (tests shorten it). */
  pendingLogoutTakeoverMs?: number;
  /** Called for every due session the refresher handled (metrics): refreshed, refused (ended) or failed (kept, retried). */
  onRefresh?: (provider: string, outcome: RefreshOutcome) => void;
}

/** A running (or stopped) auth service. */
export interface AuthService {
  /** Compiles mappings, serves the auth subjects, starts OIDC discovery in the background and the session refresher. */
  start(): Promise<void>;
  /** Stops serving and refreshing; in-flight requests and refreshes finish. */
  stop(): Promise<void>;
}

const DEFAULT_IDP_TIMEOUT_MS = 5000;

/** Builds the auth service from its dependencies; it does nothing until `start`. */
export function createAuthService(deps: AuthServiceDeps): AuthService {
  const logger = deps.logger;
  let subscriptions: Subscription[] = [];
  /** The context built by the latest `start`; the refresher reads it on every pass. */
  let current: AuthContext | null = null;
  let refresher: SessionRefresher | undefined;
  /** Providers already warned about (once per provider per service) that their IdP issues no refresh token. */
  const warnedNoRefreshToken = new Set<string>();

  function buildContext(): AuthContext {
    const providers = new Map<string, ProviderRuntime>();
    for (const config of deps.config.providers) providers.set(config.name, buildProviderRuntime(config));
    const timeoutMs = deps.idpTimeoutMs ?? DEFAULT_IDP_TIMEOUT_MS;
    const clients = new OidcClients(
      [...providers.values()].map((p) => ({
        issuer: p.config.issuer,
        clientId: p.config.client_id,
        clientSecret: p.config.client_secret,
        redirectUris: [p.redirectUri],
      })),
      { timeoutMs },
    );
    return { providers, clients, keySets: new RemoteKeySets(timeoutMs, deps.keySetCooldownMs), bus: deps.bus, store: deps.store, now: Date.now };
  }

  /**
   * Wraps a handler so that every outcome is an AuthReply and is logged without secrets. `toReply`
   * turns a failure into the reply: a page for browsers, an OAuth JSON error for the IdP.
   */
  function serve(
    ctx: AuthContext,
    subject: string,
    handle: (payload: unknown) => Promise<{ reply: AuthReply; log?: object }>,
    toReply: (err: unknown) => AuthReply = errorReply,
  ): Subscription {
    // auth.start, auth.callback, auth.sign_out, auth.backchannel_logout
    const spanName = `auth.${subject.split('.').pop()}`;
    return ctx.bus.rpc.serve(subject, async (payload) => {
      const provider = typeof (payload as { provider?: unknown })?.provider === 'string' ? (payload as { provider: string }).provider : undefined;
      try {
        const { reply, log } = await withSpan(spanName, { attributes: { 'portcullis.provider': provider ?? '' } }, async (span) => {
          const result = await handle(payload);
          span?.setAttribute('http.response.status_code', result.reply.status);
          return result;
        });
        logger?.info({ subject, provider, status: reply.status, ...log }, 'auth request answered');
        return reply;
      } catch (err) {
        const reply = toReply(err);
        if (err instanceof AuthError && err.statusCode < 500) {
          logger?.warn({ subject, provider, status: reply.status, code: err.code, cause: describeCause(err.cause) }, err.message);
        } else if (err instanceof AuthError) {
          logger?.error({ subject, provider, status: reply.status, code: err.code, cause: describeCause(err.cause) }, err.message);
        } else {
          logger?.error({ subject, provider, status: reply.status, err: describeCause(err) }, 'auth request failed unexpectedly');
        }
        return reply;
      }
    });
  }

  /**
   * Serves header_auth. Its reply is `{ ok, seq | reason }`, not a page: a refusal is an expected
   * outcome (warn), anything else is 'unavailable' (error). Concurrent requests for the same
   * credential share one check, so a burst of requests costs one IdP round trip and one session.
   */
  function serveHeaderAuth(ctx: AuthContext): Subscription {
    const inFlight = new Map<string, Promise<HeaderAuthReply>>();
    const check = async (payload: unknown): Promise<HeaderAuthReply> => {
      const provider = typeof (payload as { provider?: unknown })?.provider === 'string' ? (payload as { provider: string }).provider : undefined;
      try {
        const request = parseHeaderAuthRequest(payload);
        const done = await withSpan('auth.header_auth', { attributes: { 'portcullis.provider': provider ?? '' } }, () => headerAuth(ctx, request));
        logger?.info({ subject: AUTH_SUBJECTS.headerAuth, provider, ok: true, method: done.method, sub: done.sub, seq: done.reply.seq }, 'header auth accepted');
        return done.reply;
      } catch (err) {
        const reply = headerAuthFailureReply(err);
        const { reason } = reply;
        const code = err instanceof AuthError ? err.code : undefined;
        if (reason !== HEADER_AUTH_UNAVAILABLE) {
          logger?.warn({ subject: AUTH_SUBJECTS.headerAuth, provider, ok: false, reason, code }, 'header auth refused');
        } else if (code === AuthErrorCode.HeaderAuthKeyNotYetKnown) {
          // Expected for a while after every IdP key rotation: not an outage.
          logger?.warn({ subject: AUTH_SUBJECTS.headerAuth, provider, ok: false, code, retryAfterSeconds: reply.retryAfterSeconds, message: (err as AuthError).message }, 'header auth deferred');
        } else {
          const detail = err instanceof AuthError ? { code, message: err.message, cause: describeCause(err.cause) } : { err: describeCause(err) };
          logger?.error({ subject: AUTH_SUBJECTS.headerAuth, provider, ok: false, ...detail }, 'header auth failed');
        }
        return reply;
      }
    };
    return ctx.bus.rpc.serve(AUTH_SUBJECTS.headerAuth, (payload) => {
      // Keyed on the whole request, so only identical requests share an answer (held in memory during the check only).
      const p = payload as Partial<Record<'provider' | 'authorization' | 'sessionId', unknown>> | null;
      if (typeof p?.provider !== 'string' || typeof p.authorization !== 'string' || typeof p.sessionId !== 'string') return check(payload);
      const key = `${p.provider}\n${p.sessionId}\n${p.authorization}`;
      let pending = inFlight.get(key);
      if (!pending) {
        pending = check(payload).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    });
  }

  return {
    async start() {
      if (subscriptions.length > 0) return;
      const ctx = buildContext();
      for (const provider of ctx.providers.values()) {
        const { issuer } = provider.config;
        if (isInsecureIssuer(issuer) && !isLoopbackUrl(issuer)) {
          logger?.warn(
            { provider: provider.config.name, issuer },
            'the issuer uses plain http on a non-loopback address: tokens and codes travel unencrypted',
          );
        }
      }
      // Kept one by one as they are made: a start that fails halfway leaves stop() every one to close.
      subscriptions = [];
      subscriptions.push(serve(ctx, AUTH_SUBJECTS.start, async (payload) => ({ reply: await startLogin(ctx, parseStartLoginRequest(payload)) })));
      subscriptions.push(
        serve(ctx, AUTH_SUBJECTS.callback, async (payload) => {
          const request = parseCallbackRequest(payload);
          const done = await finishLogin(ctx, request);
          if (done.refreshTokenMissing && !warnedNoRefreshToken.has(request.provider)) {
            warnedNoRefreshToken.add(request.provider);
            logger?.warn(
              { provider: request.provider, issuer: ctx.providers.get(request.provider)?.config.issuer },
              `provider "${request.provider}" has refresh on, but the identity provider issued no refresh token: its sessions live to ` +
                'access_token_validity without being refreshed. Let the identity provider issue refresh tokens to this client ' +
                '(e.g. add the offline_access scope to the provider\'s scopes and allow the refresh_token grant at the identity provider).',
            );
          }
          return { reply: done.reply, log: { sub: done.sub, seq: done.sessionSeq } };
        }),
      );
      subscriptions.push(
        serve(ctx, AUTH_SUBJECTS.signOut, async (payload) => {
          const request = parseSignOutRequest(payload);
          const done = await signOut(ctx, request);
          return { reply: done.reply, log: { sub: request.session?.sub, seq: done.reply.revokedAtSeq, idpSkipped: done.idpSkipped } };
        }),
      );
      subscriptions.push(
        serve(
          ctx,
          AUTH_SUBJECTS.backchannelLogout,
          async (payload) => {
            const request = parseBackchannelLogoutRequest(payload);
            const done = await backchannelLogout(ctx, request, deps.pendingLogoutTakeoverMs);
            // The token itself is never logged: only whose sessions ended.
            const log = { issuer: done.claims.iss, sid: done.claims.sid, sub: done.claims.sub, seq: done.reply.revokedAtSeq, repeated: done.repeated };
            if (done.takenOver) {
              logger?.warn(
                { subject: AUTH_SUBJECTS.backchannelLogout, provider: request.provider, ...log },
                'back-channel logout recorded by a redelivery: the delivery that took its jti recorded nothing within the takeover time (its auth process stopped or lost NATS and Redis in between)',
              );
            }
            if (!done.outcomeKept) {
              logger?.warn(
                { subject: AUTH_SUBJECTS.backchannelLogout, provider: request.provider, ...log },
                'back-channel logout recorded, but the session store did not keep its outcome: a redelivery of this token gets 503 until the takeover time has passed, then records the logout again',
              );
            }
            return { reply: done.reply, log };
          },
          oauthErrorReply,
        ),
      );
      subscriptions.push(serveHeaderAuth(ctx));
      current = ctx;
      refresher = createSessionRefresher({
        log: deps.bus.log,
        store: deps.store,
        providers: () => current,
        timeoutMs: ctx.clients.timeoutMs,
        ...(logger ? { logger } : {}),
        ...(deps.onRefresh ? { onOutcome: deps.onRefresh } : {}),
      });
      refresher.start();
      // Never block start on the IdP: a failure is remembered and retried (with back-off) by the next request.
      void ctx.clients.prefetchAll().then(() => {
        for (const provider of ctx.providers.values()) {
          const { issuer, client_id, client_secret, name } = provider.config;
          if (!ctx.clients.peek(issuer, client_id, client_secret)) {
            logger?.warn({ provider: name, issuer }, 'OIDC discovery failed at start; it will be retried on the next login');
          }
        }
      });
    },
    async stop() {
      const closing = subscriptions;
      const stopping = refresher;
      subscriptions = [];
      refresher = undefined;
      current = null;
      await Promise.all([...closing.map((s) => s.close()), stopping?.stop()]);
    },
  };
}

/** Name, code and message of an error: enough to diagnose, never a token (causes may hold request parameters). */
function describeCause(err: unknown): object | undefined {
  if (err === undefined || err === null) return undefined;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { message: String(err) };
}
