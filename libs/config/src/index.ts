// Public API of @portcullis/config: the config types, loadConfig, problems and their formatting.
export type {
  ClientTlsConfig,
  ClusterConfig,
  ListenConfig,
  LogLevel,
  NatsConfig,
  OutpostConfig,
  PortcullisConfig,
  ProviderConfig,
  ProviderMode,
  RedisConfig,
  ScopeMappingConfig,
  ServerTlsConfig,
} from './types.ts';
export type { CheckSink, ConfigProblem } from './config-problem.ts';
export { CERTIFICATE_EXPIRY_WARNING_DAYS, checkServerCertificates } from './check-certificate.ts';
export { formatProblem } from './config-problem.ts';
export { ConfigError } from './errors.ts';
export type { LoadConfigOptions, LoadConfigResult } from './load-config.ts';
export { loadConfig } from './load-config.ts';
export { WORKER_INDEX_VAR } from './apply-env-overrides.ts';
export { DEFAULT_STRIP_HEADERS } from './schema.ts';
export { MAX_ACTIVITY_INTERVAL_MS, activityIntervalMs } from './activity-interval.ts';
