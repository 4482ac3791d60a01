// The validated configuration: snake_case keys exactly as in the file, every default filled in, nulls explicit.
// Default values live in one place, beside each field in schema.ts.

/** Log verbosity of every service in this process (pino levels). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** How a provider protects its application, as in authentik's proxy provider. */
export type ProviderMode = 'proxy' | 'forward_single' | 'forward_domain';

/** Addresses the outpost listens on, each `host:port` (IPv6 as `[::]:9000`). */
export interface ListenConfig {
  /** Plain HTTP listener for traffic and `/outpost.goauthentik.io/*`; never null. */
  http: string;
  /** HTTPS listener, certificates chosen by SNI from the providers' `tls`; null turns it off. */
  https: string | null;
  /** Prometheus metrics and `/outpost.goauthentik.io/ping`; null turns it off. */
  metrics: string | null;
}

/** Settings of this outpost as a whole. */
export interface OutpostConfig {
  /** Outpost name, sent as `X-authentik-meta-outpost` and used as the metrics label. */
  name: string;
  /** Listen addresses. */
  listen: ListenConfig;
  /** Peers whose `X-Forwarded-*` headers are believed (CIDR notation, IPv4 and IPv6). */
  trusted_proxy_cidrs: string[];
  /** Upper bound, in milliseconds, on waiting for other replicas to apply a sign-out before answering. */
  signout_propagation_timeout_ms: number;
  /**
   * On SIGTERM, how long open connections (in-flight requests, streams, WebSockets) may finish
   * before they are closed; keep it below the orchestrator's kill timeout (Kubernetes: 30 s).
   */
  shutdown_grace_seconds: number;
  /**
   * How often, in seconds, the HTTPS listener's certificate and key files are read to see whether
   * they changed (a renewal nobody sent SIGHUP for); a change is reloaded as SIGHUP would. 0 turns it off.
   */
  certificate_watch_interval_seconds: number;
  /**
   * Gateway processes (node:cluster workers) sharing this process's listeners, each a replica of its
   * own (session cache, NATS connection, sign-out barrier); the primary serves the metrics listener
   * with their metrics summed. More than 1 needs `cluster:` and a process running only the gateway.
   */
  workers: number;
}

/** TLS towards a cluster service (NATS or Redis); an empty object means TLS with the system CAs. */
export interface ClientTlsConfig {
  /** PEM file of the CA(s) that sign the server certificate; null = system CAs. */
  ca_file: string | null;
  /** PEM client certificate for mutual TLS; set together with `key_file`. */
  cert_file: string | null;
  /** PEM private key of `cert_file`. */
  key_file: string | null;
}

/** NATS JetStream: the event log and request/reply between services. */
export interface NatsConfig {
  /** Seed server URLs (`nats://`, `tls://` or `ws://`). */
  servers: string[];
  /** Name of the JetStream stream holding the session events. */
  stream: string;
  /**
   * NATS KV bucket holding a shared config document (key `portcullis.yaml`, written by
   * `portcullis config push`); every process applies it when it changes. null = file only.
   */
  config_bucket: string | null;
  /** Stream replicas (1–5); null = as many as the stream's creator decides (1 on a single server). */
  replicas: number | null;
  /** User name for user/password authentication; set together with `password`. */
  user: string | null;
  /** Password for `user` (may come from `password_file`). */
  password: string | null;
  /** Token authentication (may come from `token_file`); excludes user/password and creds. */
  token: string | null;
  /** NATS `.creds` file (JWT + NKey); excludes user/password and token. */
  creds_file: string | null;
  /** TLS settings; null = whatever the server URL scheme implies. */
  tls: ClientTlsConfig | null;
}

/** Redis: the session projection read by gateways. */
export interface RedisConfig {
  /** Connection URL (`redis://` or `rediss://`); host and port are ignored with sentinels or cluster_nodes. */
  url: string;
  /** Prefix of every key Portcullis writes. */
  key_prefix: string;
  /** TLS settings; null = whatever the URL scheme implies. */
  tls: ClientTlsConfig | null;
  /** Sentinel addresses (`host:port`); set with `sentinel_name` to use Redis Sentinel. */
  sentinels: string[] | null;
  /** Name of the Sentinel-monitored master. */
  sentinel_name: string | null;
  /** Redis Cluster seed nodes (`host:port`); excludes sentinels. */
  cluster_nodes: string[] | null;
  /** Redis password (may come from `password_file`); overrides one in the URL. */
  password: string | null;
}

/** Cluster mode: NATS for events and request/reply, Redis for the session projection. */
export interface ClusterConfig {
  /** NATS settings. */
  nats: NatsConfig;
  /** Redis settings. */
  redis: RedisConfig;
}

/** Certificate served on the HTTPS listener for this provider's host (SNI). */
export interface ServerTlsConfig {
  /** PEM certificate chain; null (with `key_file` null) = a self-signed certificate. */
  cert_file: string | null;
  /** PEM private key of `cert_file`. */
  key_file: string | null;
}

/** One CEL scope mapping, evaluated once at login; its result is merged into the session claims. */
export interface ScopeMappingConfig {
  /** Name shown in problems and logs. */
  name: string;
  /** CEL expression returning a map (e.g. `{"ak_proxy": {...}}`). */
  expression: string;
}

/** One protected application (an authentik proxy provider + its application). */
export interface ProviderConfig {
  /** Provider name, unique; sent as `X-authentik-meta-provider`. */
  name: string;
  /** Application slug, sent as `X-authentik-meta-app`; defaults to `name`. */
  application_slug: string;
  /** Proxy, forward auth for one host, or forward auth for a whole domain. */
  mode: ProviderMode;
  /** Public URL of the application, unique, without trailing `/` (normalised). */
  external_host: string;
  /** Upstream URL; required in proxy mode, null otherwise. */
  internal_host: string | null;
  /** Verify the upstream's TLS certificate (proxy mode). */
  internal_host_ssl_validation: boolean;
  /** OIDC issuer URL used for discovery. */
  issuer: string;
  /** OAuth2 client ID at the IdP. */
  client_id: string;
  /** OAuth2 client secret (may come from `client_secret_file`). */
  client_secret: string;
  /** Scopes requested at login; always contains `openid`. */
  scopes: string[];
  /** Key material for signing session cookies, at least 32 characters (may come from `cookie_secret_file`). */
  cookie_secret: string;
  /** Cookie Domain attribute; required in forward_domain mode (the parent domain), "" = host-only. */
  cookie_domain: string;
  /** Unauthenticated paths/URLs: one RE2 regex per line, unanchored; blank lines ignored. */
  skip_path_regex: string;
  /** Absolute lifetime of a session from login, in seconds: no refresh and no activity extends it (authentik's "session valid not on or after"). */
  access_token_validity: number;
  /**
   * Refresh sessions with the IdP's refresh token (when it issues one): before the access token
   * expires, the auth service refreshes once per session cluster-wide and recomputes claims and
   * scope mappings; a refused refresh ends the session everywhere.
   */
  refresh: boolean;
  /** With `refresh`: refresh at least this often (seconds), even when the access token lives longer; null = only before it expires. */
  refresh_interval: number | null;
  /** End a session after this many seconds without a request; null = never (only `access_token_validity` applies). */
  idle_timeout: number | null;
  /** Send HTTP Basic credentials taken from user attributes to the upstream. */
  basic_auth_enabled: boolean;
  /** User attribute holding the Basic username ("" = the email). */
  basic_auth_user_attribute: string;
  /** User attribute holding the Basic password. */
  basic_auth_password_attribute: string;
  /** Answer 401 instead of redirecting when a request with an `Authorization` header is unauthenticated. */
  intercept_header_auth: boolean;
  /** Sent to the IdP's end-session endpoint at sign-out; null = none. */
  post_logout_redirect_uri: string | null;
  /** Back-channel logout tokens whose `iat` is older than this many seconds are refused. */
  backchannel_logout_max_age: number;
  /**
   * Header authentication (`Authorization: Bearer` / `Basic`): a checked credential becomes a session
   * for at most this many seconds (never past the token's `exp`), then the IdP is asked again.
   */
  header_auth_cache_seconds: number;
  /** Request headers removed before proxying (a trailing `*` matches a prefix), so clients cannot spoof identity. */
  strip_headers: string[];
  /** HTTPS certificate for this provider's host. */
  tls: ServerTlsConfig;
  /** CEL scope mappings, evaluated in order at login. */
  scope_mappings: ScopeMappingConfig[];
}

/** The whole validated configuration. */
export interface PortcullisConfig {
  /** Log verbosity. */
  log_level: LogLevel;
  /** Outpost-wide settings. */
  outpost: OutpostConfig;
  /** Cluster adapters; null = embedded single-process mode (in-process bus, in-memory store). */
  cluster: ClusterConfig | null;
  /** Protected applications, at least one. */
  providers: ProviderConfig[];
}
