// `callback`: check the sealed state, exchange the code, compute the claims, record SessionStarted (with the sealed refresh token when `refresh` is on).
import type { SessionStarted } from '@portcullis/events';
import { type AuthReply, type CallbackRequest, createEvent } from '@portcullis/events';
import { cookieKeyId, randomToken, serializeCookie, serializeDeletionCookie, signSessionCookie } from '@portcullis/protocol';
import type { ServerMetadata } from 'openid-client';
import { type AuthContext, clientFor, consumeOnceOrUnavailable, lookupProvider } from './auth-context.ts';
import { pageReply, redirectReply } from './auth-replies.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import { exchangeCode } from './exchange-code.ts';
import { LOGIN_STATE_TTL_SECONDS, loginStateCookieName, loginStateOnceKey, openLoginState } from './login-state.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import { nextRefreshAt } from './refresh-schedule.ts';
import { sealRefreshToken } from './sealed-refresh-token.ts';
import { computeSessionClaims } from './session-claims.ts';

/** Our states are base64url of 32 bytes (43 characters); anything else was never issued by start. */
const WELL_FORMED_STATE = /^[A-Za-z0-9_-]{43,128}$/;

const INVALID_STATE_MESSAGE = 'Your login link is invalid or expired — start again.';

/** What a successful callback tells the service's log line (never tokens). */
export interface FinishedLogin {
  reply: AuthReply;
  sub?: string;
  sessionSeq?: number;
  /** The provider has `refresh` on but the IdP issued no refresh token: the session lives to its expiry unrefreshed. */
  refreshTokenMissing?: boolean;
}

/** Parameters of an authorization response (RFC 6749 §4.1.2, RFC 9207): each may appear once. */
const RESPONSE_PARAMETERS = ['code', 'state', 'error', 'error_description', 'iss', 'session_state'];

/**
 * Finishes a login. Every check happens before any session exists: state cookie (sealed, this
 * provider, this state), single use, code exchange with ID token validation, userinfo, mappings.
 * @throws AuthError with the page to show for every refusal.
 */
export async function finishLogin(ctx: AuthContext, req: CallbackRequest): Promise<FinishedLogin> {
  const provider = lookupProvider(ctx, req.provider);
  const { config } = provider;
  const params = new URLSearchParams(req.query);
  const state = params.get('state');
  // The state comes from the URL: only a well-formed one may become part of a cookie name.
  const clearState = state !== null && WELL_FORMED_STATE.test(state) ? [deleteStateCookie(provider, state)] : [];

  // A response parameter sent twice is malformed (openid-client refuses it deep in the code exchange,
  // which would show as an IdP error): the browser's request is at fault, so a 400 here.
  const repeated = RESPONSE_PARAMETERS.filter((name) => params.getAll(name).length > 1);
  if (repeated.length > 0) {
    throw new AuthError(AuthErrorCode.MissingParameter, `The sign-in response names ${repeated.join(' and ')} more than once — start again.`, {
      statusCode: 400,
    });
  }
  const idpError = params.get('error');
  const code = params.get('code');
  if (!state || (idpError === null && !code)) {
    throw new AuthError(AuthErrorCode.MissingParameter, 'The sign-in response is missing its code or state — start again.', {
      statusCode: 400,
    });
  }

  // Checked before anything of the response is shown: an error response whose state is not one of
  // this browser's logins is a crafted link, and its error_description is the crafter's text.
  const sealed = req.stateCookies?.[loginStateCookieName(config.client_id, state)];
  const login = sealed === undefined ? null : openLoginState(config.cookie_secret, sealed);
  if (login === null || login.p !== config.name || login.s !== state) {
    throw new AuthError(AuthErrorCode.InvalidState, INVALID_STATE_MESSAGE, { statusCode: 400 });
  }
  if (idpError !== null) {
    const description = params.get('error_description');
    return {
      reply: pageReply(
        403,
        'Sign-in was refused',
        description ? `The identity provider refused the sign-in: ${description}` : `The identity provider refused the sign-in (${idpError}).`,
        clearState,
      ),
    };
  }
  const oidc = await clientFor(ctx, provider);
  refuseForeignResponse(params, oidc.serverMetadata());
  if (!(await consumeOnceOrUnavailable(ctx, loginStateOnceKey(state), LOGIN_STATE_TTL_SECONDS * 1000, 'the sign-in cannot be completed', 'Sign-in failed'))) {
    throw new AuthError(AuthErrorCode.StateReplayed, INVALID_STATE_MESSAGE, { statusCode: 400 });
  }

  const tokens = await exchangeCode(oidc, {
    issuer: config.issuer,
    timeoutMs: ctx.clients.timeoutMs,
    redirectUri: provider.redirectUri,
    query: req.query,
    state,
    nonce: login.n,
    codeVerifier: login.v,
  });
  const claims = computeSessionClaims(tokens.idTokenClaims, tokens.userinfo, provider.mappings, config);
  const sid = tokens.idTokenClaims['sid'];
  const now = ctx.now();
  const sessionId = randomToken(32);
  const expiresAt = now + config.access_token_validity * 1000;
  // Only the sealed refresh token enters the log; without `refresh` the IdP's token is dropped here.
  const refresh =
    config.refresh && tokens.refreshToken !== null
      ? {
          refreshToken: sealRefreshToken(config.cookie_secret, tokens.refreshToken, sessionId, expiresAt, now),
          refreshAt: nextRefreshAt({
            now,
            expiresInSeconds: tokens.expiresIn,
            refreshIntervalSeconds: config.refresh_interval,
            sessionExpiresAt: expiresAt,
          }),
        }
      : { refreshToken: null, refreshAt: null };
  const event: SessionStarted = createEvent('SessionStarted', {
    sessionId,
    provider: config.name,
    issuer: config.issuer,
    sub: tokens.sub,
    sid: typeof sid === 'string' ? sid : null,
    claims,
    accessToken: tokens.accessToken,
    idToken: tokens.idToken,
    jwksUri: jwksUriOf(oidc.serverMetadata().jwks_uri, config.issuer),
    createdAt: now,
    expiresAt,
    keyId: cookieKeyId(config.cookie_secret),
    ...refresh,
  });

  let seq: number;
  try {
    seq = await ctx.bus.log.append(event);
  } catch (err) {
    throw new AuthError(
      AuthErrorCode.LogUnavailable,
      'Sessions are unavailable right now, so you could not be signed in. Please try again in a moment.',
      { statusCode: 503, title: 'Sessions are unavailable', cause: err },
    );
  }
  const sessionCookie = serializeCookie(provider.sessionCookieName, signSessionCookie(config.cookie_secret, { sessionId, seq }), {
    domain: config.cookie_domain,
    secure: provider.secure,
    maxAgeSeconds: config.access_token_validity,
  });
  return {
    reply: redirectReply(login.r ?? config.external_host, [sessionCookie, ...clearState]),
    sub: tokens.sub,
    sessionSeq: seq,
    ...(config.refresh && tokens.refreshToken === null ? { refreshTokenMissing: true } : {}),
  };
}

/** Parameters of implicit/hybrid (`id_token`, `token`) and JARM (`response`) responses: never in a code-flow response. */
const FOREIGN_PARAMETERS = ['id_token', 'token', 'response'];

/**
 * Refuses, before the state is used up, a response the IdP cannot have sent for our code flow:
 * implicit/hybrid/JARM parameters, or an `iss` (RFC 9207) that is not the IdP's (or missing when the
 * IdP always sends it: a mix-up or a crafted link). openid-client would refuse these too, but as an
 * invalid IdP answer (502): the browser's request is at fault, so a 400.
 * @throws AuthError MISSING_PARAMETER (400).
 */
function refuseForeignResponse(params: URLSearchParams, metadata: ServerMetadata): void {
  const foreign = FOREIGN_PARAMETERS.filter((name) => params.has(name));
  const iss = params.get('iss');
  const issWrong = iss === null ? metadata.authorization_response_iss_parameter_supported === true : iss !== metadata.issuer;
  if (foreign.length > 0 || issWrong) {
    const what = foreign.length > 0 ? `carries ${foreign.join(' and ')}, which this sign-in never uses` : 'does not come from the identity provider it was sent to';
    throw new AuthError(AuthErrorCode.MissingParameter, `The sign-in response ${what} — start again.`, { statusCode: 400 });
  }
}

/** The Set-Cookie that removes a login attempt's state cookie. */
export function deleteStateCookie(provider: ProviderRuntime, state: string): string {
  return serializeDeletionCookie(loginStateCookieName(provider.config.client_id, state), {
    domain: provider.config.cookie_domain,
    secure: provider.secure,
  });
}

function jwksUriOf(jwksUri: string | undefined, issuer: string): string {
  if (jwksUri === undefined) {
    throw new AuthError(
      AuthErrorCode.IdpResponseInvalid,
      `The identity provider ${issuer} announces no jwks_uri in its discovery document; it is not a usable OpenID provider.`,
      { statusCode: 502, title: 'Identity provider error' },
    );
  }
  return jwksUri;
}
