// Cluster bus: the session event log on NATS JetStream and request/reply on core NATS.
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConfig } from '@portcullis/config';
import { buildConnectOptions, connectNats, settleWithin } from './nats-connection.ts';
import { type BusStatusReporter, NatsEventLog } from './nats-event-log.ts';
import { NatsRequestBus } from './nats-request-bus.ts';
import { ensureStream, riskyStreamLimits } from './nats-stream.ts';
import type { Bus } from './types.ts';

/** Revisions a config bucket keeps (for `nats kv history` when something went wrong). */
const KV_HISTORY = 10;

/** How long `close()` lets NATS drain before it closes the connection outright. */
const CLOSE_DRAIN_TIMEOUT_MS = 5_000;

/** Options of {@link createNatsBus}. */
export interface NatsBusOptions {
  /** servers, stream, replicas, user/password/token/creds_file, tls. */
  nats: NatsConfig;
  /** Connection name shown by the server, e.g. "portcullis-gateway@host". */
  name: string;
  /**
   * Stream `max_age`: events older than any session can go. null: the stream is left as it is (a
   * connection that only reads or writes config documents, whose caller does not know the sessions'
   * lifetimes: the cluster's document may allow longer sessions than its local file).
   */
  streamMaxAgeSeconds: number | null;
  /** Connection events (disconnect, reconnect, ...) and subscriber retries, for the caller to log. */
  onStatus?: (s: { type: string; data?: unknown }) => void;
  /** Bound of the first connection; default 10 s. */
  startTimeoutMs?: number;
}

/** A bus backed by NATS; `connected()` is false while the connection is down (gateways then distrust their cache). */
export type NatsBus = Bus & {
  connected(): boolean;
  /** Writes a document into a KV bucket (created when missing); resolves with its revision. */
  putDocument(bucket: string, key: string, text: string): Promise<number>;
  /** The document's current value, or undefined when it was never written (or was deleted). */
  readDocument(bucket: string, key: string): Promise<string | undefined>;
  /** Calls `onValue` with the document's current value (if any) and every later one, until `stop`. */
  watchDocument(bucket: string, key: string, onValue: (text: string) => void): Promise<{ stop(): void }>;
  /** The underlying `NatsConnection` (typed loosely so the NATS client stays private to this package). */
  nc: unknown;
};

/**
 * Connects to NATS, creates or updates the session stream, and returns the bus. Rejects with a
 * {@link BusStartError} naming the servers and what to check when NATS or JetStream is not usable.
 */
export async function createNatsBus(opts: NatsBusOptions): Promise<NatsBus> {
  const report: BusStatusReporter = (s) => {
    try {
      opts.onStatus?.(s);
    } catch {
      // A failing status listener must not break the connection's status loop.
    }
  };
  const nc = await connectNats(await buildConnectOptions(opts.nats, opts.name), opts.startTimeoutMs);
  let up = true;
  const statusLoop = (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') up = false;
      else if (s.type === 'reconnect') up = true;
      report({ type: s.type, data: s });
    }
  })();

  let jsm: Awaited<ReturnType<typeof ensureStream>>['jsm'];
  try {
    if (opts.streamMaxAgeSeconds === null) {
      jsm = await jetstreamManager(nc);
    } else {
      const ensured = await ensureStream(nc, { name: opts.nats.stream, replicas: opts.nats.replicas, maxAgeSeconds: opts.streamMaxAgeSeconds });
      jsm = ensured.jsm;
      const risk = riskyStreamLimits(ensured.info);
      if (risk) report({ type: 'log_stream_limits', data: { stream: opts.nats.stream, message: risk } });
    }
  } catch (err) {
    await nc.close();
    throw err;
  }

  const log = new NatsEventLog(nc, jsm, opts.nats.stream, report);
  const rpc = new NatsRequestBus(nc);
  let closing: Promise<void> | undefined;
  return {
    log,
    rpc,
    nc,
    connected: () => up && !nc.isClosed(),
    async putDocument(bucket, key, text) {
      const kv = await new Kvm(nc).create(bucket, { history: KV_HISTORY });
      return kv.put(key, text);
    },
    async readDocument(bucket, key) {
      const kv = await new Kvm(nc).create(bucket, { history: KV_HISTORY });
      const entry = await kv.get(key);
      return entry?.operation === 'PUT' ? entry.string() : undefined;
    },
    async watchDocument(bucket, key, onValue) {
      const kv = await new Kvm(nc).create(bucket, { history: KV_HISTORY });
      const updates = await kv.watch({ key });
      void (async () => {
        for await (const entry of updates) {
          if (entry.operation === 'PUT') onValue(entry.string());
        }
      })().catch(() => {});
      return { stop: () => updates.stop() };
    },
    close: () => {
      closing ??= (async () => {
        // Order matters: stop deliveries and requests, let in-flight handlers answer, then drain.
        await log.closeAll();
        await rpc.closeAll();
        if (!nc.isClosed()) await settleWithin(nc.drain(), CLOSE_DRAIN_TIMEOUT_MS).catch(() => nc.close());
        await statusLoop;
      })();
      return closing;
    },
  };
}
