// The cluster-wide config document in a NATS KV bucket: `portcullis config push`, and the watcher
// every `run` process starts so all replicas switch together.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { type NatsBus, createNatsBus } from '@portcullis/bus';
import { type ClusterConfig, type PortcullisConfig, formatProblem, loadConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/telemetry';
import { loadConfigOrReport } from './load-config-or-report.ts';
import { logConfigApplied } from './log-config-applied.ts';
import type { ConfigReload } from './start-portcullis.ts';

/** The key of the shared document in `cluster.nats.config_bucket`. */
export const SHARED_CONFIG_KEY = 'portcullis.yaml';

export const CONFIG_USAGE = `  portcullis config push FILE [--config LOCAL]`;

/**
 * The shared document decides everything but what is local to a process: its listen addresses and
 * how it reaches the cluster stay those of its own file (and env).
 */
export function mergeShared(local: PortcullisConfig, shared: PortcullisConfig): PortcullisConfig {
  return { ...shared, outpost: { ...shared.outpost, listen: local.outpost.listen }, cluster: local.cluster };
}

/**
 * The config a `run` process starts with when the cluster shares one: the document in the bucket,
 * merged into the local file's (listen addresses and cluster access stay local), read BEFORE any
 * service starts. Starting on the file and switching a moment later is not harmless: the session
 * upkeep's first reconcile would judge every live session by the file's providers and cookie
 * secrets, ending the sessions of a provider only the document has. No document yet: the file.
 * An invalid document: the file, logged (as the watcher does). NATS unreachable: throws, so the
 * process does not start on a config the cluster may have left behind.
 */
export async function sharedConfigAtStart(local: PortcullisConfig, bucket: string, logger: Logger): Promise<PortcullisConfig> {
  if (!local.cluster) return local;
  const bus = await openConfigBus(local.cluster.nats, 'portcullis-config-read', 10_000);
  let text: string | undefined;
  try {
    text = await bus.readDocument(bucket, SHARED_CONFIG_KEY);
  } catch (err) {
    throw new Error(`cannot read the shared config from NATS KV bucket ${bucket}: ${(err as Error).message}`);
  } finally {
    await bus.close().catch(() => {});
  }
  if (text === undefined) {
    logger.info({ bucket }, 'no shared config in the bucket yet: starting on the file config');
    return local;
  }
  const shared = validShared(text, logger, bucket, 'starting on the file config');
  if (!shared) return local;
  logger.info({ bucket, providers: shared.providers.map((p) => p.name) }, 'starting on the shared config');
  return mergeShared(local, shared);
}

/** The document validated with this process's env overrides (its warnings logged), or null after logging every problem. */
function validShared(text: string, logger: Logger, bucket: string, instead: string): PortcullisConfig | null {
  const result = loadConfig({ text, env: process.env });
  for (const w of result.warnings) logger.warn({ bucket, problem: formatProblem(w) }, 'config warning');
  if (result.ok) return result.config;
  logger.error({ bucket, problems: result.problems.map(formatProblem) }, `shared config rejected; ${instead}`);
  return null;
}

/**
 * A short-lived connection for reading or writing the config document (`purpose` names it in NATS).
 * It leaves the event stream alone: the local file's session lifetimes may be shorter than the
 * document's, and setting the stream's max_age from them would purge events of live sessions.
 */
function openConfigBus(nats: ClusterConfig['nats'], purpose: string, startTimeoutMs: number): Promise<NatsBus> {
  return createNatsBus({ nats, name: `${purpose}@${hostname()}`, streamMaxAgeSeconds: null, startTimeoutMs });
}

/**
 * Watches the shared document; each new value is validated (with this process's env overrides) and
 * applied whole through `apply`, then logged with the certificates the HTTPS listener serves now (as a
 * file-config reload is), or logged with every problem and ignored.
 */
export async function watchSharedConfig(opts: {
  bus: NatsBus;
  bucket: string;
  local: PortcullisConfig;
  logger: Logger;
  apply: (config: PortcullisConfig) => Promise<ConfigReload>;
}): Promise<() => void> {
  let chain: Promise<void> = Promise.resolve();
  const watcher = await opts.bus.watchDocument(opts.bucket, SHARED_CONFIG_KEY, (text) => {
    chain = chain.then(async () => {
      const shared = validShared(text, opts.logger, opts.bucket, 'the running config is kept');
      if (!shared) return;
      try {
        const applied = await opts.apply(mergeShared(opts.local, shared));
        logConfigApplied(opts.logger, 'shared config applied', { bucket: opts.bucket, providers: shared.providers.map((p) => p.name) }, applied);
      } catch (err) {
        opts.logger.error({ bucket: opts.bucket, err: (err as Error).message }, 'shared config rejected; the running config is kept');
      }
    });
  });
  return () => watcher.stop();
}

/** `portcullis config push FILE`: validates FILE and writes it to the bucket; exit 0, 1 (cluster unreachable) or 2. */
export async function runConfigCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: { config: { type: 'string' } } }>>;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string' } } });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage:\n${CONFIG_USAGE}\n`);
    return 2;
  }
  const file = parsed.positionals[0];
  if (sub !== 'push' || !file) {
    process.stderr.write(`usage:\n${CONFIG_USAGE}\n`);
    return 2;
  }
  const local = loadConfigOrReport(parsed.values.config);
  if (!local) return 2;
  const bucket = local.cluster?.nats.config_bucket;
  if (!local.cluster || !bucket) {
    process.stderr.write('config push needs cluster.nats.config_bucket in the local config (the bucket every process watches)\n');
    return 2;
  }
  // The document is checked on its own, without this shell's PORTCULLIS_* overrides.
  const shared = loadConfig({ file, env: {} });
  if (!shared.ok) {
    process.stderr.write(`${shared.problems.length} problem${shared.problems.length === 1 ? '' : 's'} in ${file}; nothing was pushed:\n`);
    for (const p of shared.problems) process.stderr.write(`${formatProblem(p)}\n`);
    return 2;
  }
  let bus: NatsBus;
  try {
    bus = await openConfigBus(local.cluster.nats, 'portcullis-admin-config', 5_000);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  try {
    const revision = await bus.putDocument(bucket, SHARED_CONFIG_KEY, readFileSync(file, 'utf8'));
    process.stdout.write(`pushed ${file} to NATS KV ${bucket}/${SHARED_CONFIG_KEY} (revision ${revision}); every process applies it now\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`could not write to NATS KV bucket ${bucket}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await bus.close().catch(() => {});
  }
}
