// `start`: a new login attempt — state, nonce and PKCE sealed into a per-attempt cookie, then off to the IdP.
import type { AuthReply, StartLoginRequest } from '@portcullis/events';
import { randomToken, serializeCookie } from '@portcullis/protocol';
import { buildAuthorizationUrl, calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier } from 'openid-client';
import { type AuthContext, clientFor, lookupProvider } from './auth-context.ts';
import { redirectReply } from './auth-replies.ts';
import { LOGIN_STATE_TTL_SECONDS, loginStateCookieName, sealLoginState } from './login-state.ts';

/**
 * Starts a login. Nothing is kept in memory: everything the callback needs travels sealed in the
 * state cookie, so any replica (or a restarted one) can finish the login.
 * @throws AuthError 502 when the IdP cannot be discovered.
 */
export async function startLogin(ctx: AuthContext, req: StartLoginRequest): Promise<AuthReply> {
  const provider = lookupProvider(ctx, req.provider);
  const { config } = provider;
  const oidc = await clientFor(ctx, provider);
  const state = randomToken(32);
  const nonce = randomNonce();
  const verifier = randomPKCECodeVerifier();
  const authorizeUrl = buildAuthorizationUrl(oidc, {
    redirect_uri: provider.redirectUri,
    response_type: 'code',
    scope: config.scopes.join(' '),
    state,
    nonce,
    code_challenge: await calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const name = loginStateCookieName(config.client_id, state);
  const sealed = sealFitting(name, req.redirect, (r) => sealLoginState(config.cookie_secret, { s: state, n: nonce, v: verifier, r, p: config.name }));
  const cookie = serializeCookie(name, sealed, {
    domain: config.cookie_domain,
    secure: provider.secure,
    maxAgeSeconds: LOGIN_STATE_TTL_SECONDS,
    path: '/',
  });
  return redirectReply(authorizeUrl.href, [cookie]);
}

/** Browsers drop (silently) a cookie whose name and value together exceed 4096 bytes. */
const MAX_COOKIE_NAME_VALUE_BYTES = 4096;

/**
 * Seals the login state with the redirect, or, when the cookie would be too large for a browser to
 * keep (which would fail the callback), with the redirect's query dropped, or without a redirect.
 */
function sealFitting(name: string, redirect: string | null, seal: (r: string | null) => string): string {
  const candidates: Array<string | null> = [redirect];
  if (redirect !== null && URL.canParse(redirect)) {
    const url = new URL(redirect);
    url.search = '';
    url.hash = '';
    candidates.push(url.href);
  }
  if (redirect !== null) candidates.push(null);
  let sealed = '';
  for (const r of candidates) {
    sealed = seal(r);
    if (Buffer.byteLength(name) + Buffer.byteLength(sealed) <= MAX_COOKIE_NAME_VALUE_BYTES) break;
  }
  return sealed;
}
