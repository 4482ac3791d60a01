// Builds the ioredis client from config: standalone (url), Sentinel, or Cluster; TLS and password included.
import { readFileSync } from 'node:fs';
import type { RedisConfig } from '@portcullis/config';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/** Either kind of client; every command the store uses exists on both. */
export type RedisClient = Redis | Cluster;

/**
 * How long a command waits for its answer. A Redis that stops answering without closing the
 * connection (paused, frozen VM, a network partition that drops packets) would otherwise hold every
 * command until TCP gives up, some 15 minutes: the requests that read it hung instead of failing.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;

/** Options shared by every connection: fail a command fast rather than queue it for long (the gateway fails closed). */
const COMMON_OPTIONS: RedisOptions = {
  lazyConnect: true,
  connectTimeout: 5_000,
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  // A command waits through at most two reconnect attempts, then fails: a request must not hang.
  maxRetriesPerRequest: 2,
  retryStrategy: (times) => Math.min(times * 100, 2_000),
};

/** Creates the (not yet connected) client described by `cfg`. */
export function createRedisClient(cfg: RedisConfig): RedisClient {
  const url = new URL(cfg.url);
  const tls = buildTls(cfg, url.protocol === 'rediss:');
  const password = cfg.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const auth: RedisOptions = { ...(password !== undefined ? { password } : {}), ...(username !== undefined ? { username } : {}) };

  if (cfg.cluster_nodes) {
    const options: ClusterOptions = {
      lazyConnect: true,
      redisOptions: { ...COMMON_OPTIONS, ...auth, ...(tls ? { tls } : {}) },
      slotsRefreshTimeout: 2_000,
      clusterRetryStrategy: (times) => Math.min(times * 100, 2_000),
      // With TLS the certificate names the host, so connect by the name the nodes announce.
      ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
    };
    return new Cluster(cfg.cluster_nodes.map(parseHostPort), options);
  }
  const db = Number(url.pathname.replace(/^\//, '') || 0);
  const options: RedisOptions = { ...COMMON_OPTIONS, ...auth, db, ...(tls ? { tls } : {}) };
  if (cfg.sentinels && cfg.sentinel_name) {
    return new Redis({
      ...options,
      sentinels: cfg.sentinels.map(parseHostPort),
      name: cfg.sentinel_name,
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    });
  }
  return new Redis({ ...options, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) });
}

/** A second connection with the same settings, for pub/sub (a subscribed connection runs no other commands). */
export function duplicateClient(client: RedisClient, cfg: RedisConfig): RedisClient {
  return client instanceof Cluster ? createRedisClient(cfg) : client.duplicate();
}

/** Where the store connects, for messages (no password). */
export function describeTarget(cfg: RedisConfig): string {
  if (cfg.cluster_nodes) return `Redis Cluster ${cfg.cluster_nodes.join(', ')}`;
  if (cfg.sentinels) return `Redis Sentinel ${cfg.sentinels.join(', ')} (master ${cfg.sentinel_name})`;
  // Up to the last "@" of the authority: a password may hold an unencoded "@" (the URL parser takes the last one).
  return `Redis ${cfg.url.replace(/\/\/[^/?#]*@/, '//***@')}`;
}

function buildTls(cfg: RedisConfig, byScheme: boolean): RedisOptions['tls'] | undefined {
  if (!cfg.tls) return byScheme ? {} : undefined;
  return {
    ...(cfg.tls.ca_file ? { ca: readFileSync(cfg.tls.ca_file) } : {}),
    ...(cfg.tls.cert_file ? { cert: readFileSync(cfg.tls.cert_file) } : {}),
    ...(cfg.tls.key_file ? { key: readFileSync(cfg.tls.key_file) } : {}),
  };
}

/** `host:port` or `[v6]:port` → ioredis node address (the config check already validated the form). */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) return { host: address, port: 6379 };
  return { host: m[1]!, port: Number(m[2]) };
}
