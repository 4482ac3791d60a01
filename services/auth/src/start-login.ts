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
  const sealed = sealLoginState(config.cookie_secret, { s: state, n: nonce, v: verifier, r: req.redirect, p: config.name });
  const cookie = serializeCookie(loginStateCookieName(config.client_id, state), sealed, {
    domain: config.cookie_domain,
    secure: provider.secure,
    maxAgeSeconds: LOGIN_STATE_TTL_SECONDS,
    path: '/',
  });
  return redirectReply(authorizeUrl.href, [cookie]);
}
