// The data a scope mapping sees at login: the authenticated user, the IdP's claims and the provider.

/**
 * Variables bound when a mapping runs, shaped like the objects authentik's Python mappings read
 * (`request.user.username`, `provider.proxyprovider.internal_host`). JSON numbers reach CEL as
 * `double`; use `int(x)` where an integer is needed.
 */
export interface MappingContext {
  request: {
    user: {
      username: string;
      email: string;
      name: string;
      uid: string;
      groups: string[];
      attributes: Record<string, unknown>;
    };
  };
  /** The IdP's claims (ID token merged with userinfo). */
  claims: Record<string, unknown>;
  provider: {
    name: string;
    proxyprovider: {
      internal_host: string;
      external_host: string;
    };
  };
}
