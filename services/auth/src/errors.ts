// The auth service's errors: one class, stable codes, and the title of the page the browser sees.
import { PortcullisError, type PortcullisErrorOptions } from '@portcullis/protocol';

/** Stable codes of {@link AuthError}. */
export const AuthErrorCode = {
  /** The request from the gateway is malformed or names a provider this service does not know. */
  BadRequest: 'PORTCULLIS_AUTH_BAD_REQUEST',
  /** The IdP answered the authorization request with an `error` parameter. */
  IdpDenied: 'PORTCULLIS_AUTH_IDP_DENIED',
  /** The callback lacks `code` or `state`, repeats a response parameter, or is not a code-flow response of this IdP. */
  MissingParameter: 'PORTCULLIS_AUTH_MISSING_PARAMETER',
  /** No login-state cookie, or one that is tampered with, expired, for another provider or another state. */
  InvalidState: 'PORTCULLIS_AUTH_INVALID_STATE',
  /** The state was already used once (a replayed callback). */
  StateReplayed: 'PORTCULLIS_AUTH_STATE_REPLAYED',
  /** The IdP refused the authorization code (expired, used, or issued to someone else). */
  CodeRejected: 'PORTCULLIS_AUTH_CODE_REJECTED',
  /** The IdP cannot be reached, times out or answers with something that is not OIDC. */
  IdpUnavailable: 'PORTCULLIS_AUTH_IDP_UNAVAILABLE',
  /** The IdP's answer failed validation (ID token signature, iss, aud, nonce, exp; userinfo subject). */
  IdpResponseInvalid: 'PORTCULLIS_AUTH_IDP_RESPONSE_INVALID',
  /** The IdP rejected our client credentials. */
  ClientRejected: 'PORTCULLIS_AUTH_CLIENT_REJECTED',
  /** A scope mapping failed while evaluating at login. */
  MappingFailed: 'PORTCULLIS_AUTH_MAPPING_FAILED',
  /** The session log refused the event (bus down): no session was created or revoked. */
  LogUnavailable: 'PORTCULLIS_AUTH_LOG_UNAVAILABLE',
  /** The session store (Redis) did not answer a single-use check (login state, logout token jti): nothing was done. */
  StoreUnavailable: 'PORTCULLIS_AUTH_STORE_UNAVAILABLE',
  /** A back-channel logout POST that is not a form with exactly one `logout_token`. */
  LogoutRequestInvalid: 'PORTCULLIS_AUTH_LOGOUT_REQUEST_INVALID',
  /** A back-channel logout token that fails validation (signature, alg, iss, aud, iat, exp, events, sid/sub, nonce, jti). */
  LogoutTokenInvalid: 'PORTCULLIS_AUTH_LOGOUT_TOKEN_INVALID',
  /** A back-channel logout token whose `jti` was already used by another token (a replayed jti). */
  LogoutTokenReplayed: 'PORTCULLIS_AUTH_LOGOUT_TOKEN_REPLAYED',
  /** A redelivered back-channel logout token whose first delivery is still being recorded (503, retry). */
  LogoutTokenPending: 'PORTCULLIS_AUTH_LOGOUT_TOKEN_PENDING',
  /**
   * A logout token signed by a key that is not in the IdP's key set as fetched within the re-fetch
   * cool-down (a key rotation since): 503 with Retry-After, judged once the set may be fetched again.
   */
  LogoutTokenKeyNotYetKnown: 'PORTCULLIS_AUTH_LOGOUT_TOKEN_KEY_NOT_YET_KNOWN',
  /**
   * A header-auth JWT signed by a key that is not in the IdP's key set as fetched within the re-fetch
   * cool-down (a key rotation since): not checked yet, so 'unavailable' (503 with Retry-After), not a refusal.
   */
  HeaderAuthKeyNotYetKnown: 'PORTCULLIS_AUTH_HEADER_AUTH_KEY_NOT_YET_KNOWN',
  /** An `Authorization` header (Bearer or Basic) that does not authenticate anyone; the message is the short reason. */
  HeaderAuthRejected: 'PORTCULLIS_AUTH_HEADER_AUTH_REJECTED',
  /** Anything unexpected. */
  Internal: 'PORTCULLIS_AUTH_INTERNAL',
} as const;

/** One of the {@link AuthErrorCode} values. */
export type AuthErrorCode = (typeof AuthErrorCode)[keyof typeof AuthErrorCode];

/** Options of {@link AuthError}: the base options plus the page title. */
export interface AuthErrorOptions extends PortcullisErrorOptions {
  /** Title of the page the gateway renders; defaults to "Sign-in failed". */
  title?: string;
  /** For a 503: when the same request may succeed, in whole seconds (sent as Retry-After). */
  retryAfterSeconds?: number;
}

/**
 * An auth failure that becomes an error page. Every AuthError is meant for the browser (its
 * message names what went wrong and what to do), so `expose` defaults to true even for 5xx.
 */
export class AuthError extends PortcullisError {
  /** Title of the page shown to the user. */
  readonly title: string;
  /** When the same request may succeed, in whole seconds (Retry-After); undefined when unknown. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: AuthErrorCode, message: string, opts: AuthErrorOptions = {}) {
    super(code, message, { ...opts, expose: opts.expose ?? true });
    this.name = 'AuthError';
    this.title = opts.title ?? 'Sign-in failed';
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}
