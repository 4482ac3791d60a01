// Opens the NATS connection of a cluster bus: auth and TLS from config, endless reconnects, a bounded start.
import { readFile } from 'node:fs/promises';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { NatsConfig } from '@portcullis/config';
import { BusStartError, BusStartErrorCode } from './bus-start-error.ts';

/** How long the first connection may take before the start fails (the servers are tried in turn). */
const DEFAULT_START_TIMEOUT_MS = 10_000;
/** Short waits between reconnect attempts: a gateway without NATS distrusts its cache, so every second counts. */
const RECONNECT_TIME_WAIT_MS = 250;

/** Builds the client options from config (reads `creds_file`). */
export async function buildConnectOptions(nats: NatsConfig, name: string): Promise<NodeConnectionOptions> {
  const options: NodeConnectionOptions = {
    servers: nats.servers,
    name,
    // Never give up: a replica that lost NATS keeps trying while the service reports itself degraded.
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_TIME_WAIT_MS,
    reconnectJitter: 100,
    timeout: 5_000,
  };
  if (nats.user !== null) {
    options.user = nats.user;
    options.pass = nats.password ?? '';
  }
  if (nats.token !== null) options.token = nats.token;
  if (nats.creds_file !== null) {
    const creds = await readFile(nats.creds_file).catch((err: unknown) => {
      throw new BusStartError(BusStartErrorCode.ConnectFailed, `cannot read cluster.nats.creds_file ${nats.creds_file}: ${errorMessage(err)}`, {
        cause: err,
      });
    });
    options.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  if (nats.tls) {
    options.tls = {
      ...(nats.tls.ca_file ? { caFile: nats.tls.ca_file } : {}),
      ...(nats.tls.cert_file ? { certFile: nats.tls.cert_file } : {}),
      ...(nats.tls.key_file ? { keyFile: nats.tls.key_file } : {}),
    };
  }
  return options;
}

/**
 * Connects, or rejects with a message naming the servers and what to check — within
 * `startTimeoutMs`, never hanging on an unreachable cluster.
 */
export async function connectNats(options: NodeConnectionOptions, startTimeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<NatsConnection> {
  const servers = listServers(options.servers);
  const attempt = connect(options);
  try {
    return await settleWithin(attempt, startTimeoutMs);
  } catch (err) {
    // A connection that completes after we gave up must not linger.
    attempt.then((nc) => nc.close()).catch(() => {});
    throw new BusStartError(
      BusStartErrorCode.ConnectFailed,
      `cannot connect to NATS at ${servers} (${errorMessage(err)}): check that nats-server runs there with JetStream enabled (-js), ` +
        'that cluster.nats.servers is right, and that the credentials and TLS settings match the server',
      { cause: err },
    );
  }
}

/** Server URLs for messages, with any user:password removed. */
export function listServers(servers: string[] | string | undefined): string {
  const list = servers === undefined ? [] : Array.isArray(servers) ? servers : [servers];
  // Up to the last "@" of the authority: a password may hold an unencoded "@" (the URL parser takes the last one).
  return list.map((s) => s.replace(/\/\/[^/?#]*@/, '//***@')).join(', ');
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves like `p`, or rejects once `ms` have passed (the work itself is not cancelled). */
export async function settleWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
