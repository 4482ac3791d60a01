// Per-provider values derived once from the config (callback URL, cookie names, compiled mappings).
import type { ProviderConfig } from '@portcullis/config';
import { type CompiledScopeMappings, compileScopeMappings } from '@portcullis/expressions';
import { sessionCookieName } from '@portcullis/protocol';

/** Path of the OAuth callback under a provider's external host. */
export const CALLBACK_PATH = '/outpost.goauthentik.io/callback';

/** Everything a handler needs about one provider, computed at start and never mutated. */
export interface ProviderRuntime {
  readonly config: ProviderConfig;
  readonly mappings: CompiledScopeMappings;
  /** `<external_host>/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`, as authentik registers it. */
  readonly redirectUri: string;
  /** Cookies get `Secure` when the external host is https. */
  readonly secure: boolean;
  readonly sessionCookieName: string;
}

/** The redirect URI authentik registers for a proxy provider (external_host has no trailing slash, may have a path). */
export function buildRedirectUri(externalHost: string): string {
  return `${externalHost}${CALLBACK_PATH}?X-authentik-auth-callback=true`;
}

/**
 * Derives a provider's runtime values. Mappings were validated when the config was loaded, so a
 * compile error here is a bug and is thrown as is.
 */
export function buildProviderRuntime(config: ProviderConfig): ProviderRuntime {
  return {
    config,
    mappings: compileScopeMappings(config.scope_mappings),
    redirectUri: buildRedirectUri(config.external_host),
    secure: new URL(config.external_host).protocol === 'https:',
    sessionCookieName: sessionCookieName(config.client_id),
  };
}
