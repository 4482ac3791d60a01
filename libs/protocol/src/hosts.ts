// Host normalisation and the host → provider router (exact external host, then forward_domain suffix).
import { isIP } from 'node:net';

/** The three operating modes of a proxy provider, as named by authentik. */
export type ProviderMode = 'proxy' | 'forward_single' | 'forward_domain';

const DIGITS = /^[0-9]+$/;
/** Distinct Host values a router remembers per scheme before its memo starts over. */
const ROUTE_MEMO_LIMIT = 4096;

/**
 * Normalises a Host header value (HOT): lower case, trailing dot of the name removed, the scheme's
 * default port (80/443) and an empty port removed, leading zeros of the port dropped, IPv6 literals
 * kept in (or put into) brackets. It does not validate the host.
 */
export function normalizeHost(host: string, scheme: 'http' | 'https'): string {
  const lower = host.toLowerCase();
  let name: string;
  let port: string;
  if (lower.charCodeAt(0) === 0x5b /* [ */) {
    const close = lower.indexOf(']');
    if (close === -1) return lower;
    name = lower.slice(0, close + 1);
    const rest = lower.slice(close + 1);
    if (rest === '') return name;
    if (rest.charCodeAt(0) !== 0x3a /* : */) return lower;
    port = rest.slice(1);
  } else {
    const colon = lower.indexOf(':');
    if (colon === -1) {
      name = lower;
      port = '';
    } else if (lower.indexOf(':', colon + 1) !== -1) {
      // Several colons without brackets can only be a bare IPv6 address.
      return isIP(lower) === 6 ? `[${lower}]` : lower;
    } else {
      name = lower.slice(0, colon);
      port = lower.slice(colon + 1);
    }
    if (name.endsWith('.')) name = name.slice(0, -1);
  }
  if (port === '') return name;
  if (DIGITS.test(port)) {
    const numeric = String(Number(port));
    if ((scheme === 'http' && numeric === '80') || (scheme === 'https' && numeric === '443')) return name;
    return name + ':' + numeric;
  }
  return name + ':' + port;
}

/** Removes the port from a normalised host (`[::1]:8443` → `[::1]`, `a.b:81` → `a.b`). */
export function stripPort(normalizedHost: string): string {
  if (normalizedHost.charCodeAt(0) === 0x5b /* [ */) {
    const close = normalizedHost.indexOf(']');
    return close === -1 ? normalizedHost : normalizedHost.slice(0, close + 1);
  }
  const colon = normalizedHost.indexOf(':');
  return colon === -1 ? normalizedHost : normalizedHost.slice(0, colon);
}

/** Normalises a cookie domain for suffix matching: leading dots removed, trailing dot removed, lower case. */
export function normalizeCookieDomain(cookieDomain: string): string {
  let domain = cookieDomain.trim().toLowerCase().replace(/^\.+/, '');
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  return domain;
}

/** The facts about a provider the host router needs. */
export interface RoutableProvider {
  mode: ProviderMode;
  /** Absolute URL, e.g. `https://app.company`. */
  externalHost: string;
  cookieDomain: string;
}

/** The normalised `host[:port]` of an absolute external_host URL, or undefined when it does not parse. */
export function externalHostKey(externalHost: string): string | undefined {
  let url: URL;
  try {
    url = new URL(externalHost);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return normalizeHost(url.host, url.protocol === 'https:' ? 'https' : 'http');
}

/**
 * Precomputes host → provider routing (the returned function is HOT). Order: (1) exact match of
 * the normalised request host with the external host's `host[:port]`; (2) among forward_domain
 * providers, the longest cookie domain equal to the hostname or a dot-boundary suffix of it;
 * (3) the only provider when exactly one is configured. Returns the provider index or undefined.
 * On duplicates the first provider wins.
 */
export function buildHostRouter(
  providers: readonly RoutableProvider[],
): (host: string, scheme: 'http' | 'https') => number | undefined {
  const exact = new Map<string, number>();
  const domains = new Map<string, number>();
  providers.forEach((provider, index) => {
    const key = externalHostKey(provider.externalHost);
    if (key !== undefined && !exact.has(key)) exact.set(key, index);
    if (provider.mode === 'forward_domain') {
      const domain = normalizeCookieDomain(provider.cookieDomain);
      if (domain !== '' && !domains.has(domain)) domains.set(domain, index);
    }
  });
  const fallback = providers.length === 1 ? 0 : undefined;
  const hasDomains = domains.size > 0;
  // Clients repeat their Host header: remember recent answers per scheme (-1: no provider). The
  // cap bounds memory, as Host values are client-chosen; clearing is cheaper than an LRU.
  const memo = { http: new Map<string, number>(), https: new Map<string, number>() };

  return function routeHost(host: string, scheme: 'http' | 'https'): number | undefined {
    const seen = scheme === 'https' ? memo.https : scheme === 'http' ? memo.http : undefined;
    if (seen === undefined) return resolve(host, scheme);
    const known = seen.get(host);
    if (known !== undefined) return known === -1 ? undefined : known;
    const index = resolve(host, scheme);
    if (seen.size >= ROUTE_MEMO_LIMIT) seen.clear();
    seen.set(host, index ?? -1);
    return index;
  };

  function resolve(host: string, scheme: 'http' | 'https'): number | undefined {
    const normalized = normalizeHost(host, scheme);
    const byHost = exact.get(normalized);
    if (byHost !== undefined) return byHost;
    if (hasDomains) {
      // Walk label boundaries from the left: the first hit is the longest matching cookie domain.
      let candidate = stripPort(normalized);
      for (;;) {
        const byDomain = domains.get(candidate);
        if (byDomain !== undefined) return byDomain;
        const dot = candidate.indexOf('.');
        if (dot === -1) break;
        candidate = candidate.slice(dot + 1);
      }
    }
    return fallback;
  }
}
