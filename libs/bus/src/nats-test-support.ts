// Helpers shared by the NATS bus tests: a config for test servers and small waiting utilities.
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsConfig } from '@portcullis/config';
import type { NatsBus } from './nats-bus.ts';

/** A NatsConfig for loopback test servers (no auth, no TLS). */
export function buildTestNatsConfig(servers: string[], over: Partial<NatsConfig> = {}): NatsConfig {
  return { servers, stream: 'PORTCULLIS_SESSIONS', config_bucket: null, replicas: null, user: null, password: null, token: null, creds_file: null, tls: null, ...over };
}

/** The bus's connection with its real type (tests may look inside). */
export function connectionOf(bus: NatsBus): NatsConnection {
  return bus.nc as NatsConnection;
}

/** Polls `check` every 50 ms until it is true; rejects after `timeoutMs` with `what`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
