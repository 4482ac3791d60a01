// Loads the configuration: file or text → YAML → env overrides → schema → semantic checks, collecting every problem.
import { applyEnvOverrides } from './apply-env-overrides.ts';
import { checkCluster } from './check-cluster.ts';
import { checkOutpost } from './check-outpost.ts';
import { checkProviders } from './check-providers.ts';
import type { ConfigProblem } from './config-problem.ts';
import { parseConfigText } from './parse-config-text.ts';
import { readWithSchema } from './read-with-schema.ts';
import { CONFIG_SCHEMA } from './schema.ts';
import type { Loose } from './schema-kinds.ts';
import type { PortcullisConfig } from './types.ts';

/** Where the configuration comes from. */
export interface LoadConfigOptions {
  /** Config file (YAML 1.2 or JSON, whatever the extension); defaults to `env.PORTCULLIS_CONFIG`. */
  file?: string;
  /** Config content; when given no file is read, and `file` (if any) only names the source in problems. */
  text?: string;
  /** Environment for `PORTCULLIS_*` overrides and `PORTCULLIS_CONFIG`; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
}

/** Either a valid config or every problem found; warnings in both cases. */
export type LoadConfigResult =
  | { ok: true; config: PortcullisConfig; warnings: ConfigProblem[] }
  | { ok: false; problems: ConfigProblem[]; warnings: ConfigProblem[] };

/**
 * Loads and validates the configuration. Never throws for a user error: an unreadable file, bad
 * YAML, unknown keys, wrong types, bad env vars and semantic mistakes all come back in `problems`,
 * all of them at once. With neither file nor text it starts from `{}` (and reports the missing providers).
 */
export function loadConfig(opts: LoadConfigOptions = {}): LoadConfigResult {
  const env = opts.env ?? process.env;
  const file = opts.file ?? (opts.text === undefined && env.PORTCULLIS_CONFIG ? env.PORTCULLIS_CONFIG : undefined);
  const parsed = parseConfigText({ file, text: opts.text });
  const problems = [...parsed.problems];
  const warnings = [...parsed.warnings];
  // Env vars are checked even when the file is broken, so one run lists both kinds of mistake.
  const raw = parsed.raw ?? {};
  const overrides = applyEnvOverrides(raw, env, CONFIG_SCHEMA);
  problems.push(...overrides.problems);
  if (parsed.raw === undefined) return { ok: false, problems, warnings };

  const found: ConfigProblem[] = [];
  const config = readWithSchema(raw, CONFIG_SCHEMA, found) as Loose<PortcullisConfig>;
  if (config) {
    checkOutpost(config.outpost, found);
    checkCluster(config.cluster, { problems: found, warnings });
    checkWorkers(config, found);
    checkProviders(config.providers, { problems: found, warnings });
  }
  problems.push(...found.map((p) => nameEnvSource(p, overrides.origins)));
  if (problems.length > 0) return { ok: false, problems, warnings };
  // No problem means every field was read and checked, so nothing in the tree is undefined.
  return { ok: true, config: config as PortcullisConfig, warnings };
}

/** Gateway workers share nothing but the listeners: they need the cluster's bus and store. */
function checkWorkers(config: Loose<PortcullisConfig>, problems: ConfigProblem[]): void {
  const workers = config?.outpost?.workers;
  if (typeof workers !== 'number' || workers <= 1 || config?.cluster) return;
  problems.push({
    path: 'outpost.workers',
    reason: `${workers} gateway workers need cluster: (in embedded mode one process holds the event log and the sessions in memory, which workers cannot share)`,
    fix: 'set outpost.workers to 1, or configure cluster: with NATS and Redis',
  });
}

/** Appends "(set by env X)" to a problem about a value an env var supplied, so the operator looks in the right place. */
function nameEnvSource(problem: ConfigProblem, origins: Map<string, string>): ConfigProblem {
  for (const [path, name] of origins) {
    const rest = problem.path.slice(path.length);
    if (problem.path.startsWith(path) && (rest === '' || /^[.[ ]/.test(rest))) {
      return { ...problem, reason: `${problem.reason} (set by env ${name})` };
    }
  }
  return problem;
}
