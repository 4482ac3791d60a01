// When a session's tokens are refreshed next: before the access token expires, or sooner by refresh_interval; never past the session's end.

/** Refresh this long before the access token expires, at most (the margin is also capped at 20 % of its lifetime). */
export const REFRESH_MARGIN_MS = 60_000;
/** Share of the access token's lifetime kept as margin when that is less than {@link REFRESH_MARGIN_MS}. */
export const REFRESH_MARGIN_SHARE = 0.2;
/** A refresh is never scheduled sooner than this after now (a token with a tiny lifetime must not cause a busy loop). */
export const MIN_REFRESH_DELAY_MS = 5_000;
/** Used when the IdP gave no `expires_in` and no `refresh_interval` is set. */
export const DEFAULT_REFRESH_DELAY_MS = 300_000;

/** Inputs of {@link nextRefreshAt}. */
export interface RefreshScheduleInput {
  /** Unix ms. */
  now: number;
  /** The token response's `expires_in` (seconds), or null/undefined when the IdP gave none. */
  expiresInSeconds: number | null | undefined;
  /** The provider's `refresh_interval` (seconds), or null when unset. */
  refreshIntervalSeconds: number | null;
  /** Unix ms when the session ends (absolute; a refresh never extends it). */
  sessionExpiresAt: number;
}

/**
 * The unix ms of the next refresh: before the access token expires (margin min(60 s, 20 % of its
 * lifetime)), or after `refresh_interval` when that is sooner; 300 s when neither is known; never
 * sooner than now + 5 s. Null when that moment is not before the session's end: the session then
 * simply lives to its expiry.
 */
export function nextRefreshAt(input: RefreshScheduleInput): number | null {
  const { now, expiresInSeconds, refreshIntervalSeconds, sessionExpiresAt } = input;
  const candidates: number[] = [];
  if (typeof expiresInSeconds === 'number' && Number.isFinite(expiresInSeconds)) {
    const lifetimeMs = Math.max(0, expiresInSeconds * 1000);
    const marginMs = Math.min(REFRESH_MARGIN_MS, lifetimeMs * REFRESH_MARGIN_SHARE);
    candidates.push(now + lifetimeMs - marginMs);
  }
  if (refreshIntervalSeconds !== null && Number.isFinite(refreshIntervalSeconds)) {
    candidates.push(now + refreshIntervalSeconds * 1000);
  }
  const planned = candidates.length > 0 ? Math.min(...candidates) : now + DEFAULT_REFRESH_DELAY_MS;
  const at = Math.round(Math.max(planned, now + MIN_REFRESH_DELAY_MS));
  return at < sessionExpiresAt ? at : null;
}
