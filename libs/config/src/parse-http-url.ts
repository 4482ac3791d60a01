// Parses URLs that must be http(s) with a host, and tells loopback hosts apart.
import { isIP } from 'node:net';

/** Parses an absolute http:// or https:// URL with a host; returns the reason on failure. */
export function parseHttpUrl(value: string): URL | { reason: string } {
  if (!URL.canParse(value)) return { reason: `"${value}" is not an absolute URL` };
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { reason: `scheme "${url.protocol}" is not http: or https:` };
  if (url.hostname === '') return { reason: 'has no host' };
  return url;
}

/** True for localhost, *.localhost, 127.0.0.0/8 and ::1: traffic that never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
