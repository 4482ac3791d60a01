// An RFC 6265 cookie jar for the scripted browser: Domain (with parent domains), Path, Secure, Max-Age/Expires.
import { isIP } from 'node:net';
import { parseCookie } from 'undici';

/** A cookie as the jar stores it. */
export interface StoredCookie {
  name: string;
  value: string;
  /** Lower-case, no leading dot. */
  domain: string;
  path: string;
  /** True when the cookie had no Domain attribute: it goes back to exactly this host only. */
  hostOnly: boolean;
  secure: boolean;
  /** Epoch milliseconds; undefined for a session cookie. */
  expiresAt?: number;
  createdAt: number;
}

/** The cookie jar of one scripted browser. */
export interface CookieJar {
  /** Stores one Set-Cookie header received from `url`; returns false when the header was rejected. */
  setCookie(url: string | URL, header: string, now?: number): boolean;
  /** The cookies a request to `url` would carry, in RFC 6265 order (longest path first, then oldest). */
  cookiesFor(url: string | URL, now?: number): StoredCookie[];
  /** The Cookie header value for `url`, or undefined when no cookie applies. */
  cookieHeaderFor(url: string | URL, now?: number): string | undefined;
  /** Every unexpired cookie, whatever its domain. */
  all(now?: number): StoredCookie[];
  clear(): void;
}

/** Creates an empty cookie jar. */
export function createCookieJar(): CookieJar {
  const store = new Map<string, StoredCookie>();
  const keyOf = (c: Pick<StoredCookie, 'name' | 'domain' | 'path'>) => `${c.domain};${c.path};${c.name}`;

  const purgeExpired = (now: number) => {
    for (const [key, cookie] of store) {
      if (cookie.expiresAt !== undefined && cookie.expiresAt <= now) store.delete(key);
    }
  };

  const cookiesFor = (url: string | URL, now = Date.now()): StoredCookie[] => {
    purgeExpired(now);
    const target = new URL(url);
    const host = canonicalHost(target);
    const secureChannel = target.protocol === 'https:' || target.protocol === 'wss:';
    return [...store.values()]
      .filter(
        (c) =>
          (c.hostOnly ? host === c.domain : domainMatches(host, c.domain)) &&
          pathMatches(target.pathname || '/', c.path) &&
          (!c.secure || secureChannel),
      )
      .sort((a, b) => b.path.length - a.path.length || a.createdAt - b.createdAt);
  };

  return {
    setCookie(url, header, now = Date.now()) {
      const target = new URL(url);
      const parsed = parseCookie(header);
      if (!parsed || (parsed.name === '' && parsed.value === '')) return false;
      const host = canonicalHost(target);

      let domain = host;
      let hostOnly = true;
      if (parsed.domain) {
        // A server may widen a cookie to a parent domain of itself, never to a sibling or an unrelated host.
        if (!domainMatches(host, parsed.domain)) return false;
        domain = parsed.domain;
        hostOnly = false;
      }

      const cookie: StoredCookie = {
        name: parsed.name,
        value: parsed.value,
        domain,
        path: parsed.path ?? defaultPath(target.pathname),
        hostOnly,
        secure: parsed.secure === true,
        createdAt: now,
      };
      const expiresAt = expiryOf(header, parsed.maxAge, parsed.expires, now);
      if (expiresAt !== undefined) cookie.expiresAt = expiresAt;

      const key = keyOf(cookie);
      const existing = store.get(key);
      if (existing) cookie.createdAt = existing.createdAt;
      if (cookie.expiresAt !== undefined && cookie.expiresAt <= now) {
        // An expiry in the past is how servers delete cookies.
        store.delete(key);
        return true;
      }
      store.set(key, cookie);
      return true;
    },

    cookiesFor,

    cookieHeaderFor(url, now) {
      const cookies = cookiesFor(url, now);
      if (cookies.length === 0) return undefined;
      return cookies.map((c) => (c.name === '' ? c.value : `${c.name}=${c.value}`)).join('; ');
    },

    all(now = Date.now()) {
      purgeExpired(now);
      return [...store.values()];
    },

    clear() {
      store.clear();
    },
  };
}

function canonicalHost(url: URL): string {
  // URL keeps IPv6 literals in brackets; cookies compare bare hosts.
  return url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

/** RFC 6265 §5.1.3: identical, or a parent domain of a host name (never of an IP address). */
function domainMatches(host: string, domain: string): boolean {
  if (host === domain) return true;
  return isIP(host) === 0 && host.endsWith(`.${domain}`);
}

/** RFC 6265 §5.1.4. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** RFC 6265 §5.1.4: the request path up to, not including, its last slash; "/" when that leaves nothing. */
function defaultPath(requestPath: string): string {
  if (!requestPath.startsWith('/')) return '/';
  const lastSlash = requestPath.lastIndexOf('/');
  return lastSlash <= 0 ? '/' : requestPath.slice(0, lastSlash);
}

/**
 * Max-Age wins over Expires (RFC 6265 §5.3 step 3). undici's parser drops a negative Max-Age,
 * which the RFC says means "expire now", so the raw header is checked for that case.
 */
function expiryOf(header: string, maxAge: number | undefined, expires: Date | number | undefined, now: number) {
  if (/;\s*max-age\s*=\s*-\d+\s*(?:;|$)/i.test(header)) return now - 1;
  if (maxAge !== undefined) return maxAge <= 0 ? now - 1 : now + maxAge * 1000;
  if (expires === undefined) return undefined;
  const at = typeof expires === 'number' ? expires : expires.getTime();
  return Number.isNaN(at) ? undefined : at;
}
