// `header_auth`: check an Authorization header (Bearer / Basic) and, if it authenticates someone, record a SessionStarted keyed by its hash.
import { headerAuthSessionId } from '@portcullis/protocol';
import { createEvent, HEADER_AUTH_UNAVAILABLE, type HeaderAuthReply, type HeaderAuthRequest, type SessionStarted } from '@portcullis/events';
import { type Configuration, fetchUserInfo } from 'openid-client';
import { type AccessTokenExpectations, type CheckedToken, introspectAccessToken, isJwtShaped, verifyJwtAccessToken } from './access-token.ts';
import { type AuthContext, clientFor, lookupProvider } from './auth-context.ts';
import { headerAuthRejected, parseAuthorizationHeader, TOKEN_BASIC_USER } from './authorization-header.ts';
import { exchangeBasicCredentials } from './basic-credentials.ts';
import { AuthError, AuthErrorCode } from './errors.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import { computeSessionClaims } from './session-claims.ts';

/** What a header authentication tells the service's log line (never the credential). */
export interface FinishedHeaderAuth {
  reply: HeaderAuthReply;
  sub: string;
  /** Which check accepted the credential. */
  method: 'bearer_jwt' | 'bearer_introspection' | 'basic_token' | 'basic_app_password' | 'basic_client_credentials';
}


/** The identity a credential proved, before mappings. */
interface Authenticated {
  checked: CheckedToken;
  accessToken: string;
  idToken: string | null;
  method: FinishedHeaderAuth['method'];
  /** True when the claims come from introspection (which seldom carries a profile). */
  introspected: boolean;
}

/**
 * Checks the credential and, when it is good, appends SessionStarted (claims merged with the scope
 * mappings evaluated now, so once per cache period) and answers `{ ok: true, seq }`. The session
 * lasts `header_auth_cache_seconds`, never past the token's `exp`. Nothing is appended on failure.
 * @throws AuthError HEADER_AUTH_REJECTED (the reply's reason), BAD_REQUEST, MAPPING_FAILED,
 * LOG_UNAVAILABLE, STORE_UNAVAILABLE, IDP_* — the caller turns them into `{ ok: false, reason }`.
 */
export async function headerAuth(ctx: AuthContext, req: HeaderAuthRequest): Promise<FinishedHeaderAuth> {
  const provider = lookupProvider(ctx, req.provider);
  const { config } = provider;
  if (req.sessionId !== headerAuthSessionId(config.name, config.issuer, req.authorization)) {
    // A gateway deriving keys differently would let one credential land on another's session.
    throw new AuthError(AuthErrorCode.BadRequest, 'The gateway sent a header_auth request whose sessionId is not derived from its credential.', {
      statusCode: 500,
    });
  }
  const credential = parseAuthorizationHeader(req.authorization);
  const oidc = await clientFor(ctx, provider);
  const expected: AccessTokenExpectations = {
    issuer: config.issuer,
    clientId: config.client_id,
    now: ctx.now(),
    timeoutMs: ctx.clients.timeoutMs,
  };

  let found: Authenticated;
  if (credential.kind === 'bearer') {
    found = await checkBearer(ctx, oidc, credential.token, expected, 'bearer');
  } else if (credential.username === TOKEN_BASIC_USER) {
    // authentik falls back to the token endpoint when this fails; with the reserved user name that can only fail again.
    found = await checkBearer(ctx, oidc, credential.password, expected, 'basic_token');
  } else {
    found = await checkBasic(ctx, oidc, provider, credential, expected);
  }

  const { checked } = found;
  const sid = checked.claims['sid'];
  const idpSid = typeof sid === 'string' && sid !== '' ? sid : null;
  if (idpSid !== null && (await idpSessionEnded(ctx, config.issuer, idpSid))) {
    // Its SessionStarted would hold nothing (the store's tombstone), so every request would append one in vain.
    throw headerAuthRejected('the identity provider ended this session');
  }
  const userinfo = await readUserinfo(oidc, found, expected);
  const claims = computeSessionClaims(checked.claims, userinfo, provider.mappings, config);
  const now = ctx.now();
  const cacheEnd = now + config.header_auth_cache_seconds * 1000;
  const expiresAt = checked.exp === null ? cacheEnd : Math.min(cacheEnd, checked.exp * 1000);
  const event: SessionStarted = createEvent('SessionStarted', {
    sessionId: req.sessionId,
    provider: config.name,
    issuer: config.issuer,
    sub: checked.sub,
    sid: idpSid,
    claims,
    accessToken: found.accessToken,
    idToken: found.idToken,
    jwksUri: jwksUriOf(oidc, config.issuer),
    createdAt: now,
    expiresAt,
  });
  let seq: number;
  try {
    seq = await ctx.bus.log.append(event);
  } catch (err) {
    throw new AuthError(AuthErrorCode.LogUnavailable, 'The session log refused the header-auth session.', { statusCode: 503, cause: err });
  }
  return { reply: { ok: true, seq }, sub: checked.sub, method: found.method };
}

/** Whether a back-channel logout ended this IdP session; a store that does not answer is 'unavailable' (503), never a pass. */
async function idpSessionEnded(ctx: AuthContext, issuer: string, sid: string): Promise<boolean> {
  try {
    return await ctx.store.idpSessionEnded(issuer, sid);
  } catch (err) {
    throw new AuthError(AuthErrorCode.StoreUnavailable, 'The session store is not answering, so the credential cannot be checked.', { statusCode: 503, cause: err });
  }
}

/**
 * The short reason a failure becomes in the reply: a refusal says why; a scope mapping failure says
 * so; anything else (IdP down, log down, a token whose signing key is not known yet, a bug) is
 * 'unavailable' and is the caller's to log.
 */
export function headerAuthFailureReason(err: unknown): string {
  if (err instanceof AuthError && err.code === AuthErrorCode.HeaderAuthRejected) return err.message;
  if (err instanceof AuthError && err.code === AuthErrorCode.MappingFailed) return 'scope mapping failed';
  return HEADER_AUTH_UNAVAILABLE;
}

/** The reply a failure becomes: its {@link headerAuthFailureReason}, plus when to retry if an 'unavailable' one knows it. */
export function headerAuthFailureReply(err: unknown): HeaderAuthReply {
  const reason = headerAuthFailureReason(err);
  if (reason === HEADER_AUTH_UNAVAILABLE && err instanceof AuthError && err.retryAfterSeconds !== undefined) {
    return { ok: false, reason, retryAfterSeconds: err.retryAfterSeconds };
  }
  return { ok: false, reason };
}

async function checkBearer(
  ctx: AuthContext,
  oidc: Configuration,
  token: string,
  expected: AccessTokenExpectations,
  via: 'bearer' | 'basic_token',
): Promise<Authenticated> {
  if (isJwtShaped(token)) {
    const checked = await verifyJwtAccessToken(token, ctx.keySets.get(jwksUriOf(oidc, expected.issuer)), expected);
    return { checked, accessToken: token, idToken: null, method: via === 'bearer' ? 'bearer_jwt' : 'basic_token', introspected: false };
  }
  const checked = await introspectAccessToken(oidc, token, expected);
  return { checked, accessToken: token, idToken: null, method: via === 'bearer' ? 'bearer_introspection' : 'basic_token', introspected: true };
}

async function checkBasic(
  ctx: AuthContext,
  oidc: Configuration,
  provider: ProviderRuntime,
  credentials: { username: string; password: string },
  expected: AccessTokenExpectations,
): Promise<Authenticated> {
  const exchange = await exchangeBasicCredentials(oidc, credentials, {
    issuer: expected.issuer,
    clientId: expected.clientId,
    scopes: provider.config.scopes,
    timeoutMs: expected.timeoutMs,
  });
  if (exchange.via === 'app_password' && exchange.idToken !== null) {
    // authentik's answer: the user's ID token, issued to our client. Same signature/iss/aud/exp/sub checks as a JWT access token.
    const checked = await verifyJwtAccessToken(exchange.idToken, ctx.keySets.get(jwksUriOf(oidc, expected.issuer)), expected);
    return { checked, accessToken: exchange.idToken, idToken: exchange.idToken, method: 'basic_app_password', introspected: false };
  }
  // Only an access token: it must pass exactly the bearer rules, audience included, whoever obtained it.
  const found = await checkBearer(ctx, oidc, exchange.accessToken, expected, 'bearer');
  return { ...found, method: exchange.via === 'app_password' ? 'basic_app_password' : 'basic_client_credentials' };
}

/**
 * Userinfo for an introspected token that carries a user but no profile (RFC 7662 responses
 * rarely do), so the identity headers are not empty. Best effort: the token is already accepted,
 * and a userinfo that refuses it only means there is nothing more to add.
 */
async function readUserinfo(oidc: Configuration, found: Authenticated, expected: AccessTokenExpectations): Promise<Record<string, unknown> | null> {
  const { checked } = found;
  if (!found.introspected || checked.claims['preferred_username'] !== undefined || checked.claims['email'] !== undefined) return null;
  // A client's own token (client_credentials) has no user to describe.
  if (checked.sub === expected.clientId || !(checked.scope ?? '').split(' ').includes('openid')) return null;
  if (oidc.serverMetadata().userinfo_endpoint === undefined) return null;
  try {
    return { ...(await fetchUserInfo(oidc, found.accessToken, checked.sub)) };
  } catch {
    return null;
  }
}

function jwksUriOf(oidc: Configuration, issuer: string): string {
  const jwksUri = oidc.serverMetadata().jwks_uri;
  if (jwksUri === undefined) {
    throw new AuthError(AuthErrorCode.IdpResponseInvalid, `The identity provider ${issuer} announces no jwks_uri in its discovery document.`, {
      statusCode: 502,
      title: 'Identity provider error',
    });
  }
  return jwksUri;
}
