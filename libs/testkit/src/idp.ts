// A development OpenID Provider (oidc-provider) for tests and the demo. NOT FOR PRODUCTION: plain-text passwords, in-memory state, http issuer.
import { generateKeyPair, randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Account, ClientMetadata, Configuration, JWK, default as Provider } from 'oidc-provider';
import { TestkitError, TestkitErrorCode } from './errors.ts';
import {
  renderErrorPage,
  renderLoginPage,
  renderLogoutPage,
  renderSignedOutPage,
} from './idp-pages.ts';
import { DEMO_USERS, type IdpUser, resolveSubject } from './idp-users.ts';
import { closeServer, listen } from './http-server.ts';
import { constructProvider, loadOidcProvider } from './load-oidc-provider.ts';

type OidcErrors = (typeof import('oidc-provider'))['errors'];

/** A client registered at the development IdP. */
export interface IdpClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  /** When set, the IdP POSTs a logout token here on logout (sid included). Loopback URLs are allowed. */
  backchannel_logout_uri?: string;
  /** Default: authorization_code, refresh_token, client_credentials. */
  grant_types?: string[];
  /** Default: client_secret_basic. */
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post';
}

/** Options of {@link startIdp}. */
export interface StartIdpOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default `http://127.0.0.1:<port>` (the bound port). */
  issuer?: string;
  clients: IdpClient[];
  /** Default {@link DEMO_USERS}. */
  users?: IdpUser[];
  /** Default 'opaque'. 'jwt' issues RS256 JWT access tokens whose `aud` is the client_id. */
  accessTokenFormat?: 'opaque' | 'jwt';
  /** Lifetimes in seconds. Defaults: AccessToken 3600, IdToken 3600, Session 14 days. */
  ttl?: { AccessToken?: number; IdToken?: number; Session?: number };
  /** Default true: every authorization request must carry an S256 `code_challenge`. */
  requirePkce?: boolean;
  /** List the users and their passwords on the login page (demo convenience). Default false. */
  showUsers?: boolean;
  /** Receives oidc-provider's notices and interaction failures; by default they are dropped. */
  log?: (msg: string) => void;
  /**
   * Issue a new refresh token on every refresh and refuse a used one (revoking its grant), as authentik
   * does. Default false: oidc-provider's default, which keeps a confidential client's refresh token.
   */
  rotateRefreshTokens?: boolean;
}

/** A running development IdP. */
export interface Idp {
  /** The issuer identifier, also the base URL of every endpoint. */
  issuer: string;
  port: number;
  /** The IdP's users, read live: changing an entry (groups, `disabled`) changes what the IdP answers from then on. */
  users: IdpUser[];
  /** The oidc-provider instance, for tests that reach into sessions, grants or back-channel logout. */
  provider: Provider;
  close(): Promise<void>;
}

/** Scopes the IdP offers, and the claims each one releases (authentik's proxy provider scopes plus `groups`). */
const scopeClaims = {
  openid: ['sub', 'sid'],
  profile: ['name', 'preferred_username'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
  entitlements: ['entitlements'],
  ak_proxy: ['ak_proxy'],
};

const defaultTtl = { AccessToken: 3600, IdToken: 3600, Session: 14 * 24 * 3600 };

/**
 * Starts a development OIDC provider on a loopback port: authorization code + PKCE (S256), nonce,
 * discovery, userinfo, JWKS, introspection, revocation, refresh tokens, client credentials,
 * RP-initiated logout (auto-submitted) and back-channel logout. Logins go through our own HTML form
 * and consent is granted automatically.
 */
export async function startIdp(opts: StartIdpOptions): Promise<Idp> {
  const users = opts.users ?? DEMO_USERS;
  const log = opts.log ?? (() => {});
  const oidc = await loadOidcProvider(log);
  const { errors } = oidc;

  // Bind first so the default issuer can carry the real port; requests arriving before the provider exists get 503.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handle(req, res));
  const port = await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1');
  const issuer = (opts.issuer ?? `http://127.0.0.1:${port}`).replace(/\/$/, '');

  let provider: Provider;
  try {
    // Generated off the event loop: a 2048-bit RSA key takes a few hundred milliseconds here.
    const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
    const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
    const configuration = buildConfiguration({ ...opts, users }, { log, errors, signingKey });
    // oidc-provider warns that its memory adapter is for development only: exactly our use, so that goes to `log`.
    provider = await constructProvider(oidc, log, issuer, configuration);
    // oidc-provider checks static clients on first use; check them now so a bad test setup fails at start.
    for (const client of opts.clients) await provider.Client.find(client.client_id);
  } catch (err) {
    // A bad client definition (for example) must not leave the port bound.
    await closeServer(server);
    throw err;
  }
  // authentik always puts `sid` in the ID token; oidc-provider only does so for back-channel logout clients.
  provider.Client.prototype.includeSid = () => true;

  const providerCallback = provider.callback();
  handle = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://idp.invalid');
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(url.pathname);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    handleInteraction(req, res, { provider, users, showUsers: opts.showUsers === true, isLoginPost: !!match[2] }).catch(
      (err: unknown) => {
        // An expired or foreign interaction is the user's problem (400); anything else is ours (500).
        const notFound = err instanceof errors.SessionNotFound;
        if (!notFound) log(`idp interaction failed: ${err instanceof Error ? err.stack : String(err)}`);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        sendHtml(
          res,
          notFound ? 400 : 500,
          renderErrorPage(
            notFound ? 'invalid_request' : 'server_error',
            notFound ? 'The sign-in request expired or its cookie is missing. Start again from the application.' : undefined,
          ),
        );
      },
    );
  };

  return {
    issuer,
    port,
    users,
    provider,
    close: () => closeServer(server),
  };
}

function buildConfiguration(
  opts: StartIdpOptions & { users: IdpUser[] },
  deps: { log: (msg: string) => void; errors: OidcErrors; signingKey: JWK },
): Configuration {
  const { log, errors } = deps;
  const ttl = { ...defaultTtl, ...opts.ttl };
  const jwt = opts.accessTokenFormat === 'jwt';
  const bySubject = new Map(opts.users.map((u) => [resolveSubject(u), u]));

  return {
    clients: opts.clients.map(toClientMetadata),
    // The authorization code flow is all the proxy needs; implicit and hybrid flows stay off.
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    jwks: { keys: [deps.signingKey] },
    // Fixed per instance: cookies survive for the IdP's lifetime, never across instances.
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: { ...scopeClaims, acr: null, auth_time: null, iss: null, sid: null },
    scopes: ['openid', 'offline_access', ...Object.keys(scopeClaims)],
    // Claims go into the ID token as well, so tests see them whichever token they decode.
    conformIdTokenClaims: false,
    pkce: { required: () => opts.requirePkce !== false },
    // A disabled account is unknown to oidc-provider: refresh tokens → invalid_grant, userinfo → invalid_token.
    findAccount: (_ctx, sub) => {
      const user = bySubject.get(sub);
      return user && !user.disabled ? toAccount(user, sub) : undefined;
    },
    // Our own form replaces oidc-provider's dev interactions (see handleInteraction).
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // authentik's JWT access tokens carry the user's claims; ours do too, limited to the token's scopes.
    extraTokenClaims: (_ctx, token) => {
      const user = jwt && 'accountId' in token ? bySubject.get(token.accountId) : undefined;
      if (!user) return undefined;
      const scopes = new Set((token.scope ?? '').split(' '));
      const all = accountClaimsOf(user, resolveSubject(user));
      const claims: Record<string, unknown> = {};
      for (const [scopeName, names] of Object.entries(scopeClaims)) {
        if (!scopes.has(scopeName)) continue;
        for (const name of names) if (name !== 'sub' && name !== 'sid') claims[name] = all[name];
      }
      return claims;
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ...(opts.rotateRefreshTokens === true ? { rotateRefreshToken: true } : {}),
    ttl: {
      AccessToken: ttl.AccessToken,
      ClientCredentials: ttl.AccessToken,
      IdToken: ttl.IdToken,
      Session: ttl.Session,
      Grant: ttl.Session,
      AuthorizationCode: 60,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Same rule as oidc-provider's default, restated so it does not print its "you SHOULD change" notice.
        allowedPolicy: async (ctx, client, token) =>
          !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client?.clientId),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.type = 'html';
          ctx.body = renderLogoutPage(form);
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.type = 'html';
          ctx.body = renderSignedOutPage();
        },
      },
      resourceIndicators: {
        enabled: true,
        // In JWT mode every token is for the client's own resource, so its `aud` is the client_id.
        defaultResource: (_ctx, client, oneOf) => oneOf ?? (jwt ? clientResource(client.clientId) : undefined),
        useGrantedResource: () => jwt,
        getResourceServerInfo: (_ctx, resource, client) => {
          if (!jwt || resource !== clientResource(client.clientId)) throw new errors.InvalidTarget();
          return {
            scope: ['openid', 'offline_access', ...Object.keys(scopeClaims)].join(' '),
            audience: client.clientId,
            accessTokenTTL: ttl.AccessToken,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // oidc-provider refuses loopback targets (SSRF guard); this IdP's back-channel logout clients live on loopback.
    fetch: (url, init) => globalThis.fetch(url, { ...init, dispatcher: undefined } as RequestInit),
    clientBasedCORS: () => false,
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = renderErrorPage(out.error, out.error_description);
      log(`idp error page: ${out.error} ${out.error_description ?? ''}`);
    },
  };
}

/** The resource indicator standing for "this client itself" in JWT access token mode. */
function clientResource(clientId: string): string {
  return `urn:portcullis:client:${encodeURIComponent(clientId)}`;
}

function toClientMetadata(client: IdpClient): ClientMetadata {
  const metadata: ClientMetadata = {
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
    grant_types: client.grant_types ?? ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_method: client.token_endpoint_auth_method ?? 'client_secret_basic',
  };
  if (client.backchannel_logout_uri) {
    metadata.backchannel_logout_uri = client.backchannel_logout_uri;
    metadata.backchannel_logout_session_required = true;
  }
  return metadata;
}

function toAccount(user: IdpUser, sub: string): Account {
  return {
    accountId: sub,
    // oidc-provider filters these by the granted scopes and claims.
    claims: () => accountClaimsOf(user, sub),
  };
}

function accountClaimsOf(user: IdpUser, sub: string): { sub: string; [claim: string]: unknown } {
  return {
    sub,
    name: user.name,
    preferred_username: user.username,
    email: user.email,
    email_verified: true,
    groups: user.groups,
    entitlements: user.entitlements ?? [],
    ak_proxy: { user_attributes: user.attributes ?? {} },
  };
}

interface InteractionContext {
  provider: Provider;
  users: IdpUser[];
  showUsers: boolean;
  isLoginPost: boolean;
}

/**
 * GET /interaction/:uid shows the login form (or grants consent at once); POST /interaction/:uid/login
 * checks the password and hands the result back to oidc-provider, which answers with a 303.
 */
async function handleInteraction(req: IncomingMessage, res: ServerResponse, ic: InteractionContext): Promise<void> {
  const { provider } = ic;
  const details = await provider.interactionDetails(req, res);
  const clientId = String(details.params.client_id ?? '');
  const loginAction = `/interaction/${details.uid}/login`;
  const listedUsers = ic.showUsers ? ic.users : undefined;

  if (details.prompt.name === 'consent') {
    // Auto-consent: grant exactly what the request asked for and what oidc-provider says is missing.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session?.accountId ?? '', clientId });
    if (!grant) throw new TestkitError(TestkitErrorCode.LoginFailed, `grant ${details.grantId} vanished`);
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (details.prompt.name !== 'login') {
    sendHtml(res, 501, renderErrorPage('not_implemented', `prompt ${details.prompt.name} is not supported`));
    return;
  }

  if (!ic.isLoginPost || req.method !== 'POST') {
    sendHtml(res, 200, renderLoginPage({ action: loginAction, clientId, users: listedUsers }));
    return;
  }

  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') ?? '';
  const password = form.get('password') ?? '';
  const user = ic.users.find((u) => u.username === username);
  if (!user || user.password !== password || user.disabled) {
    // Wrong credentials: the same form again with an error, as a browser would show it (200, not 401).
    const error = user?.disabled && user.password === password ? 'This account is disabled.' : 'Invalid username or password.';
    sendHtml(res, 200, renderLoginPage({ action: loginAction, clientId, username, error, users: listedUsers }));
    return;
  }
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: resolveSubject(user) } },
    { mergeWithLastSubmission: false },
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // A login form is tiny; anything bigger is not a browser talking to us.
    if (size > 64 * 1024) throw new TestkitError(TestkitErrorCode.InvalidOption, 'login form body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(html);
}

