// Turns CEL source offsets and expression ids into the "line:column" shown in error messages.
import type { SourceInfo } from './cel-syntax.ts';

/** 1-based line and column of a character offset in `source`. */
export function describeOffset(source: string, offset: number): string {
  const before = source.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return `${line}:${column}`;
}

/**
 * "line:column" of the sub-expression with id `exprId`, or undefined when the parser recorded no
 * position for it (the library leaves lineOffsets empty, so positions are plain offsets).
 */
export function describeExprPosition(
  source: string,
  sourceInfo: SourceInfo | undefined,
  exprId: bigint | number | undefined,
): string | undefined {
  if (exprId === undefined || sourceInfo === undefined) return undefined;
  const offset = sourceInfo.positions[String(exprId)];
  return offset === undefined ? undefined : describeOffset(source, offset);
}
