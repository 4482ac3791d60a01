// The error thrown by callers that want an exception instead of a list of problems.
import { type ConfigProblem, formatProblem } from './config-problem.ts';

/** The configuration is invalid; `problems` lists every problem found, in order. */
export class ConfigError extends Error {
  /** Stable code for this failure. */
  readonly code = 'PORTCULLIS_CONFIG_INVALID';
  /** Not an HTTP failure; 500 if it ever reaches a response. */
  readonly statusCode = 500;
  /** The message names file paths and keys, which clients must not see. */
  readonly expose = false;
  /** Every problem, in the order found. */
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], opts: { cause?: unknown } = {}) {
    const lines = problems.map((p) => `  ${formatProblem(p)}`);
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, {
      cause: opts.cause,
    });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
