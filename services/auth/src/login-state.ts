// The login state carried by the browser between start and callback: sealed in a per-login cookie, nothing kept in memory.
import { createHash } from 'node:crypto';
import { sealPayload, stateCookieName, unsealPayload } from '@portcullis/protocol';

/** Purpose string of the seal: a token sealed for anything else never opens as login state. */
const LOGIN_STATE_PURPOSE = 'portcullis-login-state';

/** Lifetime of a login attempt: the cookie, the seal and the replay guard all last this long. */
export const LOGIN_STATE_TTL_SECONDS = 600;

/** What start seals and callback opens. Short keys keep the cookie small. */
export interface LoginState {
  /** OAuth `state` (32 random bytes, base64url). */
  s: string;
  /** OIDC `nonce`. */
  n: string;
  /** PKCE code verifier. */
  v: string;
  /** Where to send the browser after login; null = the provider's external_host. */
  r: string | null;
  /** Provider name the login was started for. */
  p: string;
}

/**
 * Cookie name of one login attempt: the provider's state cookie name plus the first 12 characters
 * of the state, so several tabs can be logging in at once without overwriting each other.
 */
export function loginStateCookieName(clientId: string, state: string): string {
  return `${stateCookieName(clientId)}_${state.slice(0, 12)}`;
}

/** Seals a login state with the provider's cookie secret. */
export function sealLoginState(cookieSecret: string, state: LoginState): string {
  return sealPayload(cookieSecret, LOGIN_STATE_PURPOSE, { ...state }, LOGIN_STATE_TTL_SECONDS);
}

/** Opens a sealed login state; null when tampered with, expired, sealed with another secret, or malformed. */
export function openLoginState(cookieSecret: string, token: string): LoginState | null {
  const payload = unsealPayload(cookieSecret, LOGIN_STATE_PURPOSE, token);
  if (payload === null) return null;
  const { s, n, v, r, p } = payload;
  if (typeof s !== 'string' || typeof n !== 'string' || typeof v !== 'string' || typeof p !== 'string') return null;
  if (r !== null && typeof r !== 'string') return null;
  return { s, n, v, r, p };
}

/** Key of the single-use guard of a state; hashed so the store never holds the state itself. */
export function loginStateOnceKey(state: string): string {
  return `login-state:${createHash('sha256').update(state).digest('hex')}`;
}
