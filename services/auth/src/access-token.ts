// Checking a presented access token: JWTs locally against the IdP's keys, opaque tokens by RFC 7662 introspection.
import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { type Configuration, tokenIntrospection } from 'openid-client';
import { headerAuthRejected } from './authorization-header.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import { translateIdpError } from './idp-errors.ts';
import { describeKeySetFailure, LOGOUT_TOKEN_ALGORITHMS } from './logout-token.ts';
import { KeyNotInRecentKeySet, keyNotYetKnown } from './remote-key-sets.ts';

/** Asymmetric JWS algorithms only: never `none`, never HMAC (anyone holding a shared secret, e.g. a client, could mint tokens). */
export const ACCESS_TOKEN_ALGORITHMS = LOGOUT_TOKEN_ALGORITHMS;

/** Header `typ` values accepted on a JWT access token (RFC 9068 `at+jwt`, and plain `JWT` as most IdPs write). */
const ACCEPTED_TYPES = new Set(['at+jwt', 'application/at+jwt', 'jwt']);

/** Clock difference tolerated between the IdP and us, in seconds (`exp`, `nbf`). */
export const ACCESS_TOKEN_CLOCK_SKEW_S = 60;

/** Three base64url segments (the last may be empty, so `alg: none` tokens are refused as JWTs, not sent to introspection). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** What a token must match to be accepted for a provider. */
export interface AccessTokenExpectations {
  /** The provider's configured issuer: `iss` must equal it exactly. */
  issuer: string;
  /** The provider's client_id: the token must be issued to (or for) it. */
  clientId: string;
  /** Unix milliseconds. */
  now: number;
  /** The IdP timeout, to say how long we waited. */
  timeoutMs: number;
}

/** An accepted token: its claims (sub guaranteed) and its expiry, if it has one. */
export interface CheckedToken {
  sub: string;
  claims: Record<string, unknown>;
  /** `exp` in unix seconds, or null when introspection did not say. */
  exp: number | null;
  /** Scopes of the token (introspection), or null when unknown. */
  scope: string | null;
}

/** True when `token` has the compact JWS shape (three dot-separated base64url parts). */
export function isJwtShaped(token: string): boolean {
  return JWT_SHAPE.test(token);
}

/**
 * Verifies a JWT access token locally: signature against the IdP's key set with an asymmetric
 * algorithm, `iss`, `aud` containing our client_id (a token issued to another client is refused:
 * authentik CVE-2024-47077), `exp` required and in the future, `nbf` not in the future, `sub`
 * present, and a token type that is not an ID token (`nonce`) or a logout token (`events`).
 * @throws AuthError HEADER_AUTH_REJECTED (short reason); IDP_UNAVAILABLE (502) when the key set cannot be had;
 * HEADER_AUTH_KEY_NOT_YET_KNOWN (503 with a Retry-After) when the token names a key missing from a set
 * fetched within the re-fetch cool-down (the IdP may have rotated its keys since).
 */
export async function verifyJwtAccessToken(token: string, getKey: JWTVerifyGetKey, expected: AccessTokenExpectations): Promise<CheckedToken> {
  let payload: JWTPayload;
  let typ: string | undefined;
  try {
    const verified = await jwtVerify(token, getKey, {
      algorithms: [...ACCESS_TOKEN_ALGORITHMS],
      issuer: expected.issuer,
      audience: expected.clientId,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: ACCESS_TOKEN_CLOCK_SKEW_S,
      currentDate: new Date(expected.now),
    });
    payload = verified.payload;
    typ = verified.protectedHeader.typ;
  } catch (err) {
    throw translateJoseError(err, expected);
  }
  if (typ !== undefined && !ACCEPTED_TYPES.has(typ.toLowerCase())) throw headerAuthRejected('token type not accepted');
  // An ID token (nonce) or a logout token (events) also carries our client_id as audience: neither is an access credential.
  if (Object.hasOwn(payload, 'nonce') || Object.hasOwn(payload, 'events')) throw headerAuthRejected('token type not accepted');
  const { sub, exp } = payload;
  if (typeof sub !== 'string' || sub === '') throw headerAuthRejected('token has no subject');
  return { sub, claims: { ...payload }, exp: exp as number, scope: typeof payload['scope'] === 'string' ? payload['scope'] : null };
}

/**
 * Asks the IdP about an opaque token (RFC 7662, authenticated as the provider's client). Accepted
 * only when `active`, issued to this client (`client_id` equal, or `aud` containing it) and not
 * past its `exp`. Without `sub` (a client_credentials token) the subject is the client itself.
 * @throws AuthError HEADER_AUTH_REJECTED; IDP_UNAVAILABLE / IDP_RESPONSE_INVALID / CLIENT_REJECTED (502).
 */
export async function introspectAccessToken(oidc: Configuration, token: string, expected: AccessTokenExpectations): Promise<CheckedToken> {
  if (oidc.serverMetadata().introspection_endpoint === undefined) {
    throw new AuthError(
      AuthErrorCode.IdpResponseInvalid,
      `The identity provider ${expected.issuer} announces no introspection_endpoint, so opaque bearer tokens cannot be checked.`,
      { statusCode: 502, title: 'Identity provider error' },
    );
  }
  const response = await tokenIntrospection(oidc, token, { token_type_hint: 'access_token' }).catch((err: unknown) => {
    throw translateIdpError(err, { stage: 'introspection', issuer: expected.issuer, timeoutMs: expected.timeoutMs });
  });
  if (response.active !== true) throw headerAuthRejected('token not active');
  const aud = response.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (response.client_id !== expected.clientId && !audiences.includes(expected.clientId)) {
    throw headerAuthRejected('token issued to another client');
  }
  if (response.iss !== undefined && response.iss !== expected.issuer) throw headerAuthRejected('token issuer mismatch');
  const nowS = expected.now / 1000;
  const exp = typeof response.exp === 'number' ? response.exp : null;
  if (exp !== null && exp + ACCESS_TOKEN_CLOCK_SKEW_S <= nowS) throw headerAuthRejected('token expired');
  if (typeof response.nbf === 'number' && response.nbf - ACCESS_TOKEN_CLOCK_SKEW_S > nowS) throw headerAuthRejected('token not yet valid');
  if (response.token_type !== undefined && response.token_type.toLowerCase() !== 'bearer') throw headerAuthRejected('token type not accepted');
  const sub = typeof response.sub === 'string' && response.sub !== '' ? response.sub : expected.clientId;
  // `active`, `token_type` and friends describe the token, not the user: they do not become session claims.
  const { active: _active, token_type: _type, ...claims } = response;
  return { sub, claims: { ...claims, sub }, exp, scope: typeof response.scope === 'string' ? response.scope : null };
}

/** jose failures → short refusals, or 502 when the IdP's key set could not be had; others unchanged. */
function translateJoseError(err: unknown, expected: AccessTokenExpectations): unknown {
  const unreachable = describeKeySetFailure(err, expected.timeoutMs);
  if (unreachable !== null) {
    return new AuthError(
      AuthErrorCode.IdpUnavailable,
      `The signing keys of the identity provider ${expected.issuer} could not be fetched (${unreachable}).`,
      { statusCode: 502, title: 'Identity provider unavailable', cause: err },
    );
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return headerAuthRejected('token algorithm not accepted', err);
  if (err instanceof KeyNotInRecentKeySet) {
    // Not a bad credential: the IdP may have rotated its keys since; a refusal would tell a client with
    // a valid fresh token that it is wrong. It is checked against the new set once the cool-down is over.
    return keyNotYetKnown(err, expected.issuer, 'The bearer token', AuthErrorCode.HeaderAuthKeyNotYetKnown, 'Credential not checked yet', 'the token cannot be checked for {s} s.');
  }

  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) {
    return headerAuthRejected('token signature invalid', err);
  }
  if (err instanceof errors.JWTExpired) return headerAuthRejected('token expired', err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return headerAuthRejected('token issued to another client', err);
    if (err.claim === 'iss') return headerAuthRejected('token issuer mismatch', err);
    if (err.claim === 'nbf') return headerAuthRejected('token not yet valid', err);
    if (err.claim === 'sub') return headerAuthRejected('token has no subject', err);
    if (err.claim === 'exp') return headerAuthRejected('token has no expiry', err);
    return headerAuthRejected(`token claim "${err.claim}" invalid`, err);
  }
  if (err instanceof errors.JOSEError) return headerAuthRejected('malformed token', err);
  return err;
}
