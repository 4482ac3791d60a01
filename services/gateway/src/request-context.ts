// Who is asking and for which provider: peer trust, scheme, host and path split, computed once per request.
import type { IncomingHttpHeaders } from 'node:http';

/** The parts of an incoming request the gateway decides on (framework-free, so upgrades share it). */
export interface IncomingRequest {
  method: string;
  /** Raw request target as received (`/path?query`). */
  url: string;
  headers: IncomingHttpHeaders;
  /** Remote address of the TCP peer. */
  peer: string;
  /** True on the HTTPS listener. */
  encrypted: boolean;
  /** Reads the request body as text, refusing more than `limit` bytes (absent on upgrade requests). */
  readBody?: (limit: number) => Promise<string>;
}

/** First value of a header that may arrive repeated. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Splits a raw request target into path and query (without `?`). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/** Scheme and Host the client used: from X-Forwarded-* only when the peer is trusted. */
export function clientFacingHost(req: IncomingRequest, trusted: boolean): { scheme: 'http' | 'https'; host: string } {
  let scheme: 'http' | 'https' = req.encrypted ? 'https' : 'http';
  let host = headerValue(req.headers, 'host') ?? '';
  if (trusted) {
    const proto = headerValue(req.headers, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
    if (proto === 'http' || proto === 'https') scheme = proto;
    const fwdHost = headerValue(req.headers, 'x-forwarded-host')?.split(',')[0]?.trim();
    if (fwdHost) host = fwdHost;
  }
  return { scheme, host };
}

/** Reads one query parameter without parsing the whole query unless it might be there. */
export function queryFlag(query: string, name: string): boolean {
  if (query === '' || !query.includes(name)) return false;
  return new URLSearchParams(query).get(name)?.toLowerCase() === 'true';
}

/** The outpost's own query flags (any path): authentik's callback and logout signatures. */
export const CALLBACK_FLAG = 'X-authentik-auth-callback';
export const LOGOUT_FLAG = 'X-authentik-logout';
export const OUTPOST_PREFIX = '/outpost.goauthentik.io/';
