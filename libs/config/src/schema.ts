// The config schema: every key, its type, bounds and default — the one place defaults are defined.
import { DEFAULT_STRIP_HEADERS as PROTOCOL_DEFAULT_STRIP_HEADERS } from '@portcullis/protocol';
import type { FieldsOf, ObjectSpec, RuntimeObjectSpec } from './schema-kinds.ts';
import type {
  ClientTlsConfig,
  ClusterConfig,
  PortcullisConfig,
  ProviderConfig,
  ScopeMappingConfig,
  ServerTlsConfig,
} from './types.ts';

/** Identity headers removed from client requests by default (the list lives with the header rules). */
export const DEFAULT_STRIP_HEADERS: readonly string[] = PROTOCOL_DEFAULT_STRIP_HEADERS;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const PROVIDER_MODES = ['proxy', 'forward_single', 'forward_domain'] as const;

const clientTls: ObjectSpec<ClientTlsConfig> = {
  kind: 'object',
  what: 'a mapping with ca_file, cert_file and key_file ({} = TLS with the system CAs), or null',
  default: null,
  fields: {
    ca_file: { kind: 'string', what: 'the path of a PEM CA bundle', nullable: true, default: null },
    cert_file: { kind: 'string', what: 'the path of a PEM client certificate', nullable: true, default: null },
    key_file: { kind: 'string', what: 'the path of the PEM private key of cert_file', nullable: true, default: null },
  },
};

const cluster: ObjectSpec<ClusterConfig> = {
  kind: 'object',
  what: 'a mapping with nats and redis, or null for the embedded single-process mode',
  default: null,
  fields: {
    nats: {
      kind: 'object',
      what: 'a mapping of NATS settings',
      default: 'fill',
      fields: {
        servers: { kind: 'stringList', what: 'a list of NATS URLs, e.g. [nats://127.0.0.1:4222]', default: ['nats://127.0.0.1:4222'] },
        stream: { kind: 'string', what: 'a JetStream stream name, e.g. PORTCULLIS_SESSIONS', default: 'PORTCULLIS_SESSIONS' },
        config_bucket: { kind: 'string', what: 'a NATS KV bucket name, e.g. portcullis-config, or null', nullable: true, default: null },
        replicas: { kind: 'int', what: 'the number of stream replicas', min: 1, max: 5, nullable: true, default: null },
        user: { kind: 'string', what: 'the NATS user name, or null', nullable: true, default: null },
        password: { kind: 'string', what: 'the NATS password, or null', nullable: true, default: null, secretFile: true },
        token: { kind: 'string', what: 'the NATS token, or null', nullable: true, default: null, secretFile: true },
        creds_file: { kind: 'string', what: 'the path of a NATS .creds file, or null', nullable: true, default: null },
        tls: clientTls,
      },
    },
    redis: {
      kind: 'object',
      what: 'a mapping of Redis settings',
      default: 'fill',
      fields: {
        url: { kind: 'string', what: 'a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379', default: 'redis://127.0.0.1:6379' },
        key_prefix: { kind: 'string', what: 'the key prefix, e.g. "portcullis:"', default: 'portcullis:' },
        tls: clientTls,
        sentinels: { kind: 'stringList', what: 'a list of Sentinel host:port addresses, or null', nullable: true, default: null },
        sentinel_name: { kind: 'string', what: 'the Sentinel master name, or null', nullable: true, default: null },
        cluster_nodes: { kind: 'stringList', what: 'a list of Redis Cluster host:port seeds, or null', nullable: true, default: null },
        password: { kind: 'string', what: 'the Redis password, or null', nullable: true, default: null, secretFile: true },
      },
    },
  },
};

const serverTls: ObjectSpec<ServerTlsConfig> = {
  kind: 'object',
  what: 'a mapping with cert_file and key_file',
  default: 'fill',
  fields: {
    cert_file: { kind: 'string', what: 'the path of a PEM certificate chain, or null', nullable: true, default: null },
    key_file: { kind: 'string', what: 'the path of the PEM private key, or null', nullable: true, default: null },
  },
};

const scopeMapping: ObjectSpec<ScopeMappingConfig> = {
  kind: 'object',
  what: 'a mapping with name and expression',
  default: 'fill',
  fields: {
    name: { kind: 'string', what: 'a short name for this mapping', required: true },
    expression: { kind: 'string', what: 'a CEL expression returning a map', required: true },
  },
};

const providerFields: FieldsOf<ProviderConfig> = {
  name: { kind: 'string', what: 'a unique provider name, e.g. test', required: true },
  application_slug: { kind: 'string', what: 'the application slug, e.g. test', defaultFrom: 'name' },
  mode: { kind: 'string', what: 'the provider mode', required: true, enum: PROVIDER_MODES },
  external_host: { kind: 'string', what: 'the public URL of the application, e.g. https://app.company', required: true },
  internal_host: { kind: 'string', what: 'the upstream URL, e.g. http://127.0.0.1:8080', nullable: true, default: null },
  internal_host_ssl_validation: { kind: 'bool', what: 'whether to verify the upstream TLS certificate', default: true },
  issuer: { kind: 'string', what: 'the OIDC issuer URL, e.g. https://idp.company/application/o/test/', required: true },
  client_id: { kind: 'string', what: 'the OAuth2 client ID from the IdP', required: true },
  client_secret: { kind: 'string', what: 'the OAuth2 client secret from the IdP', required: true, secretFile: true },
  scopes: { kind: 'stringList', what: 'a list of scopes, e.g. [openid, profile, email]', default: ['openid', 'profile', 'email'] },
  cookie_secret: {
    kind: 'string',
    what: 'at least 32 random characters, e.g. the output of `openssl rand -base64 32`',
    required: true,
    secretFile: true,
  },
  cookie_domain: { kind: 'string', what: 'a domain such as company, or ""', default: '' },
  skip_path_regex: { kind: 'string', what: 'one regex per line', default: '' },
  access_token_validity: { kind: 'int', what: 'the absolute session lifetime in seconds', min: 60, max: 31_536_000, default: 86_400 },
  refresh: { kind: 'bool', what: 'whether to refresh sessions with the IdP\'s refresh token', default: false },
  refresh_interval: {
    kind: 'int',
    what: 'the longest time between two refreshes of a session, in seconds, or null (refresh only before the access token expires)',
    min: 10,
    max: 86_400,
    nullable: true,
    default: null,
  },
  idle_timeout: {
    kind: 'int',
    what: 'seconds without a request after which a session ends, or null (no idle timeout)',
    min: 10,
    max: 31_536_000,
    nullable: true,
    default: null,
  },
  basic_auth_enabled: { kind: 'bool', what: 'whether to send HTTP Basic credentials upstream', default: false },
  basic_auth_user_attribute: { kind: 'string', what: 'the user attribute holding the Basic username', default: '' },
  basic_auth_password_attribute: { kind: 'string', what: 'the user attribute holding the Basic password', default: '' },
  intercept_header_auth: { kind: 'bool', what: 'whether to answer 401 to unauthenticated Authorization requests', default: true },
  post_logout_redirect_uri: { kind: 'string', what: 'an http(s) URL, or null', nullable: true, default: null },
  backchannel_logout_max_age: { kind: 'int', what: 'the oldest accepted back-channel logout token, in seconds', min: 10, max: 86_400, default: 300 },
  header_auth_cache_seconds: {
    kind: 'int',
    what: 'how long a checked Authorization header stays valid before the IdP is asked again, in seconds',
    min: 5,
    max: 3600,
    default: 60,
  },
  strip_headers: { kind: 'stringList', what: 'a list of header names', default: DEFAULT_STRIP_HEADERS },
  tls: serverTls,
  scope_mappings: { kind: 'list', what: 'a list of {name, expression} mappings', item: scopeMapping, minItems: 0 },
};

const root: ObjectSpec<PortcullisConfig> = {
  kind: 'object',
  what: 'a mapping with log_level, outpost, cluster and providers',
  default: 'fill',
  fields: {
    log_level: { kind: 'string', what: 'a log level', enum: LOG_LEVELS, default: 'info' },
    outpost: {
      kind: 'object',
      what: 'a mapping of outpost settings',
      default: 'fill',
      fields: {
        name: { kind: 'string', what: 'the outpost name', required: true, default: 'Portcullis Outpost' },
        listen: {
          kind: 'object',
          what: 'a mapping with http, https and metrics',
          default: 'fill',
          fields: {
            http: { kind: 'string', what: 'a host:port address, e.g. 0.0.0.0:9000', default: '0.0.0.0:9000' },
            https: { kind: 'string', what: 'a host:port address, e.g. 0.0.0.0:9443, or null', nullable: true, default: '0.0.0.0:9443' },
            metrics: { kind: 'string', what: 'a host:port address, e.g. 0.0.0.0:9300, or null', nullable: true, default: '0.0.0.0:9300' },
          },
        },
        trusted_proxy_cidrs: {
          kind: 'stringList',
          what: 'a list of CIDRs, e.g. ["10.0.0.0/8", "::1/128"]',
          default: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
        },
        signout_propagation_timeout_ms: {
          kind: 'int',
          what: 'a time in milliseconds',
          min: 0,
          max: 60_000,
          default: 250,
        },
        shutdown_grace_seconds: {
          kind: 'int',
          what: 'a time in seconds',
          min: 0,
          max: 3600,
          default: 10,
        },
        certificate_watch_interval_seconds: {
          kind: 'int',
          what: 'a time in seconds; 0 turns watching the certificate files off (reload them with SIGHUP)',
          min: 0,
          max: 86_400,
          default: 60,
        },
        workers: {
          kind: 'int',
          what: 'a number of gateway processes sharing the listeners (1 to 64; cluster mode, gateway service only)',
          min: 1,
          max: 64,
          default: 1,
        },
      },
    },
    cluster,
    providers: {
      kind: 'list',
      what: 'provider entries (each with at least name, mode, external_host, issuer, client_id, client_secret and cookie_secret)',
      item: { kind: 'object', what: 'a mapping of provider settings', default: 'fill', fields: providerFields },
      minItems: 1,
    },
  },
};

/** The whole schema, as the reader walks it. */
export const CONFIG_SCHEMA: RuntimeObjectSpec = root;
