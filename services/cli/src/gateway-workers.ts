// `outpost.workers` > 1: the primary forks the gateway workers (node:cluster), serves the metrics listener for them, relays signals and restarts one that crashes.
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { type PortcullisConfig, WORKER_INDEX_VAR } from '@portcullis/config';
import { type Logger, type Readiness, type ReadinessScope, SUMMED_METRICS_CONTENT_TYPE, type WorkerMetrics, metricsOfWorker, startMetricsServer, sumWorkerMetrics } from '@portcullis/telemetry';
import { parseListen } from '@portcullis/gateway';
import type { Role } from './roles.ts';
import { type RunningPortcullis, StartupError, listenFailure } from './start-portcullis.ts';


/** The one message a worker sends unasked: it listens. */
const STARTED = 'portcullis:worker-started';
/** The primary's questions (`{type: 'portcullis:ask', id, what, scope?}`), each answered `{type: 'portcullis:answer', id, answer}`. */
const ASK = 'portcullis:ask';
const ANSWER = 'portcullis:answer';

/** A worker that exits this many times within {@link CRASH_WINDOW_MS} makes the primary stop: a crash loop is not served around. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
/** Pause before a crashed worker is started again. */
const RESTART_DELAY_MS = 1000;
/** How long the primary waits for a worker's answer (its readiness, its metrics). */
const ASK_TIMEOUT_MS = 2000;

interface Ask {
  type: typeof ASK;
  id: number;
  what: 'ready' | 'metrics';
  scope?: ReadinessScope;
}
interface Answer {
  type: typeof ANSWER;
  id: number;
  answer?: Readiness | WorkerMetrics;
  error?: string;
}

/** This process's worker index when it is a gateway worker, else null. */
export function workerIndex(): number | null {
  const raw = process.env[WORKER_INDEX_VAR];
  return cluster.isWorker && raw !== undefined ? Number(raw) : null;
}

/**
 * Why `roles` cannot run as `workers` processes, or null when they can: workers run the gateway only
 * (the auth and session services consume the log once per process, not once per worker).
 */
export function workersProblem(workers: number, roles: ReadonlySet<Role>): StartupError | null {
  if (workers <= 1 || (roles.size === 1 && roles.has('gateway'))) return null;
  return new StartupError(
    `outpost.workers: ${workers} runs gateway workers only — start this process with --services gateway and run auth and session in their own processes, or set outpost.workers: 1`,
  );
}

/**
 * In a worker, once its gateway listens: answers the primary's questions (its readiness, its
 * metrics) and tells it the worker started.
 */
export function serveAsWorker(running: RunningPortcullis): void {
  process.on('message', (message: unknown) => {
    const ask = message as Partial<Ask> | null;
    if (ask?.type !== ASK || typeof ask.id !== 'number') return;
    const id = ask.id;
    const work: Promise<Readiness | WorkerMetrics> =
      ask.what === 'metrics' ? metricsOfWorker(running.metrics.registry) : running.readiness(ask.scope === 'listeners' ? 'listeners' : 'all');
    work.then(
      (answer) => process.send?.({ type: ANSWER, id, answer } satisfies Answer),
      (err: Error) => process.send?.({ type: ANSWER, id, error: err.message } satisfies Answer),
    );
  });
  process.send?.({ type: STARTED });
}

let lastAskId = 0;

/** Asks a worker; rejects when it cannot be asked, answers with an error, or not within {@link ASK_TIMEOUT_MS}. */
function askWorker<T extends Readiness | WorkerMetrics>(worker: Worker, what: Ask['what'], scope?: ReadinessScope): Promise<T> {
  return new Promise((resolve, reject) => {
    if (!worker.isConnected()) {
      reject(new Error('its IPC channel is closed'));
      return;
    }
    const id = ++lastAskId;
    const timer = setTimeout(() => {
      worker.off('message', onMessage);
      reject(new Error(`no answer within ${ASK_TIMEOUT_MS} ms`));
    }, ASK_TIMEOUT_MS);
    const onMessage = (message: unknown) => {
      const a = message as Partial<Answer> | null;
      if (a?.type !== ANSWER || a.id !== id) return;
      clearTimeout(timer);
      worker.off('message', onMessage);
      if (a.error !== undefined || a.answer === undefined) reject(new Error(a.error ?? 'an empty answer'));
      else resolve(a.answer as T);
    };
    worker.on('message', onMessage);
    worker.send({ type: ASK, id, what, ...(scope ? { scope } : {}) } satisfies Ask);
  });
}

/**
 * The primary of `config.outpost.workers` gateway workers: binds the metrics listener (the workers'
 * metrics aggregated, `/ready` ready when every worker is), forks the workers (each runs this same
 * command), and resolves with the exit code once they are all gone: 0 after SIGTERM/SIGINT, the first
 * failing worker's code when one fails to start (it printed why), 1 when a worker keeps crashing.
 * SIGHUP is passed on to every worker (each reloads its config and certificates).
 */
export async function runGatewayWorkers(opts: { config: PortcullisConfig; logger: Logger }): Promise<number> {
  const { config, logger } = opts;
  const count = config.outpost.workers;
  const slots: Array<{ worker: Worker | null; started: boolean }> = Array.from({ length: count }, () => ({ worker: null, started: false }));
  const crashes: number[] = [];
  let stopping = false;
  let allStarted = false;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const readiness = async (scope: ReadinessScope): Promise<Readiness> => {
    if (stopping) return { ready: false, checks: { process: 'stopping' } };
    const answers = await Promise.all(
      slots.map(
        (s): Promise<Readiness> =>
          s.worker && s.started
            ? askWorker<Readiness>(s.worker, 'ready', scope).catch((err: Error) => ({ ready: false, checks: { error: `a worker did not answer: ${err.message}` } }))
            : Promise.resolve({ ready: false, checks: { gateway: s.worker ? 'starting' : 'restarting' } }),
      ),
    );
    const ready = answers.filter((a) => a.ready).length;
    // The states of the first worker not ready (or the first worker's): NATS, Redis, session cache.
    const shown = answers.find((a) => !a.ready) ?? answers[0]!;
    return { ready: ready === count, checks: { workers: `${ready}/${count} ready`, ...shown.checks } };
  };

  let metricsServer: Server | undefined;
  if (config.outpost.listen.metrics) {
    try {
      // The workers listening now; one starting or restarting adds nothing until it listens (its series are new then).
      const metrics = async (): Promise<string> =>
        sumWorkerMetrics(
          await Promise.all(
            slots.flatMap((s, i) =>
              s.worker && s.started
                ? [
                    askWorker<WorkerMetrics>(s.worker, 'metrics').catch((err: Error) => {
                      throw new Error(`gateway worker ${i} gave no metrics: ${err.message}`);
                    }),
                  ]
                : [],
            ),
          ),
        );
      metricsServer = await startMetricsServer({
        ...parseListen(config.outpost.listen.metrics),
        registry: { metrics, contentType: SUMMED_METRICS_CONTENT_TYPE },
        readiness,
      });
    } catch (err) {
      throw listenFailure(err, config) ?? err;
    }
  }

  const stopAll = (signal: NodeJS.Signals, onlyStarted = false): void => {
    for (const s of slots) if (s.worker && !s.worker.isDead() && (s.started || !onlyStarted)) s.worker.process.kill(signal);
  };
  let exitCode = 0;
  let finished = false;
  const whenAllGone = (): void => {
    if (finished || slots.some((s) => s.worker && !s.worker.isDead())) return;
    finished = true;
    const close = () => finish(exitCode);
    if (metricsServer) metricsServer.close(close);
    else close();
  };

  const fork = (index: number): void => {
    const slot = slots[index]!;
    const worker = cluster.fork({ [WORKER_INDEX_VAR]: String(index) });
    slot.worker = worker;
    slot.started = false;
    // A send to a worker that just died fails on its own; its exit is handled below.
    worker.on('error', (err: Error) => logger.debug({ worker: index, err: err.message }, 'gateway worker IPC error'));
    worker.on('message', (message: unknown) => {
      if ((message as { type?: unknown } | null)?.type !== STARTED) return;
      slot.started = true;
      if (!allStarted && slots.every((s) => s.started)) {
        allStarted = true;
        logger.info({ workers: count, pids: slots.map((s) => s.worker?.process.pid) }, 'gateway workers started');
      } else if (allStarted) {
        logger.info({ worker: index, pid: worker.process.pid }, 'gateway worker started again');
      }
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker === worker) slot.started = false;
      if (stopping) {
        if (code !== 0) exitCode = 1;
        whenAllGone();
        return;
      }
      if (!allStarted) {
        // A worker that cannot start (a port in use, NATS unreachable) printed why; the others stop too.
        logger.fatal({ worker: index, code, signal }, 'a gateway worker failed to start: stopping the others');
        stopping = true;
        exitCode = code || 1;
        stopAll('SIGTERM');
        whenAllGone();
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES) {
        logger.fatal({ worker: index, code, signal, crashes: crashes.length, window_seconds: CRASH_WINDOW_MS / 1000 }, 'gateway workers keep exiting: stopping all of them');
        stopping = true;
        exitCode = 1;
        stopAll('SIGTERM');
        whenAllGone();
        return;
      }
      logger.error({ worker: index, pid: worker.process.pid, code, signal }, `gateway worker exited: starting it again in ${RESTART_DELAY_MS / 1000} s`);
      slot.worker = null;
      setTimeout(() => {
        if (!stopping) fork(index);
      }, RESTART_DELAY_MS);
    });
  };

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.info({ signal }, 'already shutting down: the workers finish their in-flight requests first (at most outpost.shutdown_grace_seconds)');
      return;
    }
    stopping = true;
    logger.info({ signal, workers: count }, 'shutting down the gateway workers');
    stopAll('SIGTERM');
    whenAllGone();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    // A worker still starting reads the files as they are now; before its own handler is set, SIGHUP would end it.
    logger.info({ workers: count }, 'SIGHUP: passed on to every gateway worker that has started');
    stopAll('SIGHUP', true);
  });

  logger.info({ workers: count, listen: config.outpost.listen }, 'starting gateway workers');
  for (let i = 0; i < count; i++) fork(i);
  return done;
}
