// Per-provider state compiled once per config: cookie names, skip rules, header stripper, upstream pools.
import type { PortcullisConfig, ProviderConfig } from '@portcullis/config';
import {
  type SkipRules,
  buildHeaderStripper,
  compileSkipRules,
  sessionCookieName,
  stateCookieName,
} from '@portcullis/protocol';

/** Everything the request path needs about one provider, precomputed. */
export interface ProviderRuntime {
  config: ProviderConfig;
  name: string;
  /** external_host parsed. */
  externalUrl: URL;
  /** external_host origin (`https://app.company`), no path. */
  externalOrigin: string;
  /** external_host's host (`app.company`, with a port when it has one): the `host` label of metrics. */
  externalHost: string;
  /** external_host path prefix without trailing slash ("" when none): `/subdir`. */
  basePath: string;
  /** Whether cookies get the Secure attribute. */
  secure: boolean;
  sessionCookie: string;
  /** Prefix of the per-login state cookies. */
  stateCookiePrefix: string;
  skipRules: SkipRules;
  hasSkipRules: boolean;
  stripHeader: (name: string) => boolean;
  /** internal_host's origin (`http://app:8080`, proxy mode), or null: where requests are relayed. */
  internalOrigin: string | null;
  /** Raw cookie values whose signature was verified (bounded), so the HMAC runs once per cookie, not per request. */
  verifiedCookies: Map<string, { sessionId: string; seq: number }>;
}

/** Compiles the runtime of every provider; config has been validated, so nothing here fails on user input. */
export function compileProviders(config: PortcullisConfig): ProviderRuntime[] {
  return config.providers.map((p) => {
    const externalUrl = new URL(p.external_host);
    const { rules, errors } = compileSkipRules(p.skip_path_regex);
    if (errors.length > 0) {
      // Config validation rejects these; reaching here means a caller skipped validation.
      throw new Error(`providers "${p.name}": skip_path_regex line ${errors[0]!.line}: ${errors[0]!.message}`);
    }
    return {
      config: p,
      name: p.name,
      externalUrl,
      externalOrigin: externalUrl.origin,
      externalHost: externalUrl.host,
      basePath: externalUrl.pathname.replace(/\/+$/, ''),
      secure: externalUrl.protocol === 'https:',
      sessionCookie: sessionCookieName(p.client_id),
      stateCookiePrefix: stateCookieName(p.client_id),
      skipRules: rules,
      hasSkipRules: p.skip_path_regex.trim() !== '',
      stripHeader: buildHeaderStripper(p.strip_headers),
      internalOrigin: p.internal_host ? new URL(p.internal_host).origin : null,
      verifiedCookies: new Map(),
    };
  });
}
