// Prometheus metrics (prom-client): authentik's metric names where they exist, Portcullis's own beside them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric a Portcullis process exports, on one registry. */
export interface Metrics {
  registry: Registry;
  /** authentik: request duration by outpost, method, host, type (app|ping|static). */
  requestDuration: Histogram<'outpost_name' | 'method' | 'host' | 'type'>;
  /** authentik: upstream response duration in proxy mode. */
  upstreamDuration: Histogram<'outpost_name' | 'method' | 'scheme' | 'host' | 'upstream_host'>;
  /** Auth decisions by provider and outcome (authenticated, unauthenticated, allowlisted, denied, error). */
  decisions: Counter<'provider' | 'outcome'>;
  /** Logins by provider and result (success, or the failure reason). */
  logins: Counter<'provider' | 'result'>;
  /** Sign-outs by provider and result. */
  signOuts: Counter<'provider' | 'result'>;
  /** Seconds from appending a sign-out until the gateways applied it. */
  signOutPropagation: Histogram<never>;
  /** Events appended to the log, by type. */
  eventsAppended: Counter<'type'>;
  /** Events projected into the store, by type. */
  eventsProjected: Counter<'type'>;
  /** Session refreshes at the IdP by outcome: refreshed, refused (session ended), failed (IdP unreachable; retried). */
  sessionRefreshes: Counter<'provider' | 'outcome'>;
  /** Sessions the session service ended on its own, by cause: idle, provider_removed, cookie_secret_changed, issuer_changed. */
  sessionsEnded: Counter<'provider' | 'cause'>;
  /** Session uses reported by the gateway to the session service, by result (ok, failed: kept for the next report). */
  activityReported: Counter<'result'>;
  /** Gateway session lookups: hit (memory), miss (read Redis, then cached), bypass (cache distrusted). */
  sessionCacheLookups: Counter<'result'>;
  /** 1 while the gateway trusts its session cache, 0 while it reads Redis for every request. */
  sessionCacheTrusted: Gauge;
  /** Sessions held in the gateway's cache. */
  sessionCacheEntries: Gauge;
  /** Stream's last sequence minus the sequence applied to the projection (session service). */
  projectionLag: Gauge;
  /** 1 while connected to NATS. */
  natsConnected: Gauge;
  /** 1 while Redis answers. */
  redisConnected: Gauge;
  /**
   * notAfter (Unix seconds) of each provider certificate the HTTPS listener serves, by provider and
   * SNI host; a certificate no longer served has no series.
   */
  tlsCertificateExpiry: Gauge<'provider' | 'host'>;
}

/** prom-client's storage of one label set of a histogram (what its `observe` updates). */
interface HistogramEntry {
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

/** prom-client's storage of one label set of a counter. */
interface CounterEntry {
  value: number;
}

/** Where a label set's numbers live: prom-client's map and key at the time they were looked up. */
interface Cell<E> {
  map: Record<string, E>;
  key: string;
  entry: E;
}

/** Label sets remembered per metric; past this, new ones take prom-client's path every time. */
const CELLS_MAX = 10_000;

/**
 * Label set → storage cell, by nested maps over the label values in label-name order (no string is
 * built per lookup).
 */
class CellCache<E> {
  readonly #internals: PromInternals<E>;
  readonly #names: readonly string[];
  readonly #root = new Map<unknown, unknown>();
  #size = 0;

  constructor(internals: PromInternals<E>) {
    this.#internals = internals;
    this.#names = internals.labelNames;
  }

  /** The entry of a label set seen before, while prom-client still holds it (not after a reset or remove). */
  entry(labels: Record<string, unknown>): E | undefined {
    const cell = this.#get(labels);
    if (cell !== undefined && cell.map === this.#internals.hashMap && cell.map[cell.key] === cell.entry) return cell.entry;
    return undefined;
  }

  /** After prom-client's own path has stored a label set: remembers where. */
  remember(labels: Record<string, unknown>): void {
    const map = this.#internals.hashMap;
    const key = promKey(this.#internals.sortedLabelNames, labels);
    const entry = map[key];
    if (entry) this.#set(labels, { map, key, entry });
  }

  #get(labels: Record<string, unknown>): Cell<E> | undefined {
    let node: unknown = this.#root;
    for (const name of this.#names) {
      node = (node as Map<unknown, unknown>).get(labels[name]);
      if (node === undefined) return undefined;
    }
    return node as Cell<E>;
  }

  #set(labels: Record<string, unknown>, cell: Cell<E>): void {
    if (this.#size >= CELLS_MAX) return;
    const names = this.#names;
    let node = this.#root;
    for (let i = 0; i < names.length - 1; i++) {
      let next = node.get(labels[names[i]!]) as Map<unknown, unknown> | undefined;
      if (!next) {
        next = new Map();
        node.set(labels[names[i]!], next);
      }
      node = next;
    }
    if (!node.has(labels[names[names.length - 1]!])) this.#size++;
    node.set(labels[names[names.length - 1]!], cell);
  }
}

/** prom-client's key of a label set (its `hashObject` over the sorted label names). */
function promKey(sortedNames: readonly string[], labels: Record<string, unknown>): string {
  let key = '';
  for (const name of sortedNames) {
    const value = labels[name];
    if (value !== undefined) key += `${name}:${value},`;
  }
  return key;
}

/** The internals of a prom-client metric the fast paths below read (checked by metrics.test.ts against prom-client's own results). */
interface PromInternals<E> {
  hashMap: Record<string, E>;
  sortedLabelNames: string[];
  labelNames: string[];
}

/**
 * Makes `histogram.observe(labels, value)` cheap for label sets seen before (HOT: the per-request
 * duration histograms): prom-client builds a key string, validates every label and converts the
 * bucket bound to a property name on each call (~0.8 µs); here a repeat label set is a few map
 * lookups and three additions on the same storage prom-client reads when it exports. The first
 * observation of a label set, invalid values, and anything after a `reset()`/`remove()` take
 * prom-client's own path (which validates and throws as before). Exported text is unchanged.
 */
export function withCachedLabels<T extends string>(histogram: Histogram<T>): Histogram<T> {
  const internals = histogram as unknown as PromInternals<HistogramEntry> & { upperBounds: number[] };
  const bounds = internals.upperBounds;
  const boundKeys = bounds.map(String);
  const cells = new CellCache<HistogramEntry>(internals);
  const observe = histogram.observe.bind(histogram) as unknown as (labels: Record<string, unknown>, value: number) => void;
  (histogram as unknown as { observe: (labels: Record<string, unknown>, value: number) => void }).observe = (labels, value) => {
    if (typeof labels !== 'object' || labels === null || !Number.isFinite(value)) return observe(labels, value);
    const entry = cells.entry(labels);
    if (entry !== undefined) {
      entry.sum += value;
      entry.count += 1;
      for (let i = 0; i < bounds.length; i++) {
        if (value <= bounds[i]!) {
          entry.bucketValues[boundKeys[i]!]! += 1;
          break;
        }
      }
      return;
    }
    observe(labels, value);
    cells.remember(labels);
  };
  return histogram;
}

/** {@link withCachedLabels} for a counter's `inc(labels, value?)`. */
export function withCachedCounterLabels<T extends string>(counter: Counter<T>): Counter<T> {
  const internals = counter as unknown as PromInternals<CounterEntry>;
  const cells = new CellCache<CounterEntry>(internals);
  const inc = counter.inc.bind(counter) as unknown as (labels?: Record<string, unknown> | number, value?: number) => void;
  (counter as unknown as { inc: (labels?: Record<string, unknown> | number, value?: number) => void }).inc = (labels, value) => {
    if (typeof labels !== 'object' || labels === null || (value !== undefined && !(Number.isFinite(value) && value >= 0))) return inc(labels, value);
    const entry = cells.entry(labels);
    if (entry !== undefined) {
      entry.value += value ?? 1;
      return;
    }
    inc(labels, value);
    cells.remember(labels);
  };
  return counter;
}

/** Creates the registry and metrics; `authentik_outpost_info` is set once here. */
export function createMetrics(opts: { outpostName: string; version: string; collectDefaults?: boolean }): Metrics {
  const registry = new Registry();
  if (opts.collectDefaults !== false) collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'authentik_outpost_info',
    help: 'Outpost info',
    labelNames: ['outpost_name', 'outpost_type', 'version'],
    registers: [registry],
    // Gateway workers' metrics are summed by the primary (worker-metrics.ts); gauges that are states, not amounts, say how they combine.
    aggregator: 'first',
  });
  info.set({ outpost_name: opts.outpostName, outpost_type: 'proxy', version: opts.version }, 1);
  return {
    registry,
    // Recorded on every request: label sets are cached (see withCachedLabels).
    requestDuration: withCachedLabels(
      new Histogram({
        name: 'authentik_outpost_proxy_request_duration_seconds',
        help: 'Proxy request durations',
        labelNames: ['outpost_name', 'method', 'host', 'type'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
    ),
    upstreamDuration: withCachedLabels(
      new Histogram({
        name: 'authentik_outpost_proxy_upstream_response_duration_seconds',
        help: 'Proxy upstream response durations',
        labelNames: ['outpost_name', 'method', 'scheme', 'host', 'upstream_host'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
    ),
    decisions: withCachedCounterLabels(
      new Counter({
        name: 'portcullis_auth_decisions_total',
        help: 'Authentication decisions by outcome',
        labelNames: ['provider', 'outcome'],
        registers: [registry],
      }),
    ),
    logins: new Counter({
      name: 'portcullis_logins_total',
      help: 'Completed and failed logins',
      labelNames: ['provider', 'result'],
      registers: [registry],
    }),
    signOuts: new Counter({
      name: 'portcullis_sign_outs_total',
      help: 'Sign-outs by result',
      labelNames: ['provider', 'result'],
      registers: [registry],
    }),
    signOutPropagation: new Histogram({
      name: 'portcullis_signout_propagation_seconds',
      help: 'Time from appending a sign-out until the gateways applied it',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    eventsAppended: new Counter({
      name: 'portcullis_events_appended_total',
      help: 'Events appended to the session log',
      labelNames: ['type'],
      registers: [registry],
    }),
    eventsProjected: new Counter({
      name: 'portcullis_events_projected_total',
      help: 'Events applied to the session projection',
      labelNames: ['type'],
      registers: [registry],
    }),
    sessionRefreshes: new Counter({
      name: 'portcullis_session_refreshes_total',
      help: 'Session refreshes at the IdP by outcome (refreshed, refused: session ended, failed: retried later)',
      labelNames: ['provider', 'outcome'],
      registers: [registry],
    }),
    sessionsEnded: new Counter({
      name: 'portcullis_sessions_ended_total',
      help: 'Sessions ended by the session service (idle timeout, provider removed, cookie secret changed)',
      labelNames: ['provider', 'cause'],
      registers: [registry],
    }),
    activityReported: new Counter({
      name: 'portcullis_session_activity_reported_total',
      help: 'Session uses reported by the gateway for idle timeouts, by result (failed ones are kept for the next report)',
      labelNames: ['result'],
      registers: [registry],
    }),
    // Counted on every request a session cookie comes with: label sets are cached.
    sessionCacheLookups: withCachedCounterLabels(
      new Counter({
        name: 'portcullis_session_cache_lookups_total',
        help: 'Gateway session lookups by result (hit, miss, bypass)',
        labelNames: ['result'],
        registers: [registry],
      }),
    ),
    sessionCacheTrusted: new Gauge({
      name: 'portcullis_session_cache_trusted',
      help: '1 while the gateway trusts its session cache, 0 while it reads Redis for every request',
      registers: [registry],
      aggregator: 'min',
    }),
    sessionCacheEntries: new Gauge({
      name: 'portcullis_session_cache_entries',
      help: "Sessions held in the gateway's cache",
      registers: [registry],
    }),
    projectionLag: new Gauge({
      name: 'portcullis_projection_lag_events',
      help: 'Events in the stream not yet applied to the Redis projection',
      registers: [registry],
      aggregator: 'max',
    }),
    natsConnected: new Gauge({ name: 'portcullis_nats_connected', help: '1 while connected to NATS', registers: [registry], aggregator: 'min' }),
    redisConnected: new Gauge({ name: 'portcullis_redis_connected', help: '1 while Redis answers', registers: [registry], aggregator: 'min' }),
    tlsCertificateExpiry: new Gauge({
      name: 'portcullis_tls_certificate_expiry_timestamp_seconds',
      help: "notAfter of each provider certificate the HTTPS listener serves (Unix time, seconds), by provider and SNI host",
      labelNames: ['provider', 'host'],
      registers: [registry],
      aggregator: 'min',
    }),
  };
}
