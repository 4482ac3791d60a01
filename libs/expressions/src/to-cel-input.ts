// Converts the plain JS mapping context into CEL values the evaluator accepts, rejecting what JSON cannot hold.
import type { CelInput } from '@bufbuild/cel';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ExpressionError, ExpressionErrorCode } from './expression-error.ts';
import type { MappingContext } from './mapping-context.ts';

/**
 * Converts a JSON-like value to a CEL input: objects become `map(string, dyn)` (keys whose value is
 * `undefined` are left out, so `has()` is false for them), arrays become lists (`undefined` → null,
 * as JSON.stringify does), numbers stay `double`, bigints are `int`, Uint8Array is `bytes` and a
 * Date is a `timestamp`. Throws ExpressionError EVAL for functions, symbols, class instances and cycles.
 */
export function toCelInput(value: unknown, path: string): CelInput {
  return convert(value, path, new Set());
}

function convert(value: unknown, path: string, ancestors: Set<object>): CelInput {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
      return value;
    case 'undefined':
      return null;
    case 'object':
      break;
    default:
      throw unsupported(path, typeof value);
  }
  if (value === null) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw unsupported(path, 'invalid Date');
    return timestampFromDate(value);
  }
  if (ancestors.has(value)) throw new ExpressionError(ExpressionErrorCode.Eval, `${path} refers to itself (circular reference)`);
  ancestors.add(value);
  try {
    if (Array.isArray(value)) return value.map((item, i) => convert(item, `${path}[${i}]`, ancestors));
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw unsupported(path, proto?.constructor?.name ?? 'object');
    const entries = new Map<string, CelInput>();
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) entries.set(key, convert(item, `${path}.${key}`, ancestors));
    }
    return entries as CelInput;
  } finally {
    ancestors.delete(value);
  }
}

function unsupported(path: string, what: string): ExpressionError {
  return new ExpressionError(ExpressionErrorCode.Eval, `${path} holds a value CEL cannot represent (${what})`);
}

/** The CEL variables of one login: `request`, `claims` and `provider`, converted once for every mapping. */
export type MappingBindings = Record<'request' | 'claims' | 'provider', ReadonlyMap<string, CelInput>>;

/** Converts a {@link MappingContext} into the CEL variables the declared environment expects. */
export function bindMappingContext(ctx: MappingContext): MappingBindings {
  return {
    request: toCelMap(ctx.request, 'request'),
    claims: toCelMap(ctx.claims, 'claims'),
    provider: toCelMap(ctx.provider, 'provider'),
  };
}

/** Like {@link toCelInput} for a value that must be an object (the three mapping variables). */
function toCelMap(value: unknown, path: string): ReadonlyMap<string, CelInput> {
  const converted = toCelInput(value, path);
  if (!(converted instanceof Map)) throw new ExpressionError(ExpressionErrorCode.Eval, `${path} must be an object`);
  return converted as ReadonlyMap<string, CelInput>;
}
