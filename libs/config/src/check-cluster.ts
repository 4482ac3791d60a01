// Semantic checks of the `cluster` section: NATS URLs and credentials, Redis URL and topology, TLS files.
import type { ConfigProblem } from './config-problem.ts';
import { joinIndex } from './config-path.ts';
import { parseHostPort } from './parse-host-port.ts';
import { whyNotKeyPair, whyUnreadable } from './read-text-file.ts';
import type { Loose } from './schema-kinds.ts';
import type { ClientTlsConfig, ClusterConfig, NatsConfig, RedisConfig } from './types.ts';

const NATS_SCHEMES = ['nats:', 'tls:', 'ws:'];
// JetStream refuses names with whitespace, `.`, `*`, `>` or path separators.
const STREAM_NAME = /^[A-Za-z0-9_-]+$/;
// The NATS KV client allows the same characters in a bucket name (its validBucketRe is /^[-\w]+$/).
const BUCKET_NAME = STREAM_NAME;

/** Pushes every problem of the cluster section (nothing when it is null: embedded mode). */
export function checkCluster(cluster: Loose<ClusterConfig | null>, problems: ConfigProblem[]): void {
  if (!cluster) return;
  checkNats(cluster.nats, problems);
  checkRedis(cluster.redis, problems);
}

/**
 * A URL as written, for a problem message, with everything from "//" to its last "@" masked: a URL
 * the parser refuses is often one whose password holds a "/", "#" or "?" (base64 passwords do).
 */
function maskCredentials(value: string): string {
  return value.replace(/\/\/.*@/, '//***@');
}

function checkNats(nats: Loose<NatsConfig>, problems: ConfigProblem[]): void {
  if (!nats) return;
  if (nats.servers?.length === 0) {
    problems.push({
      path: 'cluster.nats.servers',
      reason: 'is empty',
      fix: 'list at least one NATS server URL, e.g. [nats://127.0.0.1:4222]',
    });
  }
  nats.servers?.forEach((server, i) => {
    if (server === undefined) return;
    const path = joinIndex('cluster.nats.servers', i);
    const url = URL.canParse(server) ? new URL(server) : undefined;
    if (!url || !NATS_SCHEMES.includes(url.protocol) || url.hostname === '') {
      problems.push({
        path,
        reason: `"${maskCredentials(server)}" is not a nats://, tls:// or ws:// URL with a host`,
        fix: `set ${path} to a URL such as nats://nats-1.internal:4222`,
      });
    }
  });
  if (nats.stream !== undefined && !STREAM_NAME.test(nats.stream)) {
    problems.push({
      path: 'cluster.nats.stream',
      reason: `"${nats.stream}" is not a valid JetStream stream name`,
      fix: 'use only letters, digits, "_" and "-", e.g. PORTCULLIS_SESSIONS',
    });
  }
  // Otherwise every process would log that it cannot watch the bucket and run on its file, and `config push` would fail.
  if (typeof nats.config_bucket === 'string' && !BUCKET_NAME.test(nats.config_bucket)) {
    problems.push({
      path: 'cluster.nats.config_bucket',
      reason: `"${nats.config_bucket}" is not a valid NATS KV bucket name`,
      fix: 'use only letters, digits, "_" and "-", e.g. portcullis-config, or null for no shared config',
    });
  }
  const hasUser = typeof nats.user === 'string';
  const hasPassword = typeof nats.password === 'string';
  if (hasUser !== hasPassword) {
    const missing = hasUser ? 'password' : 'user';
    problems.push({
      path: `cluster.nats.${missing}`,
      reason: `is required when cluster.nats.${hasUser ? 'user' : 'password'} is set`,
      fix: `set cluster.nats.${missing}${missing === 'password' ? ' (or password_file)' : ''}, or remove cluster.nats.${hasUser ? 'user' : 'password'}`,
    });
  }
  const methods = [hasUser || hasPassword ? 'user/password' : '', nats.token ? 'token' : '', nats.creds_file ? 'creds_file' : ''].filter(
    (m) => m !== '',
  );
  if (methods.length > 1) {
    problems.push({
      path: 'cluster.nats',
      reason: `sets more than one authentication method (${methods.join(', ')})`,
      fix: 'keep exactly one of user/password, token or creds_file',
    });
  }
  if (nats.creds_file) checkReadable(nats.creds_file, 'cluster.nats.creds_file', problems);
  checkClientTls(nats.tls, 'cluster.nats.tls', problems);
}

function checkRedis(redis: Loose<RedisConfig>, problems: ConfigProblem[]): void {
  if (!redis) return;
  if (redis.url !== undefined) {
    const url = URL.canParse(redis.url) ? new URL(redis.url) : undefined;
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      problems.push({
        path: 'cluster.redis.url',
        reason: `"${maskCredentials(redis.url)}" is not a redis:// or rediss:// URL with a host`,
        fix: 'set cluster.redis.url to e.g. redis://127.0.0.1:6379 (rediss:// for TLS)',
      });
    }
  }
  const hasSentinels = Array.isArray(redis.sentinels);
  const hasName = typeof redis.sentinel_name === 'string';
  if (hasSentinels && Array.isArray(redis.cluster_nodes)) {
    problems.push({
      path: 'cluster.redis',
      reason: 'sets both sentinels and cluster_nodes',
      fix: 'keep sentinels (with sentinel_name) for Redis Sentinel, or cluster_nodes for Redis Cluster, not both',
    });
  }
  if (hasSentinels !== hasName) {
    const missing = hasSentinels ? 'sentinel_name' : 'sentinels';
    problems.push({
      path: `cluster.redis.${missing}`,
      reason: `is required when cluster.redis.${hasSentinels ? 'sentinels' : 'sentinel_name'} is set`,
      fix: hasSentinels
        ? 'set cluster.redis.sentinel_name to the monitored master name, e.g. mymaster'
        : 'set cluster.redis.sentinels to a list of host:port addresses, or remove sentinel_name',
    });
  }
  for (const key of ['sentinels', 'cluster_nodes'] as const) {
    const list = redis[key];
    if (!list) continue;
    if (list.length === 0) {
      problems.push({ path: `cluster.redis.${key}`, reason: 'is empty', fix: `list at least one host:port, or set cluster.redis.${key} to null` });
    }
    list.forEach((address, i) => {
      if (address === undefined) return;
      const parsed = parseHostPort(address);
      const path = joinIndex(`cluster.redis.${key}`, i);
      if ('reason' in parsed) problems.push({ path, reason: `"${address}" ${parsed.reason}`, fix: `set ${path} to host:port, e.g. redis-1:${key === 'sentinels' ? 26379 : 6379}` });
    });
  }
  checkClientTls(redis.tls, 'cluster.redis.tls', problems);
}

function checkClientTls(tls: Loose<ClientTlsConfig | null>, path: string, problems: ConfigProblem[]): void {
  if (!tls) return;
  checkCertKeyPair(tls.cert_file, tls.key_file, path, problems);
  if (tls.ca_file) checkReadable(tls.ca_file, `${path}.ca_file`, problems);
}

/** cert_file and key_file: both or neither, each readable. */
export function checkCertKeyPair(
  cert: string | null | undefined,
  key: string | null | undefined,
  path: string,
  problems: ConfigProblem[],
): void {
  if (cert === undefined || key === undefined) return;
  if ((cert === null) !== (key === null)) {
    const missing = cert === null ? 'cert_file' : 'key_file';
    problems.push({
      path: `${path}.${missing}`,
      reason: `is required when ${path}.${missing === 'cert_file' ? 'key_file' : 'cert_file'} is set`,
      fix: `set both ${path}.cert_file and ${path}.key_file, or neither`,
    });
  }
  const certReadable = cert ? checkReadable(cert, `${path}.cert_file`, problems) : false;
  const keyReadable = key ? checkReadable(key, `${path}.key_file`, problems) : false;
  if (!cert || !key || !certReadable || !keyReadable) return;
  // Readable is not enough: a wrong file would otherwise pass check-config and fail only at start or reload.
  const bad = whyNotKeyPair(cert, key);
  if (!bad) return;
  const fix = `set ${path}.cert_file to a PEM certificate (chain) and ${path}.key_file to its unencrypted PEM private key`;
  problems.push(
    bad.mismatch
      ? {
          path: `${path}.key_file`,
          reason: `${key} is not the private key of the certificate in ${cert}`,
          fix: `${fix}; \`openssl x509 -noout -pubkey -in CERT\` and \`openssl pkey -pubout -in KEY\` must print the same key`,
        }
      : { path, reason: `${cert} and ${key} are not a PEM certificate and private key: ${bad.message}`, fix },
  );
}

/** Pushes a problem when `file` cannot be read; true when it can. */
function checkReadable(file: string, path: string, problems: ConfigProblem[]): boolean {
  const why = whyUnreadable(file);
  if (why) {
    problems.push({
      path,
      reason: `cannot read ${file}: ${why}`,
      fix: `make ${file} exist and be readable by the user running Portcullis, or correct ${path}`,
    });
  }
  return why === undefined;
}
