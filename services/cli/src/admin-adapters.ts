// Opens NATS and Redis for a one-shot admin command (`portcullis sessions ...`), with notes on stderr.
import { hostname } from 'node:os';
import { type NatsBus, createNatsBus } from '@portcullis/bus';
import type { ClusterConfig, PortcullisConfig } from '@portcullis/config';
import { type RedisStore, createRedisStore } from '@portcullis/store';

/** An admin command waits this long for NATS and for Redis before it gives up (exit 1). */
const ADMIN_CONNECT_TIMEOUT_MS = 5_000;

/** The cluster adapters an admin command works on. */
export interface AdminAdapters {
  bus: NatsBus;
  store: RedisStore;
  close(): Promise<void>;
}

/**
 * Connects to the cluster's NATS and Redis. The stream is used as the services set it up: an admin
 * shell's config file may allow shorter sessions than the cluster's, and setting the stream's
 * max_age from it would make NATS drop events of live sessions. Rejects with the bus's or the
 * store's own error, which names the target and what to check.
 */
export async function openAdminAdapters(
  config: PortcullisConfig & { cluster: ClusterConfig },
  command: string,
  note: (line: string) => void,
): Promise<AdminAdapters> {
  const bus = await createNatsBus({
    nats: config.cluster.nats,
    name: `portcullis-admin-${command}@${hostname()}`,
    streamMaxAgeSeconds: null,
    startTimeoutMs: ADMIN_CONNECT_TIMEOUT_MS,
    onStatus: (s) => {
      if (s.type === 'disconnect' || s.type === 'reconnect') note(`NATS ${s.type}ed`);
    },
  });
  let store: RedisStore;
  try {
    store = await createRedisStore({ redis: config.cluster.redis, startTimeoutMs: ADMIN_CONNECT_TIMEOUT_MS });
  } catch (err) {
    await bus.close().catch(() => {});
    throw err;
  }
  return {
    bus,
    store,
    async close() {
      await Promise.allSettled([bus.close(), store.close()]);
    },
  };
}
