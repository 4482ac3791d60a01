// The IdP refresh token as the session log carries it: sealed with the provider's cookie secret and bound to its session.
import { sealPayload, unsealPayload } from '@portcullis/protocol';

/** Purpose string of the seal: a token sealed for anything else (login state, …) never opens as a refresh token. */
export const REFRESH_TOKEN_PURPOSE = 'portcullis-refresh-token';

/**
 * Seals a refresh token for the event log (AES-256-GCM under the provider's cookie secret), bound to
 * `sessionId` and valid until the session expires: the log, the store and their backups never hold
 * the raw token, and a sealed token copied onto another session does not open there.
 * @param now unix ms.
 */
export function sealRefreshToken(cookieSecret: string, token: string, sessionId: string, sessionExpiresAt: number, now: number): string {
  const nowSeconds = Math.floor(now / 1000);
  const ttlSeconds = Math.max(1, Math.ceil(sessionExpiresAt / 1000) - nowSeconds);
  return sealPayload(cookieSecret, REFRESH_TOKEN_PURPOSE, { t: token, s: sessionId }, ttlSeconds, nowSeconds);
}

/**
 * Opens a sealed refresh token of `sessionId`. Null when it cannot be opened: the cookie secret
 * changed, the seal expired or was tampered with, or it belongs to another session.
 * @param now unix ms.
 */
export function openRefreshToken(cookieSecret: string, sealed: string, sessionId: string, now: number): string | null {
  const payload = unsealPayload(cookieSecret, REFRESH_TOKEN_PURPOSE, sealed, Math.floor(now / 1000));
  if (payload === null || payload['s'] !== sessionId || typeof payload['t'] !== 'string' || payload['t'] === '') return null;
  return payload['t'];
}
