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
  url: URL;
  /**
   * The URL parser resolves `.`/`..` (also `%2e`) and reads `\` as `/`; the upstream gets the raw
   * path, which it may not resolve the same way. Skip rules must judge this (see `normalizePath`).
   * Computed on first read: a request with a session never needs it (HOT).
   */
  readonly rawPath: string;
}

/** An {@link OriginalRequest} whose raw path is cut out of the sent target only when asked for. */
class Original implements OriginalRequest {
  #target: string;
  #absolute: boolean;
  #rawPath: string | undefined;
  constructor(
    readonly url: URL,
    target: string,
    absolute: boolean,
  ) {
    this.#target = target;
    this.#absolute = absolute;
  }
  get rawPath(): string {
    this.#rawPath ??= this.#absolute ? rawPathOfAbsolute(this.#target) : pathPart(this.#target);
    return this.#rawPath;
  }
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
  return url.username === '' && url.password === '' ? new Original(url, pathAndQuery, false) : null;
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
      let url: URL;
      try {
        url = new URL(originalUrl);
      } catch {
        return null;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
      return url.username === '' && url.password === '' ? new Original(url, originalUrl, true) : null;
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
