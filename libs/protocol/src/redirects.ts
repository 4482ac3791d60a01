// Validation of the post-login redirect target (`rd`): an open-redirect guard stricter than authentik's.
import type { ProviderMode } from './hosts.ts';
import { normalizeCookieDomain } from './hosts.ts';

/** The provider facts a redirect is checked against. */
export interface RedirectContext {
  mode: ProviderMode;
  /** Absolute external_host URL of the provider. */
  externalHost: string;
  cookieDomain: string;
}

/** Longer than any sane URL; refusing early bounds the work an attacker can cause. */
const MAX_REDIRECT_CHARS = 8192;
/** ASCII controls (tab, CR, LF, NUL, …), DEL and backslash: browsers drop or reinterpret them. */
const FORBIDDEN_CHARS = /[\x00-\x1f\x7f\\]/;
/** `//host` and `/\host` are protocol-relative to a browser; never accept them. */
const PROTOCOL_RELATIVE = /^[/\\]{2}/;
/** The only absolute forms accepted: `http://` or `https://` with the slashes spelt out. */
const ABSOLUTE_HTTP = /^https?:\/\//i;

/**
 * Returns the absolute URL to send the user to after login, or null when `rd` must be ignored (the
 * caller then falls back to external_host). Accepted: a path starting with a single `/` (resolved
 * against external_host) or an absolute `http(s)://` URL without credentials whose host is
 * external_host's (proxy, forward_single) or, in forward_domain, whose hostname is the cookie domain
 * or a dot-boundary subdomain of it (external_host's host when the cookie domain is empty).
 * A fully qualified host (`app.company.`) is accepted as its canonical form, without the dot.
 * Refused outright: ASCII control characters or backslashes (raw or after one round of
 * percent-decoding), protocol-relative forms, other schemes and scheme-relative `https:host`.
 */
export function validateRedirect(rd: string | undefined, ctx: RedirectContext): string | null {
  if (rd === undefined || rd === '' || rd.length > MAX_REDIRECT_CHARS) return null;
  if (FORBIDDEN_CHARS.test(rd) || rd.trim() !== rd) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rd);
  } catch {
    // A malformed escape: Go's url.Parse refuses it too.
    return null;
  }
  if (FORBIDDEN_CHARS.test(decoded) || PROTOCOL_RELATIVE.test(rd) || PROTOCOL_RELATIVE.test(decoded)) return null;
  const isRelative = rd.charCodeAt(0) === 0x2f; /* / */
  if (!isRelative && !ABSOLUTE_HTTP.test(rd)) return null;

  let base: URL;
  let url: URL;
  try {
    base = new URL(ctx.externalHost);
    url = new URL(rd, base);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username !== '' || url.password !== '') return null;
  // `app.company.` is app.company (hosts route without the trailing dot too), but a browser keeps
  // cookies apart by host: sent back to `app.company./x` the user would not carry the session just
  // set for app.company and would loop through login. The page asked for is kept, on the canonical host.
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);

  if (ctx.mode === 'forward_domain') {
    const domain = normalizeCookieDomain(ctx.cookieDomain);
    if (domain === '') {
      if (url.host !== base.host) return null;
    } else if (url.hostname !== domain && !url.hostname.endsWith('.' + domain)) {
      return null;
    }
  } else if (url.host !== base.host) {
    return null;
  }
  return url.href;
}
