// One jose remote JWKS per IdP key-set URL, so keys are fetched once and refetched only for an unknown `kid`.
import { createRemoteJWKSet, errors, type JWKSCacheInput, type JWTVerifyGetKey, jwksCache } from 'jose';

/** A key set is fetched again for a token naming a key it lacks at most this often (jose's default). */
export const KEY_SET_REFETCH_COOLDOWN_MS = 30_000;

/**
 * No key of the cached set matches the token, and the set was fetched too recently to be fetched
 * again: the IdP may have rotated its keys since, so the token cannot be judged before `retryAfterMs`.
 * A subclass of jose's JWKSNoMatchingKey, so a caller that does not tell the two apart refuses the token as before.
 */
export class KeyNotInRecentKeySet extends errors.JWKSNoMatchingKey {
  /** When the set may be fetched again, in ms from now. */
  readonly retryAfterMs: number;
  /** How long ago the set in use was fetched, in ms. */
  readonly fetchedMsAgo: number;

  constructor(retryAfterMs: number, fetchedMsAgo: number) {
    super('no key of the recently fetched key set matches, and the cool-down forbids fetching it again yet');
    this.retryAfterMs = retryAfterMs;
    this.fetchedMsAgo = fetchedMsAgo;
  }
}

/**
 * Keeps the remote key sets of the IdPs. jose caches each set (10 min) and refetches it when a
 * token names a key it does not know (at most once per cool-down, 30 s), which follows IdP key
 * rotation without letting a stream of forged `kid`s hammer the IdP. A token naming an unknown key
 * while the set is cooling down fails with {@link KeyNotInRecentKeySet} (not judged yet); once the
 * set was fetched for it, with jose's plain JWKSNoMatchingKey (the IdP does not publish that key).
 */
export class RemoteKeySets {
  readonly #sets = new Map<string, JWTVerifyGetKey>();
  readonly #timeoutMs: number;
  readonly #cooldownMs: number;

  /**
   * @param timeoutMs Upper bound of each JWKS fetch (the same bound as every other IdP call).
   * @param cooldownMs Least time between two fetches of a set for unknown keys (tests shorten it).
   */
  constructor(timeoutMs: number, cooldownMs = KEY_SET_REFETCH_COOLDOWN_MS) {
    this.#timeoutMs = timeoutMs;
    this.#cooldownMs = cooldownMs;
  }

  /** The key resolver for `jwksUri` (created on first use, then shared). */
  get(jwksUri: string): JWTVerifyGetKey {
    let set = this.#sets.get(jwksUri);
    if (!set) {
      set = this.#create(jwksUri);
      this.#sets.set(jwksUri, set);
    }
    return set;
  }

  #create(jwksUri: string): JWTVerifyGetKey {
    const cooldownMs = this.#cooldownMs;
    // jose records the time of each successful fetch here (`uat`).
    const cache: JWKSCacheInput = {};
    const remote = createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: Math.round(this.#timeoutMs),
      cooldownDuration: cooldownMs,
      [jwksCache]: cache,
    });
    return async (protectedHeader, token) => {
      // Read before the lookup: cooling down now means jose will not fetch the set for this token,
      // so a miss says only that the key is not in a set fetched less than the cool-down ago.
      const coolingDown = remote.coolingDown;
      try {
        return await remote(protectedHeader, token);
      } catch (err) {
        if (!coolingDown || !(err instanceof errors.JWKSNoMatchingKey)) throw err;
        const fetchedAt = (cache as { uat?: number }).uat ?? Date.now();
        const fetchedMsAgo = Math.max(0, Date.now() - fetchedAt);
        throw new KeyNotInRecentKeySet(Math.max(0, cooldownMs - fetchedMsAgo), fetchedMsAgo);
      }
    };
  }
}
