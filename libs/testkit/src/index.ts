// Public API of @portcullis/testkit: real servers (IdP, upstream, nats-server, redis-server) and a scripted browser for tests.
export type {
  Browser,
  BrowserCookie,
  BrowserOptions,
  BrowserRequestInit,
  BrowserResponse,
  ChainStep,
  FollowOptions,
  FollowResult,
} from './browser.ts';
export { createBrowser } from './browser.ts';
export type { CookieJar, StoredCookie } from './cookie-jar.ts';
export { createCookieJar } from './cookie-jar.ts';
export { TestkitError, TestkitErrorCode } from './errors.ts';
export type { FormField, ParsedForm } from './html-form.ts';
export { isAutoSubmitPage, parseFirstForm } from './html-form.ts';
export type { Idp, IdpClient, StartIdpOptions } from './idp.ts';
export { startIdp } from './idp.ts';
export { DEV_IDP_BANNER } from './idp-pages.ts';
export type { IdpUser } from './idp-users.ts';
export { DEMO_USERS, subjectFor } from './idp-users.ts';
export type { LoginThroughIdpOptions, LoginThroughIdpResult } from './login-through-idp.ts';
export { loginThroughIdp } from './login-through-idp.ts';
export type { NatsCluster, NatsServer, StartNatsServerOptions } from './nats-server.ts';
export { startNatsCluster, startNatsServer } from './nats-server.ts';
export type { NatsLossyProxy, ProxiedMessage } from './nats-lossy-proxy.ts';
export { startNatsLossyProxy } from './nats-lossy-proxy.ts';
export { getFreePort } from './ports.ts';
export type { RedisServer, StartRedisServerOptions } from './redis-server.ts';
export { startRedisServer } from './redis-server.ts';
export type { SelfSignedCertificate, SelfSignedCertificateOptions } from './self-signed-certificate.ts';
export { createSelfSignedCertificate } from './self-signed-certificate.ts';
export type { EchoedRequest } from './upstream-page.ts';
export type { StartUpstreamOptions, Upstream } from './upstream.ts';
export { startUpstream } from './upstream.ts';
export { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.ts';
