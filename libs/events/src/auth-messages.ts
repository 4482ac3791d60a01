// Request/reply messages between the gateway and the auth service (carried by the bus).

/** Subjects of the auth service; a cluster serves them in a queue group so replicas load-balance. */
export const AUTH_SUBJECTS = {
  start: 'portcullis.auth.start',
  callback: 'portcullis.auth.callback',
  signOut: 'portcullis.auth.sign_out',
  backchannelLogout: 'portcullis.auth.backchannel_logout',
  headerAuth: 'portcullis.auth.header_auth',
} as const;

/** Start a login for `provider`; `redirect` is the already validated post-login URL (or null). */
export interface StartLoginRequest {
  provider: string;
  redirect: string | null;
}

/** Finish a login: the callback URL's raw query string and the browser's login-state cookies. */
export interface CallbackRequest {
  provider: string;
  /** Raw query string of the callback URL, without the leading `?`. */
  query: string;
  /** The request's cookies whose name starts with the provider's state cookie name (name → value). */
  stateCookies: Record<string, string>;
}

/**
 * Sign out the user of a verified session (null when the request had no valid session). `idToken` is
 * null when the gateway does not hold it (its cache drops ID tokens): the auth service then reads it
 * from the store for the IdP's `id_token_hint`.
 */
export interface SignOutRequest {
  provider: string;
  session: { sessionId: string; sub: string; idToken: string | null } | null;
}

/** OIDC Back-Channel Logout 1.0: the IdP's POST to `<external_host>/outpost.goauthentik.io/backchannel-logout`. */
export interface BackchannelLogoutRequest {
  provider: string;
  /** Content-Type of the POST. */
  contentType: string;
  /** Raw request body (`logout_token=...`, form-encoded). */
  body: string;
}

/**
 * Check an Authorization header; on success a session keyed by the credential's hash is started.
 * `sessionId` is computed by the gateway: base64url(sha256(provider + '\n' + issuer + '\n' + authorization)),
 * so the raw credential never becomes a key.
 */
export interface HeaderAuthRequest {
  provider: string;
  /** The request's `Authorization` header value, exactly as received (`Bearer …` or `Basic …`). */
  authorization: string;
  sessionId: string;
}

/**
 * The answer to a {@link HeaderAuthRequest}. `ok: true` comes with the log position of the
 * SessionStarted (`seq`) the gateway waits for; `ok: false` with a short `reason` that holds no secret:
 * {@link HEADER_AUTH_UNAVAILABLE} when the credential could not be checked (IdP or log down, or a
 * token signed by a key the IdP published since its key set was last fetched), any other reason when
 * it was refused.
 */
export interface HeaderAuthReply {
  ok: boolean;
  seq?: number;
  reason?: string;
  /** With {@link HEADER_AUTH_UNAVAILABLE}, when known: the whole seconds until a check may succeed (the gateway's Retry-After). */
  retryAfterSeconds?: number;
}

/** The `reason` of a header check that could not be made (not a refusal of the credential). */
export const HEADER_AUTH_UNAVAILABLE = 'unavailable';

/** A page to render (the gateway owns the HTML). */
export interface AuthPage {
  title: string;
  message: string;
}

/**
 * What the gateway sends back to the browser. `setCookies` are complete Set-Cookie values;
 * `revokedAtSeq` is the log position of a sign-out the gateway must see applied before answering.
 */
export interface AuthReply {
  status: number;
  location?: string;
  setCookies: string[];
  page?: AuthPage;
  /** A JSON body instead of a page (back-channel logout errors). */
  json?: Record<string, unknown>;
  revokedAtSeq?: number;
  /** For a 503: when the same request may succeed, in whole seconds (the gateway sends it as Retry-After). */
  retryAfterSeconds?: number;
}
