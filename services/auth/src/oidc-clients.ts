// One openid-client Configuration per (issuer, client): discovered lazily, cached, retried with back-off.
import { createHash } from 'node:crypto';
import {
  allowInsecureRequests,
  ClientSecretBasic,
  ClientSecretPost,
  type ClientAuth,
  type Configuration,
  type CustomFetch,
  customFetch,
  discovery,
  enableNonRepudiationChecks,
} from 'openid-client';
import { translateIdpError } from './idp-errors.ts';

/** A client at an IdP, and the callback URLs of every provider that uses it. */
export interface OidcClientTarget {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Registered redirect URIs, query included (e.g. `…/callback?X-authentik-auth-callback=true`). */
  redirectUris: string[];
}

/** Tuning of {@link OidcClients}. */
export interface OidcClientsOptions {
  /** Upper bound of every IdP HTTP call, discovery included. */
  timeoutMs: number;
  /** First wait after a failed discovery; doubles per failure. Default 1000. */
  minBackoffMs?: number;
  /** Longest wait between discovery attempts. Default 30000. */
  maxBackoffMs?: number;
  /** Clock in unix ms (tests). */
  now?: () => number;
}

interface Entry {
  target: OidcClientTarget;
  config?: Configuration;
  pending?: Promise<Configuration>;
  failure?: { error: unknown; retryAt: number; delayMs: number };
}

/** Identity of a cached client: the secret is hashed so the key itself never holds it. */
export function clientKey(issuer: string, clientId: string, clientSecret: string): string {
  const secretHash = createHash('sha256').update(clientSecret).digest('hex');
  return `${issuer}\n${clientId}\n${secretHash}`;
}

/** True when the issuer uses plain http (allowed, e.g. a dev IdP); the caller warns unless it is loopback. */
export function isInsecureIssuer(issuer: string): boolean {
  return new URL(issuer).protocol === 'http:';
}

/** True when a URL points at this machine (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Holds the discovered client configurations. `get` never blocks longer than one discovery
 * (bounded by the timeout); after a failure it answers with that failure at once until the
 * back-off has passed, so a dead IdP costs one slow request per back-off period, not one per user.
 */
export class OidcClients {
  readonly #entries = new Map<string, Entry>();
  readonly #timeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #now: () => number;

  constructor(targets: OidcClientTarget[], options: OidcClientsOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#minBackoffMs = options.minBackoffMs ?? 1000;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    for (const target of targets) {
      const key = clientKey(target.issuer, target.clientId, target.clientSecret);
      const known = this.#entries.get(key);
      if (known) {
        known.target.redirectUris.push(...target.redirectUris);
      } else {
        this.#entries.set(key, { target: { ...target, redirectUris: [...target.redirectUris] } });
      }
    }
  }

  /** The timeout applied to every IdP call. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /**
   * The configuration of a client, discovering it if needed.
   * @throws AuthError IDP_UNAVAILABLE / IDP_RESPONSE_INVALID (502) when discovery fails or is in back-off.
   */
  async get(issuer: string, clientId: string, clientSecret: string): Promise<Configuration> {
    const entry = this.#entries.get(clientKey(issuer, clientId, clientSecret));
    if (!entry) throw new Error(`no OIDC client registered for ${issuer} / ${clientId}`);
    if (entry.config) return entry.config;
    if (entry.pending) return entry.pending;
    if (entry.failure && this.#now() < entry.failure.retryAt) throw entry.failure.error;
    entry.pending = this.#discover(entry).finally(() => {
      entry.pending = undefined;
    });
    return entry.pending;
  }

  /** The configuration if discovery already succeeded, without any network call. */
  peek(issuer: string, clientId: string, clientSecret: string): Configuration | undefined {
    return this.#entries.get(clientKey(issuer, clientId, clientSecret))?.config;
  }

  /** Starts discovery of every client in the background; failures are kept for the next `get`. */
  prefetchAll(): Promise<void> {
    const all = [...this.#entries.values()].map((e) =>
      this.get(e.target.issuer, e.target.clientId, e.target.clientSecret).then(
        () => undefined,
        () => undefined,
      ),
    );
    return Promise.all(all).then(() => undefined);
  }

  async #discover(entry: Entry): Promise<Configuration> {
    const { target } = entry;
    try {
      const config = await discovery(new URL(target.issuer), target.clientId, target.clientSecret, chooseClientAuth(target.clientSecret), {
        [customFetch]: restoreRedirectUriQuery(target.redirectUris),
        // openid-client takes seconds; it then applies the same bound to every later call of this config.
        timeout: this.#timeoutMs / 1000,
        execute: [
          // The ID token from the token endpoint is only trusted after a JWKS signature check:
          // with an http issuer there is no TLS to vouch for it.
          enableNonRepudiationChecks,
          ...(isInsecureIssuer(target.issuer) ? [allowInsecureRequests] : []),
        ],
      });
      entry.config = config;
      entry.failure = undefined;
      return config;
    } catch (err) {
      const error = translateIdpError(err, { stage: 'discovery', issuer: target.issuer, timeoutMs: this.#timeoutMs });
      const delayMs = entry.failure ? Math.min(entry.failure.delayMs * 2, this.#maxBackoffMs) : this.#minBackoffMs;
      entry.failure = { error, retryAt: this.#now() + delayMs, delayMs };
      throw error;
    }
  }
}

/**
 * client_secret_basic is the OAuth default every IdP must accept; fall back to client_secret_post
 * only when the IdP says it does not support basic.
 */
function chooseClientAuth(clientSecret: string): ClientAuth {
  const basic = ClientSecretBasic(clientSecret);
  const post = ClientSecretPost(clientSecret);
  return (as, client, body, headers) => {
    const supported = as.token_endpoint_auth_methods_supported;
    const usePost = Array.isArray(supported) && !supported.includes('client_secret_basic') && supported.includes('client_secret_post');
    (usePost ? post : basic)(as, client, body, headers);
  };
}

/**
 * openid-client derives the token request's `redirect_uri` from the callback URL with its query
 * removed, but authentik-style callback URLs carry a fixed query (`?X-authentik-auth-callback=true`)
 * that must match the registration exactly. This fetch puts the registered URI back: when the body's
 * `redirect_uri` is one of ours without its query, it is replaced by the full registered value.
 */
function restoreRedirectUriQuery(redirectUris: string[]): CustomFetch {
  const byStripped = new Map<string, string>();
  for (const uri of redirectUris) {
    const stripped = new URL(uri);
    stripped.search = '';
    stripped.hash = '';
    byStripped.set(stripped.href, uri);
  }
  return (url, options) => {
    const body = options.body;
    if (body instanceof URLSearchParams && body.get('grant_type') === 'authorization_code') {
      const registered = byStripped.get(body.get('redirect_uri') ?? '');
      if (registered !== undefined) {
        const rewritten = new URLSearchParams(body);
        rewritten.set('redirect_uri', registered);
        return fetch(url, { ...options, body: rewritten });
      }
    }
    return fetch(url, options);
  };
}
