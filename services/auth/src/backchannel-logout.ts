// `backchannel_logout`: the IdP's POST of a logout token → validate it → record IdpSessionEnded before answering.
import { createHash } from 'node:crypto';
import { type AuthReply, type BackchannelLogoutRequest, createEvent } from '@portcullis/events';
import { type AuthContext, consumeOnceOrUnavailable } from './auth-context.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import { LOGOUT_TOKEN_CLOCK_SKEW_S, type LogoutTokenClaims, verifyLogoutToken } from './logout-token.ts';

/** Path the IdP POSTs to under a provider's external host (register `<external_host>` + this at the IdP). */
export const BACKCHANNEL_LOGOUT_PATH = '/outpost.goauthentik.io/backchannel-logout';

/** A logout token is a few hundred bytes; anything far bigger is not an IdP talking to us. */
export const MAX_BACKCHANNEL_BODY_BYTES = 64 * 1024;

/** What a back-channel logout tells the service's log line (never the token). */
export interface FinishedBackchannelLogout {
  reply: AuthReply;
  claims: Pick<LogoutTokenClaims, 'iss' | 'sid' | 'sub'>;
  /** True when this token's logout was recorded by an earlier delivery and only confirmed again. */
  repeated: boolean;
  /**
   * False when the logout was recorded but its outcome could not be kept under the `jti` (the store
   * failed right after): a redelivery of this token then gets 503s until {@link PENDING_LOGOUT_TAKEOVER_MS}
   * has passed, and records the logout again.
   */
  outcomeKept: boolean;
  /** True when an earlier delivery took the `jti` and recorded nothing within the takeover time, and this one recorded the logout. */
  takenOver: boolean;
}

/**
 * What is kept under a consumed `jti` once its logout is recorded: the log sequence of the
 * IdpSessionEnded event and a digest of the token, so a redelivery of that very token is confirmed
 * (not refused as a replay) while another token that reuses the `jti` still is.
 */
interface RecordedLogout {
  seq: number;
  token: string;
}

/**
 * What a `jti` holds from its consumption until the logout is recorded: the token's digest and when
 * (unix ms) the delivery that consumed it began, so a redelivery can tell a delivery still at work
 * from one whose process died before recording anything (see {@link PENDING_LOGOUT_TAKEOVER_MS}).
 */
interface PendingLogout {
  pending: string;
  since: number;
}

/**
 * How long a delivery may hold a `jti` without recording its logout before a redelivery of the same
 * token records it instead: far longer than an append takes (2 s per attempt), so only a delivery
 * whose process died (or was cut off) in between is taken over. Without this the IdP's retries got
 * 503 until the token was too old, and the logout was lost. A takeover of a delivery that was only
 * slow appends IdpSessionEnded twice, which ends nothing more.
 */
export const PENDING_LOGOUT_TAKEOVER_MS = 30_000;

/**
 * Handles one back-channel logout. The IdpSessionEnded event is appended before the 200, so a
 * success always means every replica will deny the ended sessions once `revokedAtSeq` is applied.
 * The `jti` is consumed only after every other check passed, so a refused token never burns it,
 * and released again when the event cannot be recorded, so the IdP's retry of a 503 is accepted.
 *
 * Once recorded, the event's sequence is kept under the `jti`: the IdP redelivers a token when it
 * got no 200 (the gateway answers 503 when it cannot confirm the revocation everywhere in time), and
 * that redelivery is answered like the first delivery — 200 with the same `revokedAtSeq`, nothing
 * appended again — so the gateway confirms the revocation again (200, or 503 while it still cannot).
 * A replay of a token whose logout is done gets the same 200: it ends nothing new (it never appends),
 * and a 400 would make the IdP believe the logout failed. The same `jti` on another token is refused.
 * Until recorded, the `jti` holds the token's digest and when its delivery began: a redelivery gets
 * 503 (retry) while that delivery may still record it, and records the logout itself once it has held
 * the `jti` for `takeoverMs` (that delivery's process died in between: the logout is not lost).
 * @throws AuthError LOGOUT_REQUEST_INVALID / LOGOUT_TOKEN_INVALID / LOGOUT_TOKEN_REPLAYED (400);
 * BAD_REQUEST (503, unknown provider); IDP_UNAVAILABLE (503); STORE_UNAVAILABLE (503); LOG_UNAVAILABLE (503);
 * LOGOUT_TOKEN_PENDING (503, an earlier delivery of the token is still being recorded);
 * LOGOUT_TOKEN_KEY_NOT_YET_KNOWN (503 with a Retry-After: signed by a key the cached key set lacks, within its re-fetch cool-down).
 */
export async function backchannelLogout(ctx: AuthContext, req: BackchannelLogoutRequest, takeoverMs = PENDING_LOGOUT_TAKEOVER_MS): Promise<FinishedBackchannelLogout> {
  const token = readLogoutToken(req);
  const provider = ctx.providers.get(req.provider);
  if (!provider) {
    throw new AuthError(
      AuthErrorCode.BadRequest,
      `The provider "${req.provider}" is not configured on this auth service, so its logout token cannot be checked. ` +
        'The gateway and the auth service must run the same configuration.',
      { statusCode: 503, title: 'Configuration mismatch' },
    );
  }
  const { config } = provider;
  const jwksUri = await jwksUriOf(ctx, config.issuer, config.client_id, config.client_secret);
  const claims = await verifyLogoutToken(token, ctx.keySets.get(jwksUri), {
    issuer: config.issuer,
    clientId: config.client_id,
    maxAgeSeconds: config.backchannel_logout_max_age,
    now: ctx.now(),
    timeoutMs: ctx.clients.timeoutMs,
  });
  const logged = { iss: claims.iss, sid: claims.sid, sub: claims.sub };

  const jtiKey = replayKey(claims.iss, claims.jti);
  const tokenDigest = createHash('sha256').update(token).digest('hex');
  const pending: PendingLogout = { pending: tokenDigest, since: ctx.now() };
  const firstUse = await consumeOnceOrUnavailable(
    ctx,
    jtiKey,
    replayWindowMs(config.backchannel_logout_max_age),
    'the logout token cannot be checked for reuse',
    'Logout failed',
    JSON.stringify(pending),
  );
  const takenOver = !firstUse;
  if (!firstUse) {
    const earlier = await earlierDelivery(ctx, jtiKey, tokenDigest, takeoverMs);
    if (earlier.kind === 'recorded') {
      return { reply: { status: 200, setCookies: [], revokedAtSeq: earlier.seq }, claims: logged, repeated: true, outcomeKept: true, takenOver: false };
    }
    // The delivery that consumed the jti died before recording: this one records the logout.
    await ctx.store.settleOnce(jtiKey, JSON.stringify(pending)).catch(() => undefined);
  }

  // With a sid the IdP ended one of its sessions; with only a sub it ended every session of that user.
  const data = { issuer: claims.iss, sid: claims.sid, sub: claims.sid === null ? claims.sub : null };
  let seq: number;
  try {
    seq = await ctx.bus.log.append(createEvent('IdpSessionEnded', data));
  } catch (err) {
    // The 503 tells the IdP to retry with this very token: its jti must not stay burnt (a retry
    // would be refused as a replay and the sessions would live on). Best effort: a store that
    // fails here too leaves the jti pending, which a retry takes over once PENDING_LOGOUT_TAKEOVER_MS passed.
    await ctx.store.releaseOnce(jtiKey).catch(() => undefined);
    throw new AuthError(
      AuthErrorCode.LogUnavailable,
      'The logout could not be recorded, so the sessions are still active. Retry later.',
      { statusCode: 503, title: 'Logout failed', cause: err },
    );
  }
  const recorded: RecordedLogout = { seq, token: tokenDigest };
  // The logout is recorded whatever happens next: a store failing now costs only the idempotent
  // redelivery (reported in the log line), never the 200 this delivery has earned.
  const outcomeKept = await ctx.store.settleOnce(jtiKey, JSON.stringify(recorded)).then(
    () => true,
    () => false,
  );
  return { reply: { status: 200, setCookies: [], revokedAtSeq: seq }, claims: logged, repeated: false, outcomeKept, takenOver };
}

/**
 * What an earlier delivery of this very token did with its `jti`: recorded the logout (its log
 * sequence), or died before recording it (held the jti longer than `takeoverMs`: this delivery
 * records it instead).
 * @throws AuthError LOGOUT_TOKEN_REPLAYED (400) when the `jti` was used by another token;
 * LOGOUT_TOKEN_PENDING (503) while the earlier delivery may still record it; STORE_UNAVAILABLE (503).
 */
async function earlierDelivery(ctx: AuthContext, jtiKey: string, tokenDigest: string, takeoverMs: number): Promise<{ kind: 'recorded'; seq: number } | { kind: 'abandoned' }> {
  let outcome: string | null;
  try {
    outcome = await ctx.store.onceOutcome(jtiKey);
  } catch (err) {
    throw new AuthError(
      AuthErrorCode.StoreUnavailable,
      'The session store is not answering, so an earlier delivery of this logout token cannot be looked up. Nothing was changed; retry in a moment.',
      { statusCode: 503, title: 'Logout failed', cause: err },
    );
  }
  const held = parseHeldLogout(outcome);
  if (held !== null) {
    if (('seq' in held ? held.token : held.pending) !== tokenDigest) {
      throw new AuthError(
        AuthErrorCode.LogoutTokenReplayed,
        'The logout token was refused: its "jti" was already used by another logout token (a replayed jti).',
        { statusCode: 400, title: 'Logout token refused' },
      );
    }
    if ('seq' in held) return { kind: 'recorded', seq: held.seq };
    if (ctx.now() - held.since >= takeoverMs) return { kind: 'abandoned' };
  }
  // Consumed and not recorded yet (or by a version that kept nothing to tell): the earlier delivery
  // records the logout, or releases the jti when it cannot. Either way a retry is answered.
  throw new AuthError(
    AuthErrorCode.LogoutTokenPending,
    'An earlier delivery of this logout token is still being recorded. Retry in a moment.',
    { statusCode: 503, title: 'Logout pending', retryAfterSeconds: 1 },
  );
}

/** A {@link RecordedLogout} or {@link PendingLogout} kept under a jti, or null for none (or for something this version did not write). */
function parseHeldLogout(outcome: string | null): RecordedLogout | PendingLogout | null {
  if (outcome === null) return null;
  try {
    const value = JSON.parse(outcome) as Partial<RecordedLogout & PendingLogout>;
    if (Number.isSafeInteger(value.seq) && (value.seq as number) > 0 && typeof value.token === 'string') {
      return { seq: value.seq as number, token: value.token };
    }
    if (typeof value.pending === 'string' && Number.isFinite(value.since)) return { pending: value.pending, since: value.since as number };
  } catch {
    // Not ours: treated as no outcome (503, retry) rather than trusted.
  }
  return null;
}

/**
 * The `logout_token` of a form-encoded body (spec §2.5).
 * @throws AuthError LOGOUT_REQUEST_INVALID (400) for another content type, an oversized body, or not exactly one non-empty `logout_token`.
 */
export function readLogoutToken(req: BackchannelLogoutRequest): string {
  const mediaType = (req.contentType.split(';', 1)[0] ?? '').trim().toLowerCase();
  if (mediaType !== 'application/x-www-form-urlencoded') {
    throw invalidRequest(
      `The back-channel logout request must be application/x-www-form-urlencoded, not ${mediaType === '' ? 'without a content type' : JSON.stringify(mediaType.slice(0, 100))}.`,
    );
  }
  if (Buffer.byteLength(req.body, 'utf8') > MAX_BACKCHANNEL_BODY_BYTES) {
    throw invalidRequest(`The back-channel logout request body is larger than ${MAX_BACKCHANNEL_BODY_BYTES} bytes.`);
  }
  const tokens = new URLSearchParams(req.body).getAll('logout_token');
  if (tokens.length === 0 || tokens[0] === '') throw invalidRequest('The back-channel logout request has no logout_token parameter.');
  if (tokens.length > 1) throw invalidRequest('The back-channel logout request has more than one logout_token parameter.');
  return tokens[0] as string;
}

/** Key under which a token's `jti` is remembered: hashed, so the store never holds IdP-chosen strings of any length. */
export function replayKey(issuer: string, jti: string): string {
  return `bcl-jti:${createHash('sha256').update(`${issuer} ${jti}`).digest('hex')}`;
}

/**
 * How long a `jti` is remembered. A token is acceptable from `iat - skew` until `iat + maxAge`, and
 * replicas' clocks differ, so twice the max age plus the skew outlives every window in which a
 * replay could still pass the `iat` check.
 */
export function replayWindowMs(maxAgeSeconds: number): number {
  return (2 * maxAgeSeconds + LOGOUT_TOKEN_CLOCK_SKEW_S) * 1000;
}

/** The IdP's key-set URL from discovery; a failed discovery means we cannot check anything. */
async function jwksUriOf(ctx: AuthContext, issuer: string, clientId: string, clientSecret: string): Promise<string> {
  let jwksUri: string | undefined;
  try {
    jwksUri = (await ctx.clients.get(issuer, clientId, clientSecret)).serverMetadata().jwks_uri;
  } catch (err) {
    const detail = err instanceof AuthError ? err.message : 'OIDC discovery failed.';
    throw new AuthError(AuthErrorCode.IdpUnavailable, `The logout token cannot be checked now. ${detail}`, {
      statusCode: 503,
      title: 'Identity provider unavailable',
      cause: err,
    });
  }
  if (jwksUri === undefined) {
    throw new AuthError(
      AuthErrorCode.IdpUnavailable,
      `The identity provider ${issuer} announces no jwks_uri in its discovery document, so no logout token can be checked.`,
      { statusCode: 503, title: 'Identity provider unavailable' },
    );
  }
  return jwksUri;
}

function invalidRequest(message: string): AuthError {
  return new AuthError(AuthErrorCode.LogoutRequestInvalid, message, { statusCode: 400, title: 'Logout request refused' });
}
