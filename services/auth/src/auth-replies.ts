// Builders of AuthReply values: redirects, pages, and the funnels that turn any error into a page or an OAuth JSON error.
import type { AuthReply } from '@portcullis/events';
import { AuthError } from './errors.ts';

/** A 302 to `location`. */
export function redirectReply(location: string, setCookies: string[] = []): AuthReply {
  return { status: 302, location, setCookies };
}

/** A page for the gateway to render. */
export function pageReply(status: number, title: string, message: string, setCookies: string[] = []): AuthReply {
  return { status, setCookies, page: { title, message } };
}

/**
 * The reply for a failed request. AuthErrors become their own page; anything else is a bug or an
 * unforeseen failure and becomes a generic 500 page that leaks nothing about the cause.
 */
export function errorReply(err: unknown, setCookies: string[] = []): AuthReply {
  if (err instanceof AuthError && err.expose) return pageReply(err.statusCode, err.title, err.message, setCookies);
  return pageReply(
    500,
    'Something went wrong',
    'An unexpected error stopped this request. Please try again; if it keeps happening, tell your administrator.',
    setCookies,
  );
}

/**
 * The reply for a failed back-channel logout: an OAuth-style JSON body, as the IdP (a machine)
 * expects. 4xx → `invalid_request`, 503 → `temporarily_unavailable`; anything that is not an
 * exposed AuthError becomes a 500 `server_error` that leaks nothing about the cause.
 */
export function oauthErrorReply(err: unknown): AuthReply {
  if (err instanceof AuthError && err.expose) {
    const error = err.statusCode < 500 ? 'invalid_request' : err.statusCode === 503 ? 'temporarily_unavailable' : 'server_error';
    const reply: AuthReply = { status: err.statusCode, setCookies: [], json: { error, error_description: err.message } };
    if (err.retryAfterSeconds !== undefined) reply.retryAfterSeconds = err.retryAfterSeconds;
    return reply;
  }
  return {
    status: 500,
    setCookies: [],
    json: { error: 'server_error', error_description: 'An unexpected error stopped the logout; it was not recorded. Retry later.' },
  };
}
