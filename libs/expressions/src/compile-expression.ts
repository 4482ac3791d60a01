// Compiles one CEL expression against the mapping environment and evaluates it with positions in every error.
import { type CelResult, type CelValue, isCelError, parse, plan } from '@bufbuild/cel';
import { createMappingEnvironment, DECLARED_VARIABLES } from './cel-environment.ts';
import type { ParsedExpression } from './cel-syntax.ts';
import { ExpressionError, ExpressionErrorCode } from './expression-error.ts';
import { findUndeclaredReferences } from './find-undeclared-references.ts';
import type { MappingContext } from './mapping-context.ts';
import { describeExprPosition, describeOffset } from './source-position.ts';
import { bindMappingContext, type MappingBindings } from './to-cel-input.ts';
import { type JsonValue, toPlainJson } from './to-plain-json.ts';

/** An expression that parsed, names only known things, and is planned once for any number of runs. */
export interface CompiledExpression {
  /** The CEL source it was compiled from. */
  readonly source: string;
  /**
   * Runs the expression with `request`, `claims` and `provider` bound from `ctx` and returns the
   * result as plain JSON. Throws ExpressionError EVAL (with line:column when known) on failure.
   */
  evaluate(ctx: MappingContext): JsonValue;
}

// One environment for the process: the library caches its planner per environment object.
const environment = createMappingEnvironment();

/** The concrete compiled form; scope mappings reach `evaluateBindings` to convert the context only once. */
export class CelProgram implements CompiledExpression {
  readonly source: string;
  readonly #parsed: ParsedExpression;
  readonly #run: (bindings: MappingBindings) => CelResult;

  constructor(source: string, parsed: ParsedExpression, run: (bindings: MappingBindings) => CelResult) {
    this.source = source;
    this.#parsed = parsed;
    this.#run = run;
  }

  evaluate(ctx: MappingContext): JsonValue {
    return this.convertResult(this.evaluateBindings(bindMappingContext(ctx)));
  }

  /** Runs with already converted variables and returns the raw CEL value. */
  evaluateBindings(bindings: MappingBindings): CelValue {
    let result: CelResult;
    try {
      result = this.#run(bindings);
    } catch (err) {
      // The library promises to return errors, not throw them; keep a clear error if it ever does.
      throw new ExpressionError(ExpressionErrorCode.Eval, `evaluation failed: ${messageOf(err)}`, { cause: err });
    }
    if (isCelError(result)) {
      const at = describeExprPosition(this.source, this.#parsed.sourceInfo, result.exprId);
      throw new ExpressionError(ExpressionErrorCode.Eval, `evaluation failed${at ? ` at ${at}` : ''}: ${result.message}`, {
        cause: result,
      });
    }
    return result;
  }

  /** Converts a raw result to JSON, as an EVAL error when it cannot be. */
  convertResult(value: CelValue): JsonValue {
    try {
      return toPlainJson(value);
    } catch (err) {
      throw new ExpressionError(ExpressionErrorCode.Eval, `result cannot be converted to JSON: ${messageOf(err)}`, { cause: err });
    }
  }
}

/**
 * Parses, checks and plans a CEL expression. Declared variables: `request`, `claims`, `provider`.
 * Throws ExpressionError COMPILE naming the problem and its line:column: a syntax error, every
 * undeclared variable, unknown function or unknown message type, or a planning failure.
 */
export function compileExpression(source: string): CompiledExpression {
  return compileProgram(source);
}

/** {@link compileExpression} returning the concrete class, for the scope-mapping list. */
export function compileProgram(source: string): CelProgram {
  if (typeof source !== 'string') {
    throw new ExpressionError(ExpressionErrorCode.Compile, `expression must be a string, got ${source === null ? 'null' : typeof source}`);
  }
  let parsed: ParsedExpression;
  try {
    parsed = parse(source);
  } catch (err) {
    throw new ExpressionError(ExpressionErrorCode.Compile, `syntax error${describeParseError(source, err)}`, { cause: err });
  }

  const positions = parsed.sourceInfo?.positions ?? {};
  const offsetOf = (id: bigint): number => positions[String(id)] ?? 0;
  const undeclared = findUndeclaredReferences(environment, parsed.expr).sort((a, b) => offsetOf(a.exprId) - offsetOf(b.exprId));
  if (undeclared.length > 0) {
    const described = undeclared.map((ref) => {
      const at = describeExprPosition(source, parsed.sourceInfo, ref.exprId);
      // The parser leaves a misused `has` macro as a plain call; say what it needs instead.
      if (ref.kind === 'function' && ref.name === 'has') return `has() needs a field selection such as has(claims.email)${at ? ` at ${at}` : ''}`;
      const what = ref.kind === 'variable' ? 'undeclared reference to' : `unknown ${ref.kind}`;
      return `${what} '${ref.name}'${at ? ` at ${at}` : ''}`;
    });
    const hint = undeclared.some((ref) => ref.kind === 'variable') ? ` (declared variables: ${Object.keys(DECLARED_VARIABLES).join(', ')})` : '';
    throw new ExpressionError(ExpressionErrorCode.Compile, described.join('; ') + hint);
  }

  try {
    const run = plan(environment, parsed);
    return new CelProgram(source, parsed, run);
  } catch (err) {
    throw new ExpressionError(ExpressionErrorCode.Compile, `invalid expression: ${messageOf(err)}`, { cause: err });
  }
}

/** " at line:column: what" from the library's parse error (its message embeds a `<input>:` prefix we replace). */
function describeParseError(source: string, err: unknown): string {
  const e = err as { rawMessage?: unknown; location?: { start?: { offset?: unknown } } };
  const offset = e?.location?.start?.offset;
  if (typeof e?.rawMessage === 'string' && typeof offset === 'number') {
    return ` at ${describeOffset(source, offset)}: ${e.rawMessage}`;
  }
  return `: ${messageOf(err)}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
