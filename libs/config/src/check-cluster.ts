// Semantic checks of the `cluster` section: NATS URLs and credentials, Redis URL and topology, TLS files.
import { checkCertKeyPair, checkReadable } from './check-certificate.ts';
import type { CheckSink } from './config-problem.ts';
import { joinIndex } from './config-path.ts';
import { parseHostPort } from './parse-host-port.ts';
import type { Loose } from './schema-kinds.ts';
import type { ClientTlsConfig, ClusterConfig, NatsConfig, RedisConfig } from './types.ts';

const NATS_SCHEMES = ['nats:', 'tls:', 'ws:'];
// JetStream refuses names with whitespace, `.`, `*`, `>` or path separators.
const STREAM_NAME = /^[A-Za-z0-9_-]+$/;
// The NATS KV client allows the same characters in a bucket name (its validBucketRe is /^[-\w]+$/).
const BUCKET_NAME = STREAM_NAME;

/** Pushes every problem of the cluster section (nothing when it is null: embedded mode). */
export function checkCluster(cluster: Loose<ClusterConfig | null>, sink: CheckSink): void {
  if (!cluster) return;
  checkNats(cluster.nats, sink);
  checkRedis(cluster.redis, sink);
}

/**
 * A URL as written, for a problem message, with everything from "//" to its last "@" masked: a URL
 * the parser refuses is often one whose password holds a "/", "#" or "?" (base64 passwords do).
 */
function maskCredentials(value: string): string {
  return value.replace(/\/\/.*@/, '//***@');
}

function checkNats(nats: Loose<NatsConfig>, sink: CheckSink): void {
  const { problems } = sink;
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
  checkClientTls(nats.tls, 'cluster.nats.tls', sink);
}

function checkRedis(redis: Loose<RedisConfig>, sink: CheckSink): void {
  const { problems } = sink;
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
  checkClientTls(redis.tls, 'cluster.redis.tls', sink);
}

function checkClientTls(tls: Loose<ClientTlsConfig | null>, path: string, sink: CheckSink): void {
  if (!tls) return;
  checkCertKeyPair(tls.cert_file, tls.key_file, path, sink);
  if (tls.ca_file) checkReadable(tls.ca_file, `${path}.ca_file`, sink.problems);
}
