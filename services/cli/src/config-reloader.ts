// Reloads the config file on SIGHUP and when it changes: validate first, apply whole or not at all.
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { type PortcullisConfig, formatProblem, loadConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/telemetry';
import { logConfigApplied } from './log-config-applied.ts';
import type { ConfigReload } from './start-portcullis.ts';

/** Quiet period after a file event before reloading (editors write files in several steps). */
const DEBOUNCE_MS = 300;

/**
 * Watches `file` (and SIGHUP) and calls `apply` with each new valid config. An invalid file, or one
 * `apply` refuses, is logged with every problem and the running config is kept; an applied one is
 * logged with the certificates the HTTPS listener serves now. Returns a stop function.
 */
export function watchConfig(opts: {
  file: string | undefined;
  logger: Logger;
  apply: (config: PortcullisConfig) => Promise<ConfigReload>;
}): () => void {
  const { file, logger, apply } = opts;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let lastText: string | undefined;

  const reload = (trigger: string): void => {
    // Reloads run one after another, never interleaved.
    running = running.then(async () => {
      const result = loadConfig({ file, env: process.env });
      for (const w of result.warnings) logger.warn({ problem: formatProblem(w) }, 'config warning');
      if (!result.ok) {
        logger.error(
          { trigger, problems: result.problems.map(formatProblem) },
          `config reload rejected (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}); the running config is kept`,
        );
        return;
      }
      const text = JSON.stringify(result.config);
      if (text === lastText && trigger !== 'SIGHUP') return;
      try {
        const applied = await apply(result.config);
        lastText = text;
        // A rotation with a file config is confirmed here: the certificates served, as the shared config's lines name them.
        logConfigApplied(logger, 'config reloaded', { trigger, providers: result.config.providers.map((p) => p.name) }, applied);
      } catch (err) {
        logger.error({ trigger, err: (err as Error).message }, 'config reload rejected; the running config is kept');
      }
    });
  };

  const onHup = () => reload('SIGHUP');
  process.on('SIGHUP', onHup);
  let watcher: FSWatcher | undefined;
  if (file) {
    try {
      // Watch the directory: editors and ConfigMap updates replace the file rather than write it.
      watcher = watch(dirname(file), (_event, name) => {
        if (name && name !== basename(file) && !name.startsWith('..')) return;
        clearTimeout(timer);
        timer = setTimeout(() => reload('file changed'), DEBOUNCE_MS);
      });
    } catch (err) {
      logger.warn({ file, err: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
    }
  }
  return () => {
    process.off('SIGHUP', onHup);
    clearTimeout(timer);
    watcher?.close();
  };
}
