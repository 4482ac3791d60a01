// Turning HTTP Basic credentials into tokens at the IdP's token endpoint (client_credentials), as authentik's outpost does.
import {
  allowInsecureRequests,
  type ClientAuth,
  ClientSecretBasic,
  clientCredentialsGrant,
  Configuration,
  None,
  ResponseBodyError,
  WWWAuthenticateChallengeError,
} from 'openid-client';
import { headerAuthRejected } from './authorization-header.ts';
import { translateIdpError } from './idp-errors.ts';
import { isInsecureIssuer } from './oidc-clients.ts';

/** What the token endpoint returned, and for which of the two requests. */
export interface BasicExchange {
  /**
   * `app_password`: the IdP accepted authentik's form (user name + app password, our client_id,
   * no client secret): the tokens are the user's. `client_credentials`: the Basic pair was a
   * client's own id/secret: the tokens are that client's, and only count if they are for us.
   */
  via: 'app_password' | 'client_credentials';
  accessToken: string;
  idToken: string | null;
}

/** Inputs of {@link exchangeBasicCredentials}. */
export interface BasicExchangeInput {
  issuer: string;
  /** The provider's client_id. */
  clientId: string;
  scopes: string[];
  timeoutMs: number;
}

/**
 * Exchanges Basic credentials for tokens, in two steps:
 * 1. authentik's form: `grant_type=client_credentials`, our `client_id`, `username`, `password`,
 *    `scope`, and deliberately NO client secret. Were we to authenticate as our own client, an IdP
 *    that ignores `username`/`password` (oidc-provider, Keycloak, … — they are not client_credentials
 *    parameters) would issue a token for any password at all.
 * 2. When the IdP refuses that with an OAuth error: the pair as a client's own credentials
 *    (client_secret_basic, `scope`). The token is that client's; the caller accepts it only when it
 *    is issued to or for our client_id (so another application's client cannot get in).
 * @throws AuthError HEADER_AUTH_REJECTED ('invalid credentials') when both are refused;
 * IDP_UNAVAILABLE / IDP_RESPONSE_INVALID (502) when the IdP cannot be used.
 */
export async function exchangeBasicCredentials(
  server: Configuration,
  credentials: { username: string; password: string },
  input: BasicExchangeInput,
): Promise<BasicExchange> {
  const scope = input.scopes.join(' ');
  const appPassword = configureFor(server, input, input.clientId, None());
  try {
    const tokens = await clientCredentialsGrant(appPassword, { username: credentials.username, password: credentials.password, scope });
    return { via: 'app_password', accessToken: tokens.access_token, idToken: tokens.id_token ?? null };
  } catch (err) {
    if (!isOAuthRefusal(err)) throw translate(err, input);
  }
  const asClient = configureFor(server, input, credentials.username, ClientSecretBasic(credentials.password));
  try {
    const tokens = await clientCredentialsGrant(asClient, { scope });
    return { via: 'client_credentials', accessToken: tokens.access_token, idToken: tokens.id_token ?? null };
  } catch (err) {
    if (isOAuthRefusal(err)) throw headerAuthRejected('invalid credentials', err);
    throw translate(err, input);
  }
}

/** A client at the same IdP (metadata from discovery), with the same timeout and http allowance as the provider's own. */
function configureFor(
  server: Configuration,
  input: BasicExchangeInput,
  clientId: string,
  clientAuth: ClientAuth,
): Configuration {
  const config = new Configuration(server.serverMetadata(), clientId, undefined, clientAuth);
  config.timeout = input.timeoutMs / 1000;
  if (isInsecureIssuer(input.issuer)) allowInsecureRequests(config);
  return config;
}

/** The IdP answered with an OAuth error (bad credentials, grant not allowed, …) rather than failing. */
function isOAuthRefusal(err: unknown): boolean {
  return err instanceof ResponseBodyError || err instanceof WWWAuthenticateChallengeError;
}

function translate(err: unknown, input: BasicExchangeInput): unknown {
  return translateIdpError(err, { stage: 'token', issuer: input.issuer, timeoutMs: input.timeoutMs });
}
