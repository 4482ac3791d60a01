// Public entry of @portcullis/auth: the OIDC relying party service (start, callback, sign_out, backchannel_logout, header_auth over the bus; session refresh in the background).
export { createAuthService, type AuthLogger, type AuthService, type AuthServiceDeps } from './app.ts';
export { AuthError, AuthErrorCode, type AuthErrorOptions } from './errors.ts';
export { BACKCHANNEL_LOGOUT_PATH } from './backchannel-logout.ts';
export type { RefreshOutcome } from './session-refresher.ts';
export { headerAuthSessionId } from '@portcullis/protocol';
