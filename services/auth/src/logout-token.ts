// Validation of an OIDC Back-Channel Logout 1.0 logout token (spec §2.4 and §2.6), and nothing else.
import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { AuthError, AuthErrorCode } from './errors.ts';
import { KeyNotInRecentKeySet, keyNotYetKnown } from './remote-key-sets.ts';

/** Asymmetric JWS algorithms only: `none` and the HMAC family (signed with a shared secret anyone with it could forge) never pass. */
export const LOGOUT_TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** The member of the `events` claim that makes a JWT a logout token. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Clock difference tolerated between the IdP and us, in seconds (for `iat` in the future and `exp`). */
export const LOGOUT_TOKEN_CLOCK_SKEW_S = 60;

/** What a logout token must match. */
export interface LogoutTokenExpectations {
  /** The provider's configured issuer: `iss` must equal it exactly. */
  issuer: string;
  /** The provider's client_id: `aud` must contain it. */
  clientId: string;
  /** `backchannel_logout_max_age`: tokens whose `iat` is older are refused. */
  maxAgeSeconds: number;
  /** Unix milliseconds. */
  now: number;
  /** The JWKS fetch timeout, to say how long we waited when the IdP does not answer. */
  timeoutMs: number;
}

/** The claims of a valid logout token that decide what ends. */
export interface LogoutTokenClaims {
  iss: string;
  jti: string;
  /** The IdP session that ended, or null when the token names the user only. */
  sid: string | null;
  /** The user whose sessions ended, or null when the token names the IdP session only. */
  sub: string | null;
}

/**
 * Verifies a logout token's signature against the IdP's key set and checks every claim the
 * spec requires. The `typ` header is not checked: the spec only recommends `logout+jwt`, and the
 * `events` claim plus the absence of `nonce` already keep an ID token from passing as a logout token.
 * Replay (`jti` already seen) is the caller's check: it needs the store.
 * @throws AuthError LOGOUT_TOKEN_INVALID (400) naming the failed check; IDP_UNAVAILABLE (503) when
 * the key set cannot be fetched; LOGOUT_TOKEN_KEY_NOT_YET_KNOWN (503 with a Retry-After) when the
 * token names a key missing from a set fetched within the re-fetch cool-down. Anything else (a bug) is rethrown as is.
 */
export async function verifyLogoutToken(
  token: string,
  getKey: JWTVerifyGetKey,
  expected: LogoutTokenExpectations,
): Promise<LogoutTokenClaims> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, getKey, {
      algorithms: [...LOGOUT_TOKEN_ALGORITHMS],
      issuer: expected.issuer,
      audience: expected.clientId,
      clockTolerance: LOGOUT_TOKEN_CLOCK_SKEW_S,
      currentDate: new Date(expected.now),
    }));
  } catch (err) {
    throw translateJoseError(err, expected);
  }
  return checkLogoutClaims(payload, expected);
}

/** The checks jose does not make: iat window, events, sid/sub, nonce, jti. */
function checkLogoutClaims(payload: JWTPayload, expected: LogoutTokenExpectations): LogoutTokenClaims {
  const { iat, jti, sid, sub } = payload;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidToken('it has no numeric "iat" claim');
  const nowS = expected.now / 1000;
  // Exactly max_age, no skew added: the setting is the oldest token an operator agreed to accept.
  if (nowS - iat > expected.maxAgeSeconds) {
    throw invalidToken(`it was issued ${Math.floor(nowS - iat)} s ago, more than backchannel_logout_max_age (${expected.maxAgeSeconds} s)`);
  }
  if (iat - nowS > LOGOUT_TOKEN_CLOCK_SKEW_S) {
    throw invalidToken(`its "iat" is ${Math.ceil(iat - nowS)} s in the future (check the clocks of the identity provider and this server)`);
  }
  const events = payload['events'];
  if (!isRecord(events) || !Object.hasOwn(events, BACKCHANNEL_LOGOUT_EVENT)) {
    throw invalidToken(`it has no "events" claim with the member ${BACKCHANNEL_LOGOUT_EVENT}`);
  }
  if (!isRecord(events[BACKCHANNEL_LOGOUT_EVENT])) {
    throw invalidToken(`the "events" member ${BACKCHANNEL_LOGOUT_EVENT} is not a JSON object`);
  }
  if (Object.hasOwn(payload, 'nonce')) throw invalidToken('it carries a "nonce" claim, which logout tokens must not have');
  if (sid !== undefined && (typeof sid !== 'string' || sid === '')) throw invalidToken('its "sid" claim is not a non-empty string');
  if (sub !== undefined && (typeof sub !== 'string' || sub === '')) throw invalidToken('its "sub" claim is not a non-empty string');
  if (sid === undefined && sub === undefined) throw invalidToken('it names neither a session ("sid") nor a user ("sub")');
  if (typeof jti !== 'string' || jti === '') throw invalidToken('it has no "jti" claim');
  return { iss: expected.issuer, jti, sid: (sid as string | undefined) ?? null, sub: sub ?? null };
}

/** jose failures → 400 for the token, 503 when the IdP's key set could not be had; others unchanged. */
function translateJoseError(err: unknown, expected: LogoutTokenExpectations): unknown {
  const unreachable = describeKeySetFailure(err, expected.timeoutMs);
  if (unreachable !== null) {
    return new AuthError(
      AuthErrorCode.IdpUnavailable,
      `The signing keys of the identity provider ${expected.issuer} could not be fetched (${unreachable}), so the logout token cannot be checked. Retry later.`,
      { statusCode: 503, title: 'Identity provider unavailable', cause: err },
    );
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return invalidToken(`its algorithm is not accepted (only ${LOGOUT_TOKEN_ALGORITHMS.join(', ')})`, err);
  }
  if (err instanceof KeyNotInRecentKeySet) {
    // Not final: the IdP may have rotated its keys since the set was fetched; a 400 would make it give up.
    return keyNotYetKnown(err, expected.issuer, 'The logout token', AuthErrorCode.LogoutTokenKeyNotYetKnown, 'Logout token not checked yet', 'the token cannot be checked yet. Retry after {s} s.');
  }

  if (err instanceof errors.JWKSNoMatchingKey) {
    return invalidToken('it is not signed by any key the identity provider publishes', err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalidToken('its signature is not valid', err);
  if (err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTExpired) {
    return invalidToken(describeClaimFailure(err, expected), err);
  }
  if (err instanceof errors.JOSEError) return invalidToken(`it is not a valid signed JWT (${err.message})`, err);
  return err;
}

/** A readable reason for a failed claim check (jose's own wording is terse). */
function describeClaimFailure(err: errors.JWTClaimValidationFailed | errors.JWTExpired, expected: LogoutTokenExpectations): string {
  if (err.reason === 'missing') return `it has no "${err.claim}" claim`;
  switch (err.claim) {
    case 'iss':
      return `its issuer is not ${expected.issuer}`;
    case 'aud':
      return `its audience does not include the client_id ${expected.clientId}`;
    case 'exp':
      return 'it has expired';
    default:
      return `its "${err.claim}" claim failed the check (${err.message})`;
  }
}

/** A short reason when `err` means the key set could not be obtained (network, timeout, not a JWKS), else null. */
export function describeKeySetFailure(err: unknown, timeoutMs: number): string | null {
  if (err instanceof errors.JWKSTimeout) return `no answer within ${timeoutMs} ms`;
  if (err instanceof errors.JWKSInvalid) return `its key set is malformed: ${err.message}`;
  // jose throws its base class only for the key-set download itself (non-200 answer, body not JSON).
  if (err instanceof errors.JOSEError && err.code === errors.JOSEError.code) return err.message;
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  // undici reports network failures as TypeError("fetch failed") with the system error as cause.
  if (err instanceof TypeError && err.message === 'fetch failed') {
    const cause = err.cause as { code?: unknown } | undefined;
    return typeof cause?.code === 'string' ? `connection failed (${cause.code})` : 'connection failed';
  }
  return null;
}

function invalidToken(reason: string, cause?: unknown): AuthError {
  return new AuthError(AuthErrorCode.LogoutTokenInvalid, `The logout token was refused: ${reason}.`, {
    statusCode: 400,
    title: 'Logout token refused',
    cause,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
