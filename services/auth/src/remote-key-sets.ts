// One jose remote JWKS per IdP key-set URL, so keys are fetched once and refetched only for an unknown `kid`.
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';

/**
 * Keeps the remote key sets of the IdPs. jose caches each set (10 min) and refetches it when a
 * token names a key it does not know (at most once per 30 s), which follows IdP key rotation
 * without letting a stream of forged `kid`s hammer the IdP.
 */
export class RemoteKeySets {
  readonly #sets = new Map<string, JWTVerifyGetKey>();
  readonly #timeoutMs: number;

  /** @param timeoutMs Upper bound of each JWKS fetch (the same bound as every other IdP call). */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** The key resolver for `jwksUri` (created on first use, then shared). */
  get(jwksUri: string): JWTVerifyGetKey {
    let set = this.#sets.get(jwksUri);
    if (!set) {
      set = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: Math.round(this.#timeoutMs) });
      this.#sets.set(jwksUri, set);
    }
    return set;
  }
}
