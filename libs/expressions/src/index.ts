// Public entry of @portcullis/expressions: CEL scope mappings compiled per config and evaluated once at login.
export { ExpressionError, ExpressionErrorCode, type ExpressionErrorOptions, type ScopeMappingProblem } from './expression-error.ts';
export { compileExpression, type CompiledExpression } from './compile-expression.ts';
export {
  checkScopeMappings,
  compileScopeMappings,
  evaluateScopeMappings,
  type CompiledScopeMapping,
  type CompiledScopeMappings,
  type ScopeMapping,
} from './scope-mappings.ts';
export type { MappingContext } from './mapping-context.ts';
export type { JsonValue } from './to-plain-json.ts';
export { deepMerge } from './deep-merge.ts';
