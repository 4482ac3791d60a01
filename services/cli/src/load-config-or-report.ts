// Loads and validates the configuration for a command, printing every problem (and warning) to stderr.
import { type ConfigProblem, type PortcullisConfig, formatProblem, loadConfig } from '@portcullis/config';

/**
 * Loads `file` (or PORTCULLIS_CONFIG) with env overrides; prints every problem and returns null when
 * invalid. Warnings are printed too, or handed to `onWarnings` (`run` logs them once it has a logger).
 */
export function loadConfigOrReport(file: string | undefined, onWarnings?: (warnings: ConfigProblem[]) => void): PortcullisConfig | null {
  const result = loadConfig({ file, env: process.env });
  if (onWarnings) onWarnings(result.warnings);
  else for (const w of result.warnings) process.stderr.write(`warning: ${formatProblem(w)}\n`);
  if (!result.ok) {
    process.stderr.write(`${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} in the configuration:\n`);
    for (const p of result.problems) process.stderr.write(`${formatProblem(p)}\n`);
    return null;
  }
  return result.config;
}
