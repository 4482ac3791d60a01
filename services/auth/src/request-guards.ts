// Shape checks of the gateway's requests: the bus carries `unknown`, handlers need the typed messages.
import type { BackchannelLogoutRequest, CallbackRequest, HeaderAuthRequest, SignOutRequest, StartLoginRequest } from '@portcullis/events';
import { AuthError, AuthErrorCode } from './errors.ts';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(subject: string): AuthError {
  return new AuthError(AuthErrorCode.BadRequest, `The gateway sent a malformed ${subject} request.`, { statusCode: 500 });
}

/** @throws AuthError BAD_REQUEST when `payload` is not a {@link StartLoginRequest}. */
export function parseStartLoginRequest(payload: unknown): StartLoginRequest {
  if (!isRecord(payload) || typeof payload['provider'] !== 'string') throw malformed('start');
  const redirect = payload['redirect'];
  if (redirect !== null && typeof redirect !== 'string') throw malformed('start');
  return { provider: payload['provider'], redirect };
}

/** @throws AuthError BAD_REQUEST when `payload` is not a {@link CallbackRequest}. */
export function parseCallbackRequest(payload: unknown): CallbackRequest {
  if (!isRecord(payload) || typeof payload['provider'] !== 'string' || typeof payload['query'] !== 'string') {
    throw malformed('callback');
  }
  const cookies = payload['stateCookies'];
  if (!isRecord(cookies)) throw malformed('callback');
  const stateCookies: Record<string, string> = {};
  for (const [name, value] of Object.entries(cookies)) {
    if (typeof value === 'string') stateCookies[name] = value;
  }
  return { provider: payload['provider'], query: payload['query'], stateCookies };
}

/** @throws AuthError BAD_REQUEST when `payload` is not a {@link SignOutRequest}. */
export function parseSignOutRequest(payload: unknown): SignOutRequest {
  if (!isRecord(payload) || typeof payload['provider'] !== 'string') throw malformed('sign_out');
  const session = payload['session'];
  if (session === null) return { provider: payload['provider'], session: null };
  if (
    !isRecord(session) ||
    typeof session['sessionId'] !== 'string' ||
    typeof session['sub'] !== 'string' ||
    (session['idToken'] !== null && typeof session['idToken'] !== 'string')
  ) {
    throw malformed('sign_out');
  }
  return {
    provider: payload['provider'],
    session: { sessionId: session['sessionId'], sub: session['sub'], idToken: session['idToken'] as string | null },
  };
}

/** @throws AuthError BAD_REQUEST when `payload` is not a {@link BackchannelLogoutRequest}. */
export function parseBackchannelLogoutRequest(payload: unknown): BackchannelLogoutRequest {
  if (
    !isRecord(payload) ||
    typeof payload['provider'] !== 'string' ||
    typeof payload['contentType'] !== 'string' ||
    typeof payload['body'] !== 'string'
  ) {
    throw malformed('backchannel_logout');
  }
  return { provider: payload['provider'], contentType: payload['contentType'], body: payload['body'] };
}

/** @throws AuthError BAD_REQUEST when `payload` is not a {@link HeaderAuthRequest}. */
export function parseHeaderAuthRequest(payload: unknown): HeaderAuthRequest {
  if (
    !isRecord(payload) ||
    typeof payload['provider'] !== 'string' ||
    typeof payload['authorization'] !== 'string' ||
    typeof payload['sessionId'] !== 'string'
  ) {
    throw malformed('header_auth');
  }
  return { provider: payload['provider'], authorization: payload['authorization'], sessionId: payload['sessionId'] };
}
