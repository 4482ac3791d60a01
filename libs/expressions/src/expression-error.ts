// The one error type of @portcullis/expressions: compile failures (bad config) and evaluation failures (at login).

/** Stable codes carried by {@link ExpressionError}. */
export const ExpressionErrorCode = {
  /** The expression does not parse, names an undeclared variable or function, or cannot be planned. */
  Compile: 'PORTCULLIS_EXPRESSION_COMPILE',
  /** The expression failed while running (missing key, type error, no matching overload, not a map). */
  Eval: 'PORTCULLIS_EXPRESSION_EVAL',
} as const;

/** One of the {@link ExpressionErrorCode} values. */
export type ExpressionErrorCode = (typeof ExpressionErrorCode)[keyof typeof ExpressionErrorCode];

/** A problem found in one scope mapping of a list (see `checkScopeMappings`). */
export interface ScopeMappingProblem {
  /** Position of the mapping in the configured list, from 0. */
  index: number;
  /** The mapping's configured name. */
  name: string;
  /** What is wrong, with line:column when known. */
  message: string;
}

/** Options of the {@link ExpressionError} constructor. */
export interface ExpressionErrorOptions {
  cause?: unknown;
  /** Name of the scope mapping the error belongs to, when there is one. */
  mapping?: string;
  /** Every failing mapping, when one error reports a whole list. */
  problems?: readonly ScopeMappingProblem[];
}

/**
 * Thrown for every expression failure. `statusCode` is 500 and `expose` false: a broken mapping is
 * an operator's configuration problem, never something to show the signing-in user.
 */
export class ExpressionError extends Error {
  readonly code: ExpressionErrorCode;
  readonly statusCode: number = 500;
  readonly expose: boolean = false;
  /** Name of the scope mapping that failed, if the failure belongs to one. */
  readonly mapping?: string;
  /** Every failing mapping, set when one error reports a whole list. */
  readonly problems?: readonly ScopeMappingProblem[];

  constructor(code: ExpressionErrorCode, message: string, options: ExpressionErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'ExpressionError';
    this.code = code;
    if (options.mapping !== undefined) this.mapping = options.mapping;
    if (options.problems !== undefined) this.problems = options.problems;
  }
}
