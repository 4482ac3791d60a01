// Types of the parsed CEL syntax tree, taken from @bufbuild/cel's own `parse` so no transitive package is imported.
import type { parse } from '@bufbuild/cel';

/** What `parse` returns: the root expression and its source information. */
export type ParsedExpression = ReturnType<typeof parse>;
/** One node of the syntax tree. */
export type Expr = ParsedExpression['expr'];
/** Character offsets of the nodes, keyed by expression id. */
export type SourceInfo = NonNullable<ParsedExpression['sourceInfo']>;
