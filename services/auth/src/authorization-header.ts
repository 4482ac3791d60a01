// Parsing of an `Authorization` header into a bearer token or Basic credentials, with nothing else decided here.
import { AuthError, AuthErrorCode } from './errors.ts';

/** The Basic user name authentik reserves for "the password is a token" (`Basic base64(goauthentik.io/token:<token>)`). */
export const TOKEN_BASIC_USER = 'goauthentik.io/token';

/** Longer headers are not credentials anyone issues; refusing them early keeps them out of IdP calls. */
export const MAX_AUTHORIZATION_LENGTH = 16 * 1024;

/** What an `Authorization` header carries. */
export type AuthorizationCredential = { kind: 'bearer'; token: string } | { kind: 'basic'; username: string; password: string };

/** RFC 6750 b64token (token68). */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Splits an `Authorization` header (scheme case-insensitive, as authentik and RFC 9110 do).
 * @throws AuthError HEADER_AUTH_REJECTED with a short reason for anything that is not
 * `Bearer <token68>` or `Basic <base64(user:password)>`.
 */
export function parseAuthorizationHeader(value: string): AuthorizationCredential {
  if (value.length > MAX_AUTHORIZATION_LENGTH) throw headerAuthRejected('authorization header too long');
  const match = /^([A-Za-z]+) +(\S+) *$/.exec(value);
  if (!match) throw headerAuthRejected('malformed authorization header');
  const scheme = (match[1] as string).toLowerCase();
  const rest = match[2] as string;
  if (scheme === 'bearer') {
    if (!TOKEN68.test(rest)) throw headerAuthRejected('malformed bearer token');
    return { kind: 'bearer', token: rest };
  }
  if (scheme === 'basic') {
    if (!BASE64.test(rest) || rest.length % 4 !== 0) throw headerAuthRejected('malformed basic credentials');
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0 || colon === decoded.length - 1) throw headerAuthRejected('malformed basic credentials');
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  throw headerAuthRejected('unsupported authorization scheme');
}

/**
 * The refusal of a credential. The message IS the reason the gateway gets: short, never a token
 * or a user name, never an IdP's own wording.
 */
export function headerAuthRejected(reason: string, cause?: unknown): AuthError {
  return new AuthError(AuthErrorCode.HeaderAuthRejected, reason, { statusCode: 401, title: 'Authentication refused', cause });
}
