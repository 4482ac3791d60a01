// The session id under which a header-authenticated (machine-to-machine) credential is cached.
import { createHash } from 'node:crypto';

/**
 * base64url(sha256(provider, issuer, Authorization value)): the raw credential never becomes a key,
 * and the same credential for another provider or issuer maps elsewhere. Gateways compute it to find
 * the cached result; the auth service recomputes it before recording one.
 */
export function headerAuthSessionId(provider: string, issuer: string, authorization: string): string {
  return createHash('sha256').update(`${provider}\n${issuer}\n${authorization}`).digest('base64url');
}
