// Entry of the `portcullis` command: `run`, `check-config`, `sessions`; exit codes 0 ok, 1 runtime failure, 2 bad usage or config.
import { parseArgs } from 'node:util';
import type { NatsBus } from '@portcullis/bus';
import { type ConfigProblem, type PortcullisConfig, formatProblem } from '@portcullis/config';
import { createLogger } from '@portcullis/telemetry';
import { tracing } from '@portcullis/telemetry/preload';
import { loadConfigOrReport } from './load-config-or-report.ts';
import { reloadCertificatesOnSighup } from './certificate-reloader.ts';
import { watchCertificateFiles } from './certificate-watcher.ts';
import { watchConfig } from './config-reloader.ts';
import { runGatewayWorkers, serveAsWorker, workerIndex, workersProblem } from './gateway-workers.ts';
import { parseRoles, serviceName } from './roles.ts';
import { SESSIONS_USAGE, runSessionsCommand } from './sessions-command.ts';
import { CONFIG_USAGE, runConfigCommand, sharedConfigAtStart, watchSharedConfig } from './shared-config.ts';
import { StartupError, startPortcullis } from './start-portcullis.ts';
import { VERSION } from './version.ts';

const USAGE = `portcullis ${VERSION} — identity-aware proxy compatible with authentik's proxy outpost

Usage:
  portcullis run [--config FILE] [--services all|gateway,auth,session]
  portcullis check-config FILE
${SESSIONS_USAGE}
${CONFIG_USAGE}
  portcullis --version

sessions (cluster: only): list the live sessions (--json: one JSON array on stdout); revoke a user's
or one session's sessions and wait until every live gateway holds it (exit 1 past the propagation
bound); rebuild the Redis projection from the JetStream log, safely while gateways serve.

The config file may also be named by PORTCULLIS_CONFIG; any key can be overridden with
PORTCULLIS_<PATH> env vars (levels joined by __), e.g. PORTCULLIS_OUTPOST__LISTEN__HTTP=127.0.0.1:9101.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (command === 'check-config') {
    let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: { config: { type: 'string' } } }>>;
    try {
      parsed = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string' } } });
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    const files = [...new Set([...parsed.positionals, ...(parsed.values.config === undefined ? [] : [parsed.values.config])])];
    if (files.length > 1) {
      // Checking only the first would print "configuration ok" for files never looked at.
      process.stderr.write(`check-config takes one FILE, got ${files.length}: ${files.join(', ')} — run it once per file\n`);
      return 2;
    }
    const file = files[0];
    if (!loadConfigOrReport(file)) return 2;
    process.stdout.write(`configuration ok${file ? `: ${file}` : ''}\n`);
    return 0;
  }
  if (command === 'sessions') return runSessionsCommand(rest);
  if (command === 'config') return runConfigCommand(rest);
  if (command === 'run') {
    let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: { config: { type: 'string' }; services: { type: 'string' } } }>>;
    try {
      parsed = parseArgs({ args: rest, options: { config: { type: 'string' }, services: { type: 'string' } } });
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    const roles = parseRoles(parsed.values.services);
    if ('error' in roles) {
      process.stderr.write(`${roles.error}\n`);
      return 2;
    }
    // Warnings (a certificate about to expire, ...) go to the log, where log shipping and alerting see them.
    let warnings: ConfigProblem[] = [];
    const config = loadConfigOrReport(parsed.values.config, (found) => {
      warnings = found;
    });
    if (!config) {
      for (const w of warnings) process.stderr.write(`warning: ${formatProblem(w)}\n`);
      return 2;
    }
    const worker = workerIndex();
    if (worker === null && config.outpost.workers > 1) {
      // The primary of gateway workers: it forks them (each runs this command as a worker) and serves the metrics listener.
      const problem = workersProblem(config.outpost.workers, roles.roles);
      if (problem) {
        process.stderr.write(`${problem.message}\n`);
        return 2;
      }
      const primaryLogger = createLogger({ level: config.log_level, service: serviceName(roles.roles) });
      for (const w of warnings) primaryLogger.warn({ problem: formatProblem(w) }, 'config warning');
      try {
        return await runGatewayWorkers({ config, logger: primaryLogger });
      } catch (err) {
        primaryLogger.fatal({ err }, 'startup failed');
        process.stderr.write(`startup failed: ${(err as Error).message}\n`);
        return 1;
      }
    }
    const baseLogger = createLogger({ level: config.log_level, service: serviceName(roles.roles) });
    const logger = worker === null ? baseLogger : baseLogger.child({ worker });
    // SIGHUP's default action ends the process: a certificate rotation's deploy hook firing while it
    // starts (waiting for NATS, Redis or the shared config) must not kill it. Replayed once started.
    let hupDuringStart = false;
    const onEarlyHup = (): void => {
      hupDuringStart = true;
      logger.info({ signal: 'SIGHUP' }, 'SIGHUP during start-up: it is applied once started');
    };
    process.on('SIGHUP', onEarlyHup);
    for (const w of warnings) logger.warn({ problem: formatProblem(w) }, 'config warning');
    // With a shared config bucket the cluster-wide document drives the config, from the start on.
    const bucket = config.cluster?.nats.config_bucket;
    let startConfig = config;
    if (bucket) {
      try {
        startConfig = await sharedConfigAtStart(config, bucket, logger);
      } catch (err) {
        logger.fatal({ err, bucket }, 'startup failed: the shared config cannot be read');
        process.stderr.write(`startup failed: ${(err as Error).message}\n`);
        return 1;
      }
    }
    let running: Awaited<ReturnType<typeof startPortcullis>>;
    try {
      running = await startPortcullis({ config: startConfig, roles: roles.roles, logger, metricsListener: worker === null });
    } catch (err) {
      if (err instanceof StartupError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      logger.fatal({ err }, 'startup failed');
      process.stderr.write(`startup failed: ${(err as Error).message}\n`);
      return 1;
    }
    logger.info(
      { services: [...roles.roles], listen: config.outpost.listen, providers: startConfig.providers.map((p) => `${p.name} (${p.mode}) ${p.external_host}`) },
      'portcullis started',
    );
    // Renewed certificate files are served without a SIGHUP; the interval follows the config in force.
    const certificates = watchCertificateFiles({ running, logger });
    const apply = (next: PortcullisConfig) => running.reload(next).finally(() => certificates.rearm());
    // With a shared config bucket the cluster-wide document drives reloads; otherwise the file does.
    let stopWatching: () => void;
    if (bucket && 'watchDocument' in running.bus) {
      // The config comes from NATS KV; SIGHUP (a certificate rotation's deploy hook) re-reads the certificate files it names.
      const stopHup = reloadCertificatesOnSighup({ running, logger, bucket });
      let stopShared: () => void = () => {};
      try {
        stopShared = await watchSharedConfig({
          bus: running.bus as NatsBus,
          bucket,
          local: config,
          logger,
          apply,
        });
        logger.info({ bucket }, 'following the shared config in NATS KV (changes to the config file are not watched)');
      } catch (err) {
        logger.error({ bucket, err: (err as Error).message }, 'cannot watch the shared config bucket; running on the file config');
      }
      stopWatching = () => {
        stopHup();
        stopShared();
        certificates.stop();
      };
    } else {
      const stopFile = watchConfig({
        file: parsed.values.config ?? process.env.PORTCULLIS_CONFIG,
        logger,
        apply,
      });
      stopWatching = () => {
        stopFile();
        certificates.stop();
      };
    }
    process.off('SIGHUP', onEarlyHup);
    if (hupDuringStart) process.emit('SIGHUP', 'SIGHUP');
    if (worker !== null) serveAsWorker(running);
    return await new Promise<number>((resolve) => {
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) {
          // A repeated signal (npm forwarding the one the terminal or systemd also sent, Ctrl-C again) must
          // not end the process: with no listener left, its default action would cut every in-flight request.
          logger.info({ signal }, 'already shutting down: in-flight requests finish first (at most outpost.shutdown_grace_seconds)');
          return;
        }
        stopping = true;
        stopWatching();
        logger.info({ signal }, 'shutting down');
        running
          .stop()
          .then(() => tracing.shutdown().catch(() => {}))
          .then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            resolve(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
  }
  process.stderr.write(command ? `unknown command "${command}"\n\n${USAGE}` : USAGE);
  return command ? 2 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Flush stdout (pino's async destination) before exiting.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
