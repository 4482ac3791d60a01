// Wires the selected services of one process over the embedded or cluster adapters, and stops them in order.
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { type AuthService, createAuthService } from '@portcullis/auth';
import { type Bus, createMemoryBus, createNatsBus, type NatsBus } from '@portcullis/bus';
import { type ConfigProblem, type PortcullisConfig, checkServerCertificates } from '@portcullis/config';
import {
  ActivityReporter,
  CachedSessionReader,
  type Gateway,
  GatewayBarrierMember,
  PresenceTracker,
  collectRevocationAcks,
  type RevocationOutcome,
  createGateway,
  parseListen,
  type ServedCertificate,
} from '@portcullis/gateway';
import { createSessionService, createSessionUpkeep, type SessionUpkeepService } from '@portcullis/session';
import { cookieKeyId } from '@portcullis/protocol';
import { type RedisStore, type SessionReader, type SessionStore, createMemoryStore, createRedisStore } from '@portcullis/store';
import { type Logger, type Metrics, type Readiness, type ReadinessScope, createMetrics, startMetricsServer } from '@portcullis/telemetry';
import { type Role, serviceName } from './roles.ts';
import { rebuildProjection } from './sessions-rebuild.ts';
import { maxSessionSeconds, streamMaxAgeSeconds } from './session-lifetimes.ts';
import { META_VERSION, VERSION } from './version.ts';

/** A running Portcullis process. */
export interface RunningPortcullis {
  gateway: Gateway | null;
  metrics: Metrics;
  bus: Bus;
  store: SessionStore;
  /** Graceful stop: listeners first (in-flight requests finish), then services, then adapters. */
  stop(): Promise<void>;
  /** What this process's `/ready` answers (a gateway worker answers it to its primary, which serves the listener). */
  readiness(scope: ReadinessScope): Promise<Readiness>;
  /**
   * Applies a new validated config without a restart: gateway handler and auth service are rebuilt
   * and swapped; sessions stay in the store. Changes that need a restart (listen addresses, the
   * cluster block) are refused as a whole — nothing is half-applied. Reloads run one at a time.
   */
  reload(config: PortcullisConfig): Promise<ConfigReload>;
  /**
   * Reads the HTTPS certificate and key files of the running config again (they changed, the config
   * did not: a certificate renewed while the config comes from NATS KV) and swaps them into the
   * listener when every one passes the config checks; otherwise nothing changes. Waits for a
   * `reload` under way (and `reload` for one of these): they run one after another.
   */
  reloadCertificates(): Promise<CertificateReload>;
}

/** What {@link RunningPortcullis.reload} applied that an operator wants to see in its log line. */
export interface ConfigReload {
  /** The provider certificates the HTTPS listener serves now; null without one (no gateway role, or `outpost.listen.https: null`). */
  certificates: ServedCertificate[] | null;
}

/** What {@link RunningPortcullis.reloadCertificates} did. */
export type CertificateReload =
  | { outcome: 'no-https-listener' }
  | { outcome: 'rejected'; problems: ConfigProblem[]; warnings: ConfigProblem[] }
  | { outcome: 'reloaded'; certificates: ServedCertificate[]; warnings: ConfigProblem[] };

/** Thrown for a config that is valid but cannot run with the chosen roles. */
export class StartupError extends Error {
  readonly code = 'PORTCULLIS_STARTUP';
}

/**
 * How long a sign-out waits for the shared projection before answering 503: long enough to ride out a
 * session replica re-subscribing after a NATS node loss (its stall watchdog fires after 5 s).
 */
const PROJECTION_WAIT_MS = 10_000;
/** The session cache's lookup results as label sets, built once (counted per request). */
const LOOKUP_LABELS = { hit: { result: 'hit' }, miss: { result: 'miss' }, bypass: { result: 'bypass' } } as const;

/** Starts the roles in `roles` for `config`. */
export async function startPortcullis(opts: {
  config: PortcullisConfig;
  roles: ReadonlySet<Role>;
  logger: Logger;
  /** False in a gateway worker: its primary serves outpost.listen.metrics for all workers. */
  metricsListener?: boolean;
}): Promise<RunningPortcullis> {
  const { config, roles, logger } = opts;
  if (!config.cluster && roles.size !== 3) {
    throw new StartupError('embedded mode (no cluster: block) runs all services in one process — use --services all, or configure cluster: to split them');
  }
  const metrics = createMetrics({ outpostName: config.outpost.name, version: VERSION });
  const stops: Array<() => Promise<void>> = [];
  let metricsServer: Server | undefined;
  // Bus connection changes reach the gateway's cache once it exists.
  let onBusConnection: (up: boolean) => void = () => {};
  const { bus, store, cluster } = await openAdapters(config, roles, logger, {
    bus: (up) => {
      metrics.natsConnected.set(up ? 1 : 0);
      onBusConnection(up);
    },
    redis: (up) => metrics.redisConnected.set(up ? 1 : 0),
  });
  exportOnlyApplicableMetrics(metrics, config, roles);
  const timers: NodeJS.Timeout[] = [];
  // Readiness: NATS connected and Redis answering (cluster); the gateway's cache state is reported too.
  let cacheState: () => string | undefined = () => undefined;
  // The metrics listener starts first: until the gateway's own listeners are bound, a process with the
  // gateway role is not ready (a pod marked ready then would refuse the traffic sent to it).
  let gatewayListening = false;
  // From the first moment of a stop: the listeners refuse new connections, so a load balancer
  // polling /ready must take the process out of rotation (the metrics listener closes last).
  let stopping = false;
  const readiness = async (scope: ReadinessScope): Promise<Readiness> => {
    if (stopping) return { ready: false, checks: { process: 'stopping' } };
    if (roles.has('gateway') && !gatewayListening) return { ready: false, checks: { gateway: 'starting' } };
    // The container health check: this process's own listeners, whatever NATS and Redis do.
    if (scope === 'listeners') return { ready: true, checks: roles.has('gateway') ? { gateway: 'listening' } : { process: 'running' } };
    if (!cluster) return { ready: true, checks: { mode: 'embedded' } };
    const nats = cluster.nats.connected();
    const redis = await Promise.race([
      cluster.redis.ping(),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ]).catch(() => false);
    const cache = cacheState();
    return {
      ready: nats && redis,
      checks: { nats: nats ? 'connected' : 'disconnected', redis: redis ? 'ok' : 'unreachable', ...(cache ? { session_cache: cache } : {}) },
    };
  };

  try {
    if (config.outpost.listen.metrics && opts.metricsListener !== false) {
      metricsServer = await startMetricsServer({
        ...parseListen(config.outpost.listen.metrics),
        registry: metrics.registry,
        readiness,
      });
    }
    let upkeep: SessionUpkeepService | null = null;
    if (roles.has('session')) {
      const session = createSessionService({
        log: bus.log,
        store,
        onApplied: (_seq, type) => metrics.eventsProjected.inc({ type }),
        // Not fatal: the service backs off and resumes from the applied sequence (a rebuild, Redis down, ...).
        onError: (err, notice) =>
          logger.warn(
            { err, retry_in_ms: notice.retryInMs, attempt: notice.attempt },
            notice.rebuilding ? 'session projection paused: a rebuild holds the projection' : 'session projection failed: retrying',
          ),
        // Redis lost the projection (restarted without persistence...): rebuilt from the log, gateways answering 503 meanwhile.
        ...(cluster ? { rebuild: (onBegun) => rebuildProjection({ log: bus.log, store: cluster.redis, onBegun }), rebuildInProgress: () => cluster.redis.rebuildInProgress() } : {}),
        onRebuild: (phase, detail) =>
          phase === 'started'
            ? logger.warn({ reason: detail }, 'rebuilding the session projection from the event log: gateways answer 503 for sessions they have not cached until it ends')
            : logger.info({ result: detail }, 'session projection rebuilt'),
      });
      await session.start();
      stops.push(() => session.stop());
      // Beside the projector: gateways' activity reports, the idle sweeper, and ending the sessions a config change invalidates.
      upkeep = createSessionUpkeep({
        bus,
        store,
        config,
        cookieKeyId,
        logger: logger.child({ component: 'session-upkeep' }),
        onEnded: (provider, cause, count) => metrics.sessionsEnded.inc({ provider, cause }, count),
      });
      // Not awaited: the first reconcile lists every live session, which must not hold up the process's start.
      upkeep.start().catch((err: unknown) => logger.error({ err }, 'session upkeep failed to start'));
      const running = upkeep;
      stops.push(() => running.stop());
      if (config.cluster) {
        // Projection lag: how far Redis trails the stream (sampled; a scrape never waits on NATS).
        const sampleLag = () =>
          Promise.all([bus.log.lastSeq(), store.appliedSeq()]).then(
            ([last, applied]) => metrics.projectionLag.set(Math.max(0, last - applied)),
            () => {},
          );
        void sampleLag();
        const timer = setInterval(sampleLag, 2000);
        timer.unref();
        timers.push(timer);
      }
    }
    const authBus = countingAppends(bus, metrics);
    const authLogger = logger.child({ component: 'auth' });
    const onRefresh = (provider: string, outcome: string) => metrics.sessionRefreshes.inc({ provider, outcome });
    let auth: AuthService | null = null;
    if (roles.has('auth')) {
      auth = createAuthService({ config, bus: authBus, store, logger: authLogger, onRefresh });
      await auth.start();
      stops.push(() => auth!.stop());
    }
    let gateway: Gateway | null = null;
    if (roles.has('gateway')) {
      const timeout = config.outpost.signout_propagation_timeout_ms;
      const outpost = config.outpost.name;
      let reader: SessionReader = store;
      let waitForRevocation = async (seq: number): Promise<RevocationOutcome> =>
        (await store.waitForApplied(seq, Math.max(timeout, PROJECTION_WAIT_MS))) ? 'propagated' : 'unprojected';
      if (config.cluster) {
        // Cluster: a local cache kept correct by the log, and a barrier across every live gateway.
        const cache = new CachedSessionReader({
          log: bus.log,
          store,
          revocationMemoryMs: maxSessionSeconds(config) * 1000,
          onLookup: (result) => metrics.sessionCacheLookups.inc(LOOKUP_LABELS[result]),
          onTrustChange: (trusted, reason) =>
            (trusted ? logger.info.bind(logger) : logger.warn.bind(logger))({ reason }, trusted ? 'session cache trusted' : 'session cache distrusted: reading Redis for every request'),
        });
        await cache.start();
        onBusConnection = (up) => void cache.setConnected(up);
        cacheState = () => (cache.trusted ? 'trusted' : 'read-through (every request reads Redis)');
        const presence = new PresenceTracker(bus.rpc);
        presence.start();
        const member = new GatewayBarrierMember({
          id: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
          rpc: bus.rpc,
          cache,
          boundMs: timeout,
          onTick: (trusted, entries) => {
            metrics.sessionCacheTrusted.set(trusted ? 1 : 0);
            metrics.sessionCacheEntries.set(entries);
          },
          // Covers the lease too: a silent partition shows up here even when no log event says so.
          onTrustedChange: (trusted) =>
            (trusted ? logger.info.bind(logger) : logger.warn.bind(logger))(
              { trusted },
              trusted ? 'session cache usable again' : 'session cache not usable (lease lapsed or distrusted): reading Redis',
            ),
        });
        member.start();
        stops.push(async () => {
          await member.stop();
          await presence.stop();
          await cache.stop();
        });
        reader = cache;
        waitForRevocation = async (seq) => {
          // The projection must have it (laggard gateways read it); the acks are bounded by the config.
          const [projected, acked] = await Promise.all([
            store.waitForApplied(seq, Math.max(timeout, PROJECTION_WAIT_MS)),
            collectRevocationAcks(bus.rpc, presence, seq, timeout),
          ]);
          if (!projected) return 'unprojected';
          return acked ? 'propagated' : 'bounded';
        };
      }
      // Which sessions were used, reported in batches to the session service (for idle timeouts).
      const activity = new ActivityReporter({
        rpc: bus.rpc,
        providers: config.providers,
        log: logger.child({ component: 'gateway' }),
        onFlush: (sent, ok) => metrics.activityReported.inc({ result: ok ? 'ok' : 'failed' }, sent),
      });
      gateway = await createGateway({
        config,
        activity,
        rpc: bus.rpc,
        store: reader,
        version: META_VERSION,
        waitForRevocation,
        log: logger.child({ component: 'gateway' }),
        observe: {
          decision: (provider, outcome) => metrics.decisions.inc({ provider, outcome }),
          login: (provider, result) => metrics.logins.inc({ provider, result }),
          signOut: (provider, result, seconds) => {
            metrics.signOuts.inc({ provider, result });
            if (seconds !== null) metrics.signOutPropagation.observe(seconds);
          },
        },
        observeRequest: (method, host, type, seconds) => metrics.requestDuration.observe({ outpost_name: outpost, method, host, type }, seconds),
        observeUpstream: (answer, method, seconds) => {
          const upstream = upstreamLabels(answer.origin);
          metrics.upstreamDuration.observe(
            { outpost_name: outpost, method, scheme: upstream.scheme, host: answer.metricHost ?? 'unknown', upstream_host: upstream.host },
            seconds,
          );
        },
      });
      exportCertificateExpiry(metrics, gateway.certificates);
      await gateway.start();
      gatewayListening = true;
      activity.start();
      // The gateway stops first so in-flight requests can still reach auth and the store; its last
      // activity report goes out before the bus closes.
      stops.unshift(async () => {
        await gateway!.stop();
        await activity.stop();
      });
    }
    let current = config;
    // Reloads take turns: a certificate reload (SIGHUP, a changed file) never lands in the middle of a
    // config reload (SIGHUP, a file change, a shared-config push), whose steps await in between.
    let lane: Promise<unknown> = Promise.resolve();
    const inTurn = <T>(task: () => Promise<T> | T): Promise<T> => {
      const turn = lane.then(task);
      lane = turn.catch(() => {});
      return turn;
    };
    return {
      gateway,
      metrics,
      reload(next) {
        return inTurn(async () => {
          const refused = restartOnlyChanges(current, next);
          if (refused.length > 0) throw new StartupError(`these changes need a restart, so nothing was applied: ${refused.join(', ')}`);
          // All or nothing: what can fail (the new auth service's start, the gateway's new handler and
          // certificates) runs before anything is swapped, and is undone if a later step fails.
          let nextAuth: AuthService | null = null;
          if (auth) {
            // Started before the old one stops: both serve the subjects for a moment, so no login
            // request finds nobody to answer.
            nextAuth = createAuthService({ config: next, bus: authBus, store, logger: authLogger, onRefresh });
            try {
              await nextAuth.start();
            } catch (err) {
              await nextAuth.stop().catch(() => {});
              throw new StartupError(`the auth service could not start with the new configuration, so nothing was applied: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
            }
          }
          try {
            gateway?.reload(next);
          } catch (err) {
            await nextAuth?.stop().catch(() => {});
            throw err;
          }
          const certificates = gateway?.certificates ?? null;
          exportCertificateExpiry(metrics, certificates);
          if (auth && nextAuth) {
            const previous = auth;
            auth = nextAuth;
            await previous.stop();
          }
          // Ends the sessions of removed providers and of changed cookie secrets (only those).
          await upkeep?.reload(next);
          logger.level = next.log_level;
          current = next;
          const later = readOnceAtStart(config, next);
          if (later.length > 0) logger.warn({ settings: later }, `config reloaded, but these settings take effect only at the next restart: ${later.join('; ')}`);
          return { certificates };
        });
      },
      reloadCertificates() {
        return inTurn((): CertificateReload => {
          if (!gateway?.https) return { outcome: 'no-https-listener' };
          // The files of the config the gateway serves with (the last reload's). A certificate being
          // served stays acceptable once expired: another provider's renewal is not held back by it.
          const checked = checkServerCertificates(gateway.config, new Set(gateway.certificates?.map((c) => c.sha256)));
          if (checked.problems.length > 0) return { outcome: 'rejected', ...checked };
          // What is served must be what was checked: a certificate file rewritten after its check (a
          // rotation still writing, or an expired certificate put back) is refused, not served unchecked.
          let changed: ServedCertificate | undefined;
          try {
            const certificates =
              gateway.reloadCertificates((loaded) => {
                changed = loaded.find((c) => checked.checked.get(c.cert_file) !== c.sha256);
                return changed && `${changed.cert_file} changed while it was being checked`;
              }) ?? [];
            exportCertificateExpiry(metrics, certificates);
            return { outcome: 'reloaded', certificates, warnings: checked.warnings };
          } catch (err) {
            // A file replaced between the check and the read (a rotation still writing them).
            const fix = 'send SIGHUP again once the rotation has written both files; unless outpost.certificate_watch_interval_seconds is 0, their next change is reloaded without it';
            const problem = changed
              ? { path: certFilePath(gateway.config, changed.cert_file), reason: `${changed.cert_file} changed between its check and its loading (it now holds the certificate ${changed.sha256}, which was not checked), so nothing was swapped in`, fix }
              : { path: 'providers[].tls', reason: `a certificate or key file did not load: ${(err as Error).message}`, fix };
            return { outcome: 'rejected', problems: [problem], warnings: checked.warnings };
          }
        });
      },
      bus,
      store,
      readiness,
      async stop() {
        stopping = true;
        for (const timer of timers) clearInterval(timer);
        for (const stop of stops) await stop().catch((err: unknown) => logger.error({ err }, 'error while stopping'));
        await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
        await bus.close();
        await store.close();
      },
    };
  } catch (err) {
    for (const stop of stops) await stop().catch(() => {});
    metricsServer?.close();
    await bus.close().catch(() => {});
    await store.close().catch(() => {});
    throw listenFailure(err, config) ?? err;
  }
}

/** `providers[i].tls.cert_file` of the (first) provider serving `file`. */
function certFilePath(config: PortcullisConfig, file: string): string {
  const i = config.providers.findIndex((p) => p.tls.cert_file === file);
  return i === -1 ? 'providers[].tls.cert_file' : `providers[${i}].tls.cert_file`;
}

/** Why a listener could not bind, per node's error code, and what to do about it. */
const LISTEN_FAILURES: Record<string, { reason: string; fix: string }> = {
  EADDRINUSE: { reason: 'is already in use (another process listens there)', fix: 'stop that process, or' },
  EACCES: { reason: 'may not be bound by this user (ports below 1024 need privileges)', fix: 'use a port from 1024 up, or' },
  EADDRNOTAVAIL: { reason: 'names an address this machine does not have', fix: 'use one of its addresses (or 0.0.0.0), or' },
};

/**
 * A listener that failed to bind, as a config problem line (`<path>: <reason> — <fix>`) naming the
 * setting; null for any other error. node's message alone names neither the setting nor the fix.
 */
export function listenFailure(err: unknown, config: PortcullisConfig): Error | null {
  const e = err as NodeJS.ErrnoException & { port?: number };
  // 'bind' in a gateway worker: node:cluster's primary binds the port for it.
  const known = (e?.syscall === 'listen' || e?.syscall === 'bind') && e.code ? LISTEN_FAILURES[e.code] : undefined;
  if (!known) return null;
  const listen = config.outpost.listen;
  const key = (['http', 'https', 'metrics'] as const).find((k) => listen[k] && parseListen(listen[k]).port === e.port);
  if (!key) return null;
  const env = `PORTCULLIS_OUTPOST__LISTEN__${key.toUpperCase()}`;
  const off = key === 'http' ? '' : ' (null turns this listener off)';
  return new Error(`outpost.listen.${key}: ${listen[key]} ${known.reason} — ${known.fix} set outpost.listen.${key} (or ${env}) to a free address${off}`, { cause: err });
}

/**
 * Embedded: in-process bus and store. Cluster: NATS JetStream and Redis, with their state logged;
 * `cluster` gives them with their own types (connection state, ping, projection rebuild).
 */
async function openAdapters(
  config: PortcullisConfig,
  roles: ReadonlySet<Role>,
  logger: Logger,
  connection: { bus: (up: boolean) => void; redis: (up: boolean) => void },
): Promise<{ bus: Bus; store: SessionStore; cluster: { nats: NatsBus; redis: RedisStore } | null }> {
  if (!config.cluster) return { bus: createMemoryBus(), store: createMemoryStore(), cluster: null };
  const bus = await createNatsBus({
    nats: config.cluster.nats,
    name: `${serviceName(roles)}@${hostname()}`,
    streamMaxAgeSeconds: streamMaxAgeSeconds(config),
    onStatus: (s) => {
      if (s.type === 'disconnect') {
        logger.warn({ nats: s.type }, 'NATS disconnected');
        connection.bus(false);
      } else if (s.type === 'reconnect') {
        logger.info({ nats: s.type }, 'NATS reconnected');
        connection.bus(true);
      } else if (s.type === 'log_subscription_stalled') {
        // A reader of the event log heard nothing from its consumer: events would stop being applied.
        logger.warn({ nats: s.type, ...(s.data as object) }, 'event log reader stalled: starting a new consumer');
      } else if (s.type === 'log_subscription_behind') {
        // Its consumer heartbeats but has not delivered an event the stream holds: events would stop being applied.
        logger.warn({ nats: s.type, ...(s.data as object) }, 'event log reader behind the stream with nothing delivered: starting a new consumer');
      } else if (s.type === 'log_stream_limits') {
        const { message, ...data } = s.data as { message: string };
        logger.warn({ nats: s.type, ...data }, message);
      } else if (s.type === 'log_gap') {
        // Harmless for events past max_age (older than any session); a size limit may have dropped live ones.
        logger.warn(
          { nats: s.type, ...(s.data as object) },
          'event log reader skipped events the stream no longer holds (aged past max_age, or dropped by a stream size limit: see the stream limits warning)',
        );
      } else if (s.type === 'log_subscription_retry') {
        logger.warn({ nats: s.type, ...(s.data as object) }, 'event log reader failed: retrying');
      } else if (s.type !== 'ping' && s.type !== 'pingTimer') {
        logger.debug({ nats: s.type }, 'NATS status');
      }
    },
  });
  try {
    const store = await createRedisStore({
      redis: config.cluster.redis,
      onStatus: (s) => {
        if (s === 'ready') connection.redis(true);
        else if (s === 'close' || s === 'end') connection.redis(false);
        if (s.startsWith('error')) logger.warn({ redis: s }, 'Redis error');
        else logger.info({ redis: s }, 'Redis status');
      },
    });
    // An evicting Redis can drop a sign-out watermark and revive a signed-out session: say so at every start.
    const hazard = await store.evictionHazard();
    if (hazard) logger.warn({ redis: 'maxmemory-policy' }, hazard);
    connection.bus(true);
    connection.redis(true);
    return { bus, store, cluster: { nats: bus, redis: store } };
  } catch (err) {
    await bus.close();
    throw err;
  }
}

/** Upstream origins are few and repeat on every proxied request: their metric labels are parsed once. */
const upstreamLabelMemo = new Map<string, { scheme: string; host: string }>();

/** `scheme` and `upstream_host` labels of an upstream origin (e.g. `http://app:8080` → http, app:8080). */
function upstreamLabels(origin: string): { scheme: string; host: string } {
  let labels = upstreamLabelMemo.get(origin);
  if (!labels) {
    const url = new URL(origin);
    labels = { scheme: url.protocol.slice(0, -1), host: url.host };
    // Origins come from the config (and backend_override mappings): bounded, but never let it grow without limit.
    if (upstreamLabelMemo.size >= 1024) upstreamLabelMemo.clear();
    upstreamLabelMemo.set(origin, labels);
  }
  return labels;
}

/**
 * Settings this process read once at start, which a reload (applied otherwise) does not change: each
 * named with the value still in force, so an operator is not left believing a new one applies.
 */
function readOnceAtStart(started: PortcullisConfig, next: PortcullisConfig): string[] {
  const out: string[] = [];
  const timeout = started.outpost.signout_propagation_timeout_ms;
  if (next.outpost.signout_propagation_timeout_ms !== timeout) out.push(`outpost.signout_propagation_timeout_ms (still ${timeout} ms)`);
  if (next.outpost.workers !== started.outpost.workers) out.push(`outpost.workers (still ${started.outpost.workers}: the primary forks its workers at start)`);
  if (next.outpost.name !== started.outpost.name) out.push(`outpost.name (metrics keep outpost_name="${started.outpost.name}")`);
  const lifetime = maxSessionSeconds(started);
  if (maxSessionSeconds(next) > lifetime) {
    out.push(`a longer session lifetime (the event stream's retention and the gateways' revocation memory stay sized for ${lifetime} s)`);
  }
  return out;
}

/** Keys a running process cannot change without a restart, when they differ. */
function restartOnlyChanges(a: PortcullisConfig, b: PortcullisConfig): string[] {
  const out: string[] = [];
  if (JSON.stringify(a.outpost.listen) !== JSON.stringify(b.outpost.listen)) out.push('outpost.listen');
  if (JSON.stringify(a.cluster) !== JSON.stringify(b.cluster)) out.push('cluster');
  return out;
}

/**
 * Sets `portcullis_tls_certificate_expiry_timestamp_seconds` to exactly the certificates served now:
 * a provider removed, or one whose certificate was taken out of its config, loses its series.
 */
function exportCertificateExpiry(metrics: Metrics, served: readonly ServedCertificate[] | null): void {
  // One synchronous step: a scrape never sees the gauge half-updated.
  metrics.tlsCertificateExpiry.reset();
  for (const c of served ?? []) metrics.tlsCertificateExpiry.set({ provider: c.provider, host: c.host }, Date.parse(c.not_after) / 1000);
}

/** Drops the metrics that mean nothing for this process (an embedded process has no NATS to be disconnected from). */
function exportOnlyApplicableMetrics(metrics: Metrics, config: PortcullisConfig, roles: ReadonlySet<Role>): void {
  const drop = (names: string[]) => {
    for (const n of names) metrics.registry.removeSingleMetric(n);
  };
  // Only a gateway with an HTTPS listener serves certificates (the listen addresses need a restart).
  if (!roles.has('gateway') || !config.outpost.listen.https) drop(['portcullis_tls_certificate_expiry_timestamp_seconds']);
  if (!config.cluster) {
    drop(['portcullis_nats_connected', 'portcullis_redis_connected', 'portcullis_projection_lag_events']);
    drop(['portcullis_session_cache_lookups_total', 'portcullis_session_cache_trusted', 'portcullis_session_cache_entries']);
    return;
  }
  if (!roles.has('gateway')) drop(['portcullis_session_cache_lookups_total', 'portcullis_session_cache_trusted', 'portcullis_session_cache_entries']);
  if (!roles.has('session')) drop(['portcullis_projection_lag_events']);
}

/** The same bus, with appended events counted by type. */
function countingAppends(bus: Bus, metrics: Metrics): Bus {
  return {
    ...bus,
    log: {
      append: async (event) => {
        const seq = await bus.log.append(event);
        metrics.eventsAppended.inc({ type: event.type });
        return seq;
      },
      lastSeq: () => bus.log.lastSeq(),
      subscribe: (from, handler, onError) => bus.log.subscribe(from, handler, onError),
    },
  };
}
