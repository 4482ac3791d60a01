// Parses `host:port` listen and peer addresses (IPv6 in brackets: `[::]:9000`).
import { isIP } from 'node:net';

/** A parsed address, host without brackets. */
export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port`; returns the reason on failure. */
export function parseHostPort(value: string): HostPort | { reason: string } {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d*)$/.exec(value);
  if (!m) {
    return isIP(value) === 6
      ? { reason: 'an IPv6 address needs brackets and a port, e.g. [::]:9000' }
      : { reason: 'is not of the form host:port' };
  }
  const bracketed = m[1];
  const host = bracketed ?? m[2] ?? '';
  if (host === '') return { reason: 'has no host (use 0.0.0.0 or [::] for every interface)' };
  if (bracketed !== undefined && isIP(bracketed) !== 6) return { reason: `"${bracketed}" in brackets is not an IPv6 address` };
  if (bracketed === undefined && isIP(host) === 0 && !HOSTNAME.test(host)) return { reason: `"${host}" is not a valid host name or IPv4 address` };
  const portText = m[3] ?? '';
  const port = Number(portText);
  if (portText === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return { reason: `port "${portText}" is not a number from 1 to 65535` };
  }
  return { host, port };
}
