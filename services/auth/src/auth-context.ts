// What every handler of the auth service shares: providers by name, OIDC clients, key sets, the bus, the once-store.
import type { Bus } from '@portcullis/bus';
import type { IdpSessionTombstones, OnceStore, SessionReader } from '@portcullis/store';
import { AuthError, AuthErrorCode } from './errors.ts';
import type { OidcClients } from './oidc-clients.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import type { RemoteKeySets } from './remote-key-sets.ts';

/** Immutable state built by `start`, passed to each handler. */
export interface AuthContext {
  readonly providers: ReadonlyMap<string, ProviderRuntime>;
  readonly clients: OidcClients;
  /** The IdPs' signing keys (back-channel logout tokens are verified against them). */
  readonly keySets: RemoteKeySets;
  readonly bus: Bus;
  /**
   * Single-use keys; sessions are read only to find what the gateway does not hold (the ID token at
   * sign-out); IdP sessions a back-channel logout ended, so a credential under one appends nothing.
   */
  readonly store: OnceStore & Pick<SessionReader, 'getLiveSession'> & IdpSessionTombstones;
  /** Clock in unix ms. */
  readonly now: () => number;
}

/**
 * The provider a request names.
 * @throws AuthError BAD_REQUEST (500): the gateway and this service disagree about the config.
 */
export function lookupProvider(ctx: AuthContext, name: string): ProviderRuntime {
  const provider = ctx.providers.get(name);
  if (!provider) {
    throw new AuthError(
      AuthErrorCode.BadRequest,
      `The provider "${name}" is not configured on this auth service. The gateway and the auth service must run the same configuration.`,
      { statusCode: 500, title: 'Configuration mismatch' },
    );
  }
  return provider;
}

/** The OIDC client configuration of a provider (discovering it if needed). */
export function clientFor(ctx: AuthContext, provider: ProviderRuntime) {
  const { issuer, client_id, client_secret } = provider.config;
  return ctx.clients.get(issuer, client_id, client_secret);
}

/**
 * Marks `key` used (true the first time), holding `outcome` if given; a store that does not answer is a 503 naming it (`title`
 * heads the page or error), not an unexpected 500: nothing was done, and the same request may be retried.
 * @throws AuthError STORE_UNAVAILABLE (503).
 */
export async function consumeOnceOrUnavailable(ctx: AuthContext, key: string, ttlMs: number, what: string, title: string, outcome?: string): Promise<boolean> {
  try {
    return await ctx.store.consumeOnce(key, ttlMs, outcome);
  } catch (err) {
    throw new AuthError(AuthErrorCode.StoreUnavailable, `The session store is not answering, so ${what}. Nothing was changed; retry in a moment.`, {
      statusCode: 503,
      title,
      cause: err,
    });
  }
}
