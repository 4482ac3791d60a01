// Public entry of @portcullis/protocol: pure HTTP protocol rules shared by the gateway and auth services.
export { PortcullisError } from './errors.ts';
export type { PortcullisErrorOptions } from './errors.ts';
export {
  IDENTITY_HEADERS,
  DEFAULT_STRIP_HEADERS,
  buildHeaderStripper,
  buildIdentityHeaders,
  sanitizeHeaderValue,
  encodeHeaderValueForWire,
  foldHeaderName,
} from './headers.ts';
export type { IdentityClaims, IdentityContext, IdentityHeadersResult } from './headers.ts';
export {
  sessionCookieName,
  stateCookieName,
  cookieKeyId,
  signSessionCookie,
  verifySessionCookie,
  serializeCookie,
  serializeDeletionCookie,
  readCookie,
  sealPayload,
  unsealPayload,
  randomToken,
} from './cookies.ts';
export type { SessionCookieValue, CookieOptions } from './cookies.ts';
export {
  normalizeHost,
  stripPort,
  normalizeCookieDomain,
  externalHostKey,
  buildHostRouter,
} from './hosts.ts';
export type { ProviderMode, RoutableProvider } from './hosts.ts';
export { validateRedirect } from './redirects.ts';
export type { RedirectContext } from './redirects.ts';
export { reconstructOriginalRequest } from './urls.ts';
export type { ForwardFlavour, ForwardRequestInput, OriginalRequest } from './urls.ts';
export { normalizePath, hasFragmentOnRequestLine } from './paths.ts';
export type { NormalizedPath } from './paths.ts';
export { compileSkipRules, matchesSkipRule, skipSubject } from './skip-rules.ts';
export type { SkipRules, SkipRuleError } from './skip-rules.ts';
export { buildCidrMatcher, resolveClientAddress, unmapAddress } from './network.ts';
export type { CidrMatcher, CidrError, ClientAddress } from './network.ts';
export { headerAuthSessionId } from './header-auth.ts';
