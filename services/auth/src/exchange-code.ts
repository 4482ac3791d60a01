// The IdP round trips of a callback: code exchange (ID token validated, refresh token kept) and userinfo, failures translated once.
import { authorizationCodeGrant, type Configuration, fetchUserInfo } from 'openid-client';
import { AuthError, AuthErrorCode } from './errors.ts';
import { type IdpStage, translateIdpError } from './idp-errors.ts';

/** What a successful exchange yields. */
export interface ExchangedTokens {
  /** The access token exactly as issued. */
  accessToken: string;
  idToken: string;
  /** Validated ID token claims (iss, aud, signature, nonce, exp checked by openid-client). */
  idTokenClaims: Record<string, unknown>;
  sub: string;
  /** Userinfo claims (subject checked), or null when the IdP has no userinfo endpoint. */
  userinfo: Record<string, unknown> | null;
  /** The refresh token exactly as issued, or null when the IdP issued none. Never log it. */
  refreshToken: string | null;
  /** The token response's `expires_in` (seconds of the access token's lifetime), or null when absent. */
  expiresIn: number | null;
}

/** Inputs of {@link exchangeCode}. */
export interface ExchangeCodeInput {
  issuer: string;
  timeoutMs: number;
  /** The registered redirect URI (with its fixed query). */
  redirectUri: string;
  /** The callback's raw query string. */
  query: string;
  state: string;
  nonce: string;
  codeVerifier: string;
}

/**
 * Exchanges the authorization code (PKCE, state and nonce checked; an ID token is required) and
 * reads userinfo.
 * @throws AuthError CODE_REJECTED (400), IDP_UNAVAILABLE / IDP_RESPONSE_INVALID / CLIENT_REJECTED (502).
 */
export async function exchangeCode(oidc: Configuration, input: ExchangeCodeInput): Promise<ExchangedTokens> {
  const translate = (stage: IdpStage) => (err: unknown) => {
    throw translateIdpError(err, { stage, issuer: input.issuer, timeoutMs: input.timeoutMs });
  };
  // openid-client reads the response parameters from this URL and sends it, query removed, as the
  // token request's redirect_uri; the client's fetch restores the registered query (see oidc-clients.ts).
  const currentUrl = new URL(input.redirectUri);
  currentUrl.search = input.query;
  const tokens = await authorizationCodeGrant(oidc, currentUrl, {
    pkceCodeVerifier: input.codeVerifier,
    expectedState: input.state,
    expectedNonce: input.nonce,
    idTokenExpected: true,
  }).catch(translate('token'));
  const idTokenClaims = tokens.claims();
  if (tokens.id_token === undefined || idTokenClaims === undefined) {
    // Unreachable with idTokenExpected, but a session without a validated ID token must never exist.
    throw new AuthError(AuthErrorCode.IdpResponseInvalid, `The identity provider ${input.issuer} returned no ID token.`, {
      statusCode: 502,
      title: 'Identity provider error',
    });
  }
  const sub = idTokenClaims.sub;
  let userinfo: Record<string, unknown> | null = null;
  if (oidc.serverMetadata().userinfo_endpoint !== undefined) {
    userinfo = { ...(await fetchUserInfo(oidc, tokens.access_token, sub).catch(translate('userinfo'))) };
  }
  return {
    accessToken: tokens.access_token,
    idToken: tokens.id_token,
    idTokenClaims: { ...idTokenClaims },
    sub,
    userinfo,
    refreshToken: typeof tokens.refresh_token === 'string' && tokens.refresh_token !== '' ? tokens.refresh_token : null,
    expiresIn: typeof tokens.expires_in === 'number' ? tokens.expires_in : null,
  };
}
