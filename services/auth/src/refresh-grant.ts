// The IdP round trips of a session refresh: refresh_token grant (ID token validated) and userinfo, refusals told apart from outages.
import { ClientError, type Configuration, fetchUserInfo, refreshTokenGrant, ResponseBodyError, skipSubjectCheck, WWWAuthenticateChallengeError } from 'openid-client';
import { type IdpStage, translateIdpError } from './idp-errors.ts';

/** What a successful refresh yields. Tokens are never logged. */
export interface RefreshedTokens {
  accessToken: string;
  /** The new ID token, or null when the IdP returned none. */
  idToken: string | null;
  /** Its validated claims (signature, iss, aud, exp; `sub` equal to the session's), or null without an ID token. */
  idTokenClaims: Record<string, unknown> | null;
  /** Userinfo read with the new access token (subject checked), or null when the IdP has no userinfo endpoint. */
  userinfo: Record<string, unknown> | null;
  /** A new (rotated) refresh token, or null when the IdP returned none and the presented one stays valid. */
  refreshToken: string | null;
  /** `expires_in` of the new access token, or null when absent. */
  expiresIn: number | null;
}

/** Inputs of {@link refreshAtIdp}. */
export interface RefreshInput {
  issuer: string;
  /** The bound of every IdP call, for the error messages (openid-client applies it). */
  timeoutMs: number;
  refreshToken: string;
  /** The session's subject: the IdP must still name the same user. */
  sub: string;
}

/**
 * The IdP no longer accepts the session: `invalid_grant` from the token endpoint (user disabled,
 * token revoked or expired), userinfo refusing the new access token, or another subject. The session
 * must end. `detail` names the cause without any token.
 */
export class RefreshRefusedError extends Error {
  readonly detail: string;

  constructor(detail: string) {
    super(`the identity provider refused the refresh (${detail})`);
    this.name = 'RefreshRefusedError';
    this.detail = detail;
  }
}

/**
 * Refreshes tokens at the IdP and reads userinfo with the new access token.
 * @throws RefreshRefusedError when the IdP refuses the session (end it).
 * @throws AuthError IDP_UNAVAILABLE / IDP_RESPONSE_INVALID / CLIENT_REJECTED for anything else (keep
 * the session and retry later); the message names the IdP and the likely fix.
 */
export async function refreshAtIdp(oidc: Configuration, input: RefreshInput): Promise<RefreshedTokens> {
  const translate = (stage: IdpStage) => (err: unknown) => {
    throw translateIdpError(err, { stage, issuer: input.issuer, timeoutMs: input.timeoutMs });
  };
  const tokens = await refreshTokenGrant(oidc, input.refreshToken).catch((err: unknown) => {
    if (err instanceof ResponseBodyError && err.error === 'invalid_grant') throw new RefreshRefusedError('invalid_grant');
    return translate('refresh')(err);
  });
  const idTokenClaims = tokens.claims();
  if (idTokenClaims !== undefined && idTokenClaims.sub !== input.sub) {
    throw new RefreshRefusedError('the new ID token names another subject');
  }
  let userinfo: Record<string, unknown> | null = null;
  if (oidc.serverMetadata().userinfo_endpoint !== undefined) {
    const info = await fetchUserInfo(oidc, tokens.access_token, skipSubjectCheck).catch((err: unknown) => {
      const refusal = userinfoRefusal(err);
      if (refusal !== null) throw new RefreshRefusedError(refusal);
      return translate('userinfo')(err);
    });
    if (info.sub !== input.sub) throw new RefreshRefusedError('userinfo names another subject');
    userinfo = { ...info };
  }
  return {
    accessToken: tokens.access_token,
    idToken: typeof tokens.id_token === 'string' ? tokens.id_token : null,
    idTokenClaims: idTokenClaims === undefined ? null : { ...idTokenClaims },
    userinfo,
    refreshToken: typeof tokens.refresh_token === 'string' && tokens.refresh_token !== '' ? tokens.refresh_token : null,
    expiresIn: typeof tokens.expires_in === 'number' ? tokens.expires_in : null,
  };
}

/** "userinfo 401 (invalid_token)" when userinfo refused the fresh access token, else null (an outage). */
function userinfoRefusal(err: unknown): string | null {
  if (err instanceof WWWAuthenticateChallengeError && err.status === 401) {
    const error = err.cause.map((c) => c.parameters['error']).find((e) => typeof e === 'string');
    return `userinfo answered 401${error ? ` (${error})` : ''}`;
  }
  if (err instanceof ClientError && err.cause instanceof Response && err.cause.status === 401) return 'userinfo answered 401';
  return null;
}
