// The session event log's vocabulary: versioned, past-tense events and their envelope.

/** Schema version of every event this code writes; readers accept this version only. */
export const EVENT_VERSION = 1 as const;

/** Common envelope: `id` de-duplicates publishes, `occurredAt` is informational (never decides validity). */
export interface EventEnvelope<TType extends string, TData> {
  type: TType;
  version: typeof EVENT_VERSION;
  /** Unique id (random); a log de-duplicates appends by it. */
  id: string;
  /** ISO-8601 time the event was created; for humans and metrics only. */
  occurredAt: string;
  data: TData;
}

/** A login completed: everything the gateway needs later, computed once (claims include scope-mapping results). */
export interface SessionStartedData {
  sessionId: string;
  /** Provider name (config `providers[].name`). */
  provider: string;
  issuer: string;
  sub: string;
  /** The IdP session id (`sid` claim), kept for back-channel logout; null when the IdP sends none. */
  sid: string | null;
  /** IdP claims merged with userinfo and the scope-mapping results (mappings win). */
  claims: Record<string, unknown>;
  /** The access token exactly as issued (→ X-authentik-jwt). */
  accessToken: string;
  /** The ID token, used as `id_token_hint` at sign-out. */
  idToken: string | null;
  /** The IdP's JWKS URI (→ X-authentik-meta-jwks), so gateways never need discovery. */
  jwksUri: string;
  /** Unix milliseconds. */
  createdAt: number;
  /** Unix milliseconds; the session is invalid from then on. No refresh or activity moves it. */
  expiresAt: number;
  /**
   * The IdP's refresh token, sealed with the provider's cookie secret (only the auth service opens it);
   * absent or null when the provider has `refresh: false` or the IdP issued none.
   */
  refreshToken?: string | null;
  /** Unix milliseconds when the auth service refreshes this session next; absent or null = never. */
  refreshAt?: number | null;
  /**
   * Fingerprint of the cookie secret the session cookie was signed with ({@link cookieKeyId} in
   * @portcullis/protocol): when the provider's secret changes, its sessions are ended. Absent for
   * header-auth sessions (no cookie) and sessions recorded before this field existed.
   */
  keyId?: string;
}

/**
 * The auth service refreshed a session's tokens at the IdP: claims and scope-mapping results were
 * recomputed. Applies only to a live session; never revives one and never moves its seq or expiresAt.
 */
export interface SessionRefreshedData {
  sessionId: string;
  /** Recomputed claims (ID token or previous identity, userinfo, scope mappings). */
  claims: Record<string, unknown>;
  accessToken: string;
  idToken: string | null;
  /** The new sealed refresh token (IdPs may rotate it), or null when the IdP returned none and the old one no longer applies. */
  refreshToken: string | null;
  /** Next refresh, unix ms; null = never again. */
  refreshAt: number | null;
  /** Unix ms of this refresh. */
  refreshedAt: number;
}

/** One session ended (e.g. replaced, or revoked by an operator). */
export interface SessionEndedData {
  sessionId: string;
  reason: string;
}

/** The user signed out: every session of `sub` in this outpost that started before this event ends. */
export interface UserSignedOutData {
  sub: string;
  /** Provider whose sign_out was used (informational). */
  provider: string;
  reason: string;
}

/** The IdP ended a session (back-channel logout): by IdP session id, or every session of `sub` from `issuer`. */
export interface IdpSessionEndedData {
  issuer: string;
  sid: string | null;
  sub: string | null;
}

export type SessionStarted = EventEnvelope<'SessionStarted', SessionStartedData>;
export type SessionEnded = EventEnvelope<'SessionEnded', SessionEndedData>;
export type UserSignedOut = EventEnvelope<'UserSignedOut', UserSignedOutData>;
export type IdpSessionEnded = EventEnvelope<'IdpSessionEnded', IdpSessionEndedData>;
export type SessionRefreshed = EventEnvelope<'SessionRefreshed', SessionRefreshedData>;

/** Every event of the session log. */
export type SessionEvent = SessionStarted | SessionEnded | UserSignedOut | IdpSessionEnded | SessionRefreshed;
export type SessionEventType = SessionEvent['type'];

/** An event with its position in the log's single total order (its version). */
export interface SequencedEvent {
  seq: number;
  event: SessionEvent;
}
