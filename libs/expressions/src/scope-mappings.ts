// Scope mappings: compile a configured list once, then at login run it in order and deep-merge the maps.
import { celType, isCelMap } from '@bufbuild/cel';
import { CelProgram, type CompiledExpression, compileProgram } from './compile-expression.ts';
import { deepMerge } from './deep-merge.ts';
import { ExpressionError, ExpressionErrorCode, type ScopeMappingProblem } from './expression-error.ts';
import type { MappingContext } from './mapping-context.ts';
import { bindMappingContext } from './to-cel-input.ts';

/** One configured scope mapping: a CEL expression that must evaluate to a map. */
export interface ScopeMapping {
  name: string;
  expression: string;
}

/** One mapping of a compiled list. */
export interface CompiledScopeMapping {
  /** Position in the configured list, from 0. */
  readonly index: number;
  readonly name: string;
  readonly expression: CompiledExpression;
}

/** A list of mappings compiled by {@link compileScopeMappings}, in evaluation order. */
export interface CompiledScopeMappings {
  readonly mappings: readonly CompiledScopeMapping[];
}

/** Compiles every mapping; returns the compiled list and one problem per failing mapping. */
function compileAll(mappings: readonly ScopeMapping[]): { compiled: CompiledScopeMapping[]; problems: ScopeMappingProblem[] } {
  const compiled: CompiledScopeMapping[] = [];
  const problems: ScopeMappingProblem[] = [];
  mappings.forEach((mapping, index) => {
    const name = typeof mapping?.name === 'string' ? mapping.name : '';
    if (typeof mapping?.name !== 'string' || mapping.name.trim() === '') {
      problems.push({ index, name, message: 'name must be a non-empty string' });
      return;
    }
    try {
      compiled.push({ index, name, expression: compileProgram(mapping.expression) });
    } catch (err) {
      if (!(err instanceof ExpressionError)) throw err;
      problems.push({ index, name, message: err.message });
    }
  });
  return { compiled, problems };
}

/**
 * Validates a list of mappings without throwing: one entry per failing mapping (index, name, what
 * is wrong with line:column). An empty array means {@link compileScopeMappings} will succeed.
 */
export function checkScopeMappings(mappings: readonly ScopeMapping[]): ScopeMappingProblem[] {
  return compileAll(mappings).problems;
}

/**
 * Compiles a list of mappings once per configuration. Throws one ExpressionError COMPILE whose
 * message lists every failing mapping and whose `problems` holds them (and `mapping` when only one failed).
 */
export function compileScopeMappings(mappings: readonly ScopeMapping[]): CompiledScopeMappings {
  const { compiled, problems } = compileAll(mappings);
  if (problems.length > 0) {
    const listed = problems.map((p) => `#${p.index} "${p.name}": ${p.message}`).join('; ');
    const only = problems.length === 1 ? problems[0]?.name : undefined;
    throw new ExpressionError(
      ExpressionErrorCode.Compile,
      `${problems.length} of ${mappings.length} scope mappings failed to compile: ${listed}`,
      only === undefined ? { problems } : { problems, mapping: only },
    );
  }
  return { mappings: compiled };
}

/**
 * Runs the mappings in list order, once per login. Each must return a map; the maps, converted to
 * plain JSON, are deep-merged with a later mapping winning over an earlier one. Throws
 * ExpressionError EVAL naming the mapping (and setting `mapping`) on the first failure: a login
 * must not proceed with half of its configured claims.
 */
export function evaluateScopeMappings(compiled: CompiledScopeMappings, ctx: MappingContext): Record<string, unknown> {
  // Converted once: every mapping of this login reads the same variables.
  const bindings = bindMappingContext(ctx);
  let merged: Record<string, unknown> = {};
  for (const { index, name, expression } of compiled.mappings) {
    if (!(expression instanceof CelProgram)) {
      throw new TypeError('evaluateScopeMappings needs a list built by compileScopeMappings');
    }
    const label = `scope mapping #${index} "${name}"`;
    try {
      const value = expression.evaluateBindings(bindings);
      if (!isCelMap(value)) {
        throw new ExpressionError(ExpressionErrorCode.Eval, `must return a map, but returned ${celType(value).name}`);
      }
      merged = deepMerge(merged, expression.convertResult(value) as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof ExpressionError)) throw err;
      throw new ExpressionError(ExpressionErrorCode.Eval, `${label}: ${err.message}`, { cause: err, mapping: name });
    }
  }
  return merged;
}
