// `sign_out`: record UserSignedOut before answering, clear the session cookie, then RP-initiated logout at the IdP.
import { type AuthReply, createEvent, type SignOutRequest } from '@portcullis/events';
import { serializeDeletionCookie } from '@portcullis/protocol';
import { buildEndSessionUrl } from 'openid-client';
import { type AuthContext, lookupProvider } from './auth-context.ts';
import { pageReply, redirectReply } from './auth-replies.ts';
import { AuthError, AuthErrorCode } from './errors.ts';

const SIGNED_OUT_TITLE = 'Signed out';
const SIGNED_OUT_MESSAGE = 'You have been signed out.';

/** What a sign-out tells the service's log line. */
export interface FinishedSignOut {
  reply: AuthReply;
  /** True when the IdP's end-session endpoint could not be used (discovery unavailable). */
  idpSkipped: boolean;
}

/**
 * Signs a user out. The UserSignedOut event is appended before anything is answered, so a success
 * reply always means every replica will deny the user's sessions; if the log refuses it the reply
 * is a 503, never a success.
 * @throws AuthError LOG_UNAVAILABLE (503).
 */
export async function signOut(ctx: AuthContext, req: SignOutRequest): Promise<FinishedSignOut> {
  const provider = lookupProvider(ctx, req.provider);
  const { config } = provider;
  const deleteSession = serializeDeletionCookie(provider.sessionCookieName, { domain: config.cookie_domain, secure: provider.secure });
  if (req.session === null) {
    return { reply: pageReply(200, SIGNED_OUT_TITLE, SIGNED_OUT_MESSAGE, [deleteSession]), idpSkipped: false };
  }

  // Gateways do not keep ID tokens in their caches: read the hint while the session is still live.
  let idToken = req.session.idToken;
  if (idToken === null) idToken = (await ctx.store.getLiveSession(req.session.sessionId).catch(() => null))?.idToken ?? null;

  let seq: number;
  try {
    seq = await ctx.bus.log.append(createEvent('UserSignedOut', { sub: req.session.sub, provider: config.name, reason: 'sign_out' }));
  } catch (err) {
    throw new AuthError(
      AuthErrorCode.LogUnavailable,
      'Your sign-out could not be recorded, so you are still signed in. Please try again in a moment.',
      { statusCode: 503, title: 'Sign-out failed', cause: err },
    );
  }

  // The sign-out is already effective here; the IdP round trip is a courtesy that must not undo it.
  let endSession: URL | null = null;
  let idpSkipped = false;
  try {
    const oidc = await ctx.clients.get(config.issuer, config.client_id, config.client_secret);
    if (oidc.serverMetadata().end_session_endpoint !== undefined) {
      const params: Record<string, string> = { client_id: config.client_id };
      if (idToken) params['id_token_hint'] = idToken;
      if (config.post_logout_redirect_uri !== null) params['post_logout_redirect_uri'] = config.post_logout_redirect_uri;
      endSession = buildEndSessionUrl(oidc, params);
    }
  } catch {
    idpSkipped = true;
  }

  const reply: AuthReply = endSession
    ? redirectReply(endSession.href, [deleteSession])
    : pageReply(
        200,
        SIGNED_OUT_TITLE,
        idpSkipped
          ? `${SIGNED_OUT_MESSAGE} The identity provider could not be reached, so you may still be signed in there.`
          : SIGNED_OUT_MESSAGE,
        [deleteSession],
      );
  return { reply: { ...reply, revokedAtSeq: seq }, idpSkipped };
}
