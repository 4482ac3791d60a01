// Public entry of @portcullis/gateway: build a gateway from its dependencies.
export { createGateway, parseListen, type Gateway, type GatewayDeps } from './server.ts';
export { fileDigest, type ServedCertificate } from './tls.ts';
export { GatewayHandler, type GatewayHandlerDeps, type RevocationOutcome, canonicalRawPath } from './gateway-handler.ts';
export type { Answer, ProxyAnswer, RespondAnswer } from './answers.ts';
export { CachedSessionReader, type SessionCacheOptions } from './session-cache.ts';
export { BARRIER_SUBJECTS, GatewayBarrierMember, PresenceTracker, collectRevocationAcks } from './revocation-barrier.ts';
export { ActivityReporter, type ActivityReporterOptions } from './activity-reporter.ts';
