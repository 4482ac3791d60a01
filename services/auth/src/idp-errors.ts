// The one funnel that turns openid-client / network failures into AuthErrors with a page a human can act on.
import { ClientError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';
import { AuthError, AuthErrorCode } from './errors.ts';

/** Which IdP call failed; it decides the wording and, for OAuth errors, the status. */
export type IdpStage = 'discovery' | 'token' | 'refresh' | 'userinfo' | 'introspection';

/** What the funnel needs to name in its message. */
export interface IdpErrorContext {
  stage: IdpStage;
  issuer: string;
  /** The timeout given to every IdP call, to say how long we waited. */
  timeoutMs: number;
}

/** Codes openid-client uses when the IdP did not answer usefully (as opposed to answering something invalid). */
const UNREACHABLE_CODES = new Set([
  'OAUTH_TIMEOUT',
  'OAUTH_ABORT',
  'OAUTH_RESPONSE_IS_NOT_CONFORM',
  'OAUTH_RESPONSE_IS_NOT_JSON',
  'OAUTH_PARSE_ERROR',
]);

/** OAuth error codes that mean our client registration is wrong, not the user's login. */
const CLIENT_CONFIG_ERRORS = new Set(['invalid_client', 'unauthorized_client', 'unsupported_grant_type']);

const STAGE_NAMES: Record<IdpStage, string> = {
  discovery: 'OIDC discovery',
  token: 'the token request',
  refresh: 'the token refresh',
  userinfo: 'the userinfo request',
  introspection: 'token introspection',
};

/**
 * Translates a failure of an IdP call into an AuthError (cause kept). Errors that do not come from
 * talking to the IdP are returned unchanged so the caller's generic 500 path handles them.
 */
export function translateIdpError(err: unknown, ctx: IdpErrorContext): unknown {
  if (err instanceof AuthError) return err;
  const { issuer, stage } = ctx;
  if (err instanceof ResponseBodyError) {
    if (CLIENT_CONFIG_ERRORS.has(err.error)) {
      return new AuthError(
        AuthErrorCode.ClientRejected,
        `The identity provider ${issuer} rejected this application's client credentials (${err.error}) during ${STAGE_NAMES[stage]}. ` +
          'Check client_id, client_secret and the client authentication method registered at the identity provider.',
        { statusCode: 502, cause: err },
      );
    }
    if (stage === 'refresh') {
      // invalid_grant (a refusal) is told apart by the refresher before this funnel; anything else is the IdP's or the setup's problem.
      return new AuthError(
        err.status >= 500 ? AuthErrorCode.IdpUnavailable : AuthErrorCode.IdpResponseInvalid,
        `The identity provider ${issuer} answered the token refresh with ${err.error} (HTTP ${err.status}). ` +
          'Check that the identity provider is healthy and that this client may use the refresh_token grant there.',
        { statusCode: 502, title: 'Identity provider error', cause: err },
      );
    }
    if (stage === 'token') {
      return new AuthError(
        AuthErrorCode.CodeRejected,
        `The identity provider refused to complete the sign-in (${err.error}). The link may have expired or been used already — please try again.`,
        { statusCode: 400, cause: err },
      );
    }
    return invalidAnswer(issuer, stage, `${err.error} (HTTP ${err.status})`, err);
  }
  if (err instanceof WWWAuthenticateChallengeError) {
    return invalidAnswer(issuer, stage, `HTTP ${err.status} with a WWW-Authenticate challenge`, err);
  }
  const unreachable = describeUnreachable(err, ctx.timeoutMs);
  if (unreachable !== null) {
    return new AuthError(
      AuthErrorCode.IdpUnavailable,
      `The identity provider ${issuer} could not be reached during ${STAGE_NAMES[stage]}: ${unreachable}. ` +
        `Check that the issuer URL is correct, that ${issuer.replace(/\/$/, '')}/.well-known/openid-configuration answers ` +
        "from the auth service's network, and that the identity provider is running.",
      { statusCode: 502, title: 'Identity provider unavailable', cause: err },
    );
  }
  if (err instanceof ClientError) {
    // openid-client's own message is generic ("invalid response encountered"); the cause says which check failed.
    const detail = err.cause instanceof Error && err.cause.message !== err.message ? `${err.message}: ${err.cause.message}` : err.message;
    return invalidAnswer(issuer, stage, detail, err);
  }
  return err;
}

function invalidAnswer(issuer: string, stage: IdpStage, detail: string, cause: unknown): AuthError {
  const hint =
    stage === 'discovery'
      ? 'Check that the configured issuer is exactly the "issuer" its discovery document announces.'
      : "Check the issuer and client_id in the configuration, the identity provider's signing keys, and that both clocks are right.";
  return new AuthError(
    AuthErrorCode.IdpResponseInvalid,
    `The answer of the identity provider ${issuer} to ${STAGE_NAMES[stage]} failed validation (${detail}). ${hint}`,
    { statusCode: 502, title: 'Identity provider error', cause },
  );
}

/** A short reason when `err` means "no usable answer" (network error, timeout, non-OIDC reply), else null. */
function describeUnreachable(err: unknown, timeoutMs: number): string | null {
  if (err instanceof ClientError && UNREACHABLE_CODES.has(err.code ?? '')) {
    if (err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_ABORT') return `no answer within ${timeoutMs} ms`;
    if (err.cause instanceof Response) return `it answered HTTP ${err.cause.status}`;
    return err.message;
  }
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  // undici reports network failures as TypeError("fetch failed") with the system error as cause.
  if (err instanceof TypeError && err.message === 'fetch failed') {
    const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    return code ? `connection failed (${code})` : `connection failed (${String(cause?.message ?? 'network error')})`;
  }
  return null;
}
