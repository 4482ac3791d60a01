// One jose remote JWKS per IdP key-set URL, so keys are fetched once and refetched only for an unknown `kid`.
import { createRemoteJWKSet, errors, type JWKSCacheInput, type JWTVerifyGetKey, jwksCache } from 'jose';
import { AuthError, type AuthErrorCode } from './errors.ts';

/** A key set is fetched again for a token naming a key it lacks at most this often (jose's default). */
export const KEY_SET_REFETCH_COOLDOWN_MS = 30_000;

/** At most this many missing kids are remembered per key set (the oldest go first: a flood of made-up kids costs bounded memory). */
const MAX_REMEMBERED_MISSING_KIDS = 1024;

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
 * The 503 for a token signed by a key the cached set lacks while it may not be fetched again yet:
 * `what` names the token ("The bearer token"), `code`/`title` the caller's error.
 */
export function keyNotYetKnown(err: KeyNotInRecentKeySet, issuer: string, what: string, code: AuthErrorCode, title: string, advice: string): AuthError {
  const retryAfterSeconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
  return new AuthError(
    code,
    `${what} is signed by a key that is not in the key set of the identity provider ${issuer} as fetched ` +
      `${Math.round(err.fetchedMsAgo / 1000)} s ago (a key rotation since?). The key set is fetched again for an unknown key at most ` +
      `every ${Math.round((err.retryAfterMs + err.fetchedMsAgo) / 1000)} s, so ${advice.replace('{s}', String(retryAfterSeconds))}`,
    { statusCode: 503, title, cause: err, retryAfterSeconds },
  );
}

/**
 * Keeps the remote key sets of the IdPs. jose caches each set (10 min) and refetches it when a
 * token names a key it does not know (at most once per cool-down, 30 s), which follows IdP key
 * rotation without letting a stream of forged `kid`s hammer the IdP. A token naming an unknown key
 * while the set is cooling down fails with {@link KeyNotInRecentKeySet} (not judged yet); once the
 * set was fetched for it, with jose's plain JWKSNoMatchingKey (the IdP does not publish that key) —
 * also when it comes again within the cool-down, as long as the set in use was fetched after the
 * key was first found missing (an IdP publishes a key before it signs with it).
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
    // kid → when a token naming it first found it missing. A set fetched at or after that time and
    // still without it has answered for that key: the IdP published it before signing with it, or never.
    const missingSince = new Map<string, number>();
    return async (protectedHeader, token) => {
      // Read before the lookup: cooling down now means jose will not fetch the set for this token,
      // so a miss says only that the key is not in a set fetched less than the cool-down ago.
      const coolingDown = remote.coolingDown;
      const lookedUpAt = Date.now();
      const kid = String(protectedHeader.kid ?? '');
      try {
        const key = await remote(protectedHeader, token);
        missingSince.delete(kid);
        return key;
      } catch (err) {
        if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
        const firstMissed = missingSince.get(kid);
        if (firstMissed === undefined) {
          if (missingSince.size >= MAX_REMEMBERED_MISSING_KIDS) missingSince.delete(missingSince.keys().next().value as string);
          missingSince.set(kid, lookedUpAt);
        }
        if (!coolingDown) throw err;
        const fetchedAt = (cache as { uat?: number }).uat ?? lookedUpAt;
        if (firstMissed !== undefined && fetchedAt >= firstMissed) throw err;
        const fetchedMsAgo = Math.max(0, Date.now() - fetchedAt);
        throw new KeyNotInRecentKeySet(Math.max(0, cooldownMs - fetchedMsAgo), fetchedMsAgo);
      }
    };
  }
}
