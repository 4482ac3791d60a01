// Reconstruction of the original request URL from what each front proxy sends to the forward-auth endpoint.

/** The front proxies whose forward-auth conventions Portcullis understands. */
export type ForwardFlavour = 'nginx' | 'traefik' | 'caddy' | 'envoy';

/** What the forward-auth request carried. The caller decides beforehand whether the peer is trusted. */
export interface ForwardRequestInput {
  /** Request headers with lower-case names, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** The Host of the auth request itself. */
  requestHost?: string;
  /** Envoy only: the request path with `/outpost.goauthentik.io/auth/envoy` stripped, query included. */
  requestPath?: string;
  /** Scheme of the listener that received the auth request. */
  requestScheme?: 'http' | 'https';
}

/** Characters that would let a host value smuggle userinfo, a path or a second authority. */
const BAD_HOST = /[\x00-\x20\x7f/\\?#@]/;
/** Controls are silently dropped by the URL parser, which would make the checked URL differ from the real one. */
const CONTROL = /[\x00-\x1f\x7f]/;

function firstHeader(headers: ForwardRequestInput['headers'], name: string): string | undefined {
  const raw = headers[name];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value === undefined || value === '' ? undefined : value;
}

/** First element of a comma-separated list, as chained proxies append to X-Forwarded-Proto/Host. */
function firstListItem(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const comma = value.indexOf(',');
  const item = (comma === -1 ? value : value.slice(0, comma)).trim();
  return item === '' ? undefined : item;
}

function parseProto(value: string | undefined): 'http' | 'https' | undefined {
  const proto = firstListItem(value)?.toLowerCase();
  return proto === 'http' || proto === 'https' ? proto : undefined;
}

/** The original URL, and its path exactly as the front proxy sent it (no query, nothing resolved). */
export interface OriginalRequest {
  /** Parsed on first read where the request came as one absolute URL (a request with a session never needs it: HOT). */
  readonly url: URL;
  /** `url.host` (lower case, default port left out), without parsing the whole URL where that is exact. */
  readonly host: string;
  /** The scheme `url.protocol` names. */
  readonly scheme: 'http' | 'https';
  /**
   * The URL parser resolves `.`/`..` (also `%2e`) and reads `\` as `/`; the upstream gets the raw
   * path, which it may not resolve the same way. Skip rules must judge this (see `normalizePath`).
   * Computed on first read: a request with a session never needs it (HOT).
   */
  readonly rawPath: string;
}

/** An {@link OriginalRequest} whose URL (if not given) and raw path are computed from the sent target only when asked for. */
class Original implements OriginalRequest {
  #url: URL | undefined;
  #target: string;
  #absolute: boolean;
  #rawPath: string | undefined;
  constructor(
    url: URL | undefined,
    target: string,
    absolute: boolean,
    readonly scheme: 'http' | 'https',
    readonly host: string,
  ) {
    this.#url = url;
    this.#target = target;
    this.#absolute = absolute;
  }
  get url(): URL {
    // Only absolute targets come without a URL: ones whose authority `fastAuthority` vouched for,
    // which the URL parser accepts (its path, query and fragment states never fail).
    this.#url ??= new URL(this.#target);
    return this.#url;
  }
  get rawPath(): string {
    this.#rawPath ??= this.#absolute ? rawPathOfAbsolute(this.#target) : pathPart(this.#target);
    return this.#rawPath;
  }
}

/** From a parsed URL (http or https only). */
function originalOf(url: URL, target: string, absolute: boolean): Original {
  return new Original(url, target, absolute, url.protocol === 'https:' ? 'https' : 'http', url.host);
}

/**
 * `scheme` and `host` as `new URL(value)` would give them, without parsing the rest (HOT: forward
 * auth from nginx sends the whole URL with every check), for an http(s) URL whose authority is in
 * the plain form the parser leaves as it is apart from case and a default port: letters, digits and
 * `-` in non-empty labels separated by `.`, the last not starting with a digit (the parser would
 * read an IPv4 address and normalize it), no `xn--` label (punycode, which the parser checks), an
 * optional port of 1 to 5 digits up to 65535, then the end or `/`, `?`, `#` — so no credentials
 * (`@`) and no `\` (a path separator to the parser). Undefined for anything else: the parser decides.
 * Exact where it answers (urls.test.ts holds it to the parser on tricky and random URLs).
 */
export function fastAuthority(value: string): { scheme: 'http' | 'https'; host: string } | undefined {
  let i = schemeEnd(value);
  if (i === 0) return undefined;
  const scheme = i === 8 ? 'https' : 'http';
  const start = i;
  let labelStart = i;
  let upper = false;
  for (; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (i === labelStart && (c | 0x20) === 0x78 /* x */ && isPunycodePrefix(value, i)) return undefined;
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d) continue;
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      continue;
    }
    if (c !== 0x2e /* . */) break;
    if (i === labelStart) return undefined;
    labelStart = i + 1;
  }
  const first = value.charCodeAt(labelStart);
  if (i === labelStart || (first >= 0x30 && first <= 0x39)) return undefined;
  const name = value.slice(start, i);
  let host = upper ? name.toLowerCase() : name;
  if (value.charCodeAt(i) === 0x3a /* : */) {
    let port = 0;
    const digits = ++i;
    for (; i < value.length && i - digits < 6; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      port = port * 10 + (c - 0x30);
    }
    if (i === digits || i - digits > 5 || port > 65535) return undefined;
    if (port !== (scheme === 'https' ? 443 : 80)) host += `:${port}`;
  }
  if (i < value.length) {
    const c = value.charCodeAt(i);
    if (c !== 0x2f /* / */ && c !== 0x3f /* ? */ && c !== 0x23 /* # */) return undefined;
  }
  return { scheme, host };
}

/** 7 after `http://`, 8 after `https://` (any case), else 0. */
function schemeEnd(value: string): number {
  if (value.length < 8) return 0;
  const h = value.charCodeAt(0) | 0x20;
  const t1 = value.charCodeAt(1) | 0x20;
  const t2 = value.charCodeAt(2) | 0x20;
  const p = value.charCodeAt(3) | 0x20;
  if (h !== 0x68 || t1 !== 0x74 || t2 !== 0x74 || p !== 0x70) return 0;
  let i = 4;
  if ((value.charCodeAt(i) | 0x20) === 0x73 /* s */) i++;
  return value.charCodeAt(i) === 0x3a && value.charCodeAt(i + 1) === 0x2f && value.charCodeAt(i + 2) === 0x2f ? i + 3 : 0;
}

/** `xn--` (any case) at `i`. */
function isPunycodePrefix(value: string, i: number): boolean {
  return (value.charCodeAt(i + 1) | 0x20) === 0x6e && value.charCodeAt(i + 2) === 0x2d && value.charCodeAt(i + 3) === 0x2d;
}

/** The path of a raw path-and-query or absolute URL: up to the first `?` or `#`. */
function pathPart(value: string): string {
  const end = value.search(/[?#]/);
  return end === -1 ? value : value.slice(0, end);
}

/** The raw path of an absolute URL string the URL parser accepted: after `scheme:`, slashes and the authority. */
function rawPathOfAbsolute(value: string): string {
  const rest = pathPart(value).replace(/^[a-z][a-z0-9+.-]*:[/\\]*/i, '');
  const slash = rest.search(/[/\\]/);
  return slash === -1 ? '/' : rest.slice(slash);
}

function buildUrl(proto: string | undefined, host: string | undefined, pathAndQuery: string | undefined): OriginalRequest | null {
  if (proto === undefined || host === undefined || pathAndQuery === undefined) return null;
  if (BAD_HOST.test(host) || CONTROL.test(pathAndQuery) || pathAndQuery.charCodeAt(0) !== 0x2f /* / */) return null;
  let url: URL;
  try {
    url = new URL(`${proto}://${host}${pathAndQuery}`);
  } catch {
    return null;
  }
  return url.username === '' && url.password === '' ? originalOf(url, pathAndQuery, false) : null;
}

/**
 * Rebuilds the URL the user asked the front proxy for; null when a needed header is missing or
 * unusable (the caller answers 500 "configuration error"). traefik/caddy: X-Forwarded-Proto +
 * X-Forwarded-Host + X-Forwarded-Uri. nginx: X-Original-URI (path + query) against
 * X-Forwarded-Proto/Host, else requestScheme/requestHost; otherwise the absolute X-Original-URL.
 * envoy: requestScheme (default http) + requestHost + requestPath. Duplicated headers: the first
 * value counts; a comma list in X-Forwarded-Proto/Host: the first item counts. Only http and https
 * are accepted, and never a URL with credentials. With it, the original path as sent (what skip
 * rules must judge).
 */
export function reconstructOriginalRequest(flavour: ForwardFlavour, input: ForwardRequestInput): OriginalRequest | null {
  const { headers } = input;
  switch (flavour) {
    case 'traefik':
    case 'caddy':
      return buildUrl(
        parseProto(firstHeader(headers, 'x-forwarded-proto')),
        firstListItem(firstHeader(headers, 'x-forwarded-host')),
        firstHeader(headers, 'x-forwarded-uri'),
      );
    case 'nginx': {
      const originalUri = firstHeader(headers, 'x-original-uri');
      if (originalUri !== undefined) {
        const forwardedProto = firstHeader(headers, 'x-forwarded-proto');
        const proto = forwardedProto === undefined ? input.requestScheme : parseProto(forwardedProto);
        const host = firstListItem(firstHeader(headers, 'x-forwarded-host')) ?? input.requestHost;
        return buildUrl(proto, host, originalUri);
      }
      const originalUrl = firstHeader(headers, 'x-original-url');
      if (originalUrl === undefined || CONTROL.test(originalUrl)) return null;
      const plain = fastAuthority(originalUrl);
      if (plain !== undefined) return new Original(undefined, originalUrl, true, plain.scheme, plain.host);
      let url: URL;
      try {
        url = new URL(originalUrl);
      } catch {
        return null;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
      return url.username === '' && url.password === '' ? originalOf(url, originalUrl, true) : null;
    }
    case 'envoy': {
      const path = input.requestPath ?? '';
      // The prefix is matched as a string, so `/auth/envoyX` leaves `X`: not a path of the original request.
      const pathAndQuery = path === '' ? '/' : path.charCodeAt(0) === 0x3f /* ? */ ? '/' + path : path;
      return buildUrl(input.requestScheme ?? 'http', input.requestHost, pathAndQuery);
    }
    default:
      return null;
  }
}
