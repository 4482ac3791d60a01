// Static check that an expression names only declared variables, known functions and known types.
// @bufbuild/cel has a type checker but does not export it, so without this walk a typo such as
// `reqest.user` would only fail at someone's login instead of when the config is loaded.
import type { CelEnv } from '@bufbuild/cel';
import type { Expr } from './cel-syntax.ts';

/** A name the environment does not know, with the id of the node that uses it. */
export interface UndeclaredReference {
  kind: 'variable' | 'function' | 'type';
  name: string;
  exprId: bigint;
}

// Identifiers that evaluate to CEL type values (`type(x) == int`), as the library resolves them.
const TYPE_IDENTIFIERS = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type']);

// Operators the planner implements itself instead of looking them up among the functions.
const PLANNER_OPERATORS = new Set(['_[_]', '_[?_]', '_?._', '_?_:_', '_&&_', '_||_', '@not_strictly_false', '__not_strictly_false__']);

// Message types the planner accepts in `T{...}` even without a registry entry.
const PLANNER_MESSAGE_TYPES = /^google\.protobuf\.(Value|Struct|ListValue|NullValue|(Bool|U?Int(32|64)|Float|Double|String|Bytes)Value|Timestamp|Duration|Any)$/;

/** Lists every undeclared variable, unknown function and unknown message type in `expr`, in walk order. */
export function findUndeclaredReferences(env: CelEnv, expr: Expr): UndeclaredReference[] {
  const found: UndeclaredReference[] = [];
  walk(env, expr, new Set(), found);
  return found;
}

function walk(env: CelEnv, expr: Expr | undefined, locals: ReadonlySet<string>, found: UndeclaredReference[]): void {
  if (expr === undefined) return;
  const kind = expr.exprKind;
  switch (kind.case) {
    case 'identExpr': {
      const name = kind.value.name;
      if (!locals.has(name) && env.variables.find(name) === undefined && !TYPE_IDENTIFIERS.has(name)) {
        found.push({ kind: 'variable', name, exprId: expr.id });
      }
      return;
    }
    case 'selectExpr': {
      // `google.protobuf.NullValue.NULL_VALUE` parses as a select chain on an identifier `google`.
      const qualified = qualifiedName(expr);
      if (qualified !== undefined && !isVariable(env, locals, qualified) && isQualifiedTypeName(env, qualified)) return;
      walk(env, kind.value.operand, locals, found);
      return;
    }
    case 'callExpr': {
      const call = kind.value;
      // `strings.quote(s)` parses as a method call on `strings`; the planner tries the qualified name first.
      const namespace = call.target === undefined ? undefined : qualifiedName(call.target);
      if (namespace !== undefined && env.funcs.find(`${namespace}.${call.function}`) !== undefined) {
        for (const arg of call.args) walk(env, arg, locals, found);
        return;
      }
      if (!PLANNER_OPERATORS.has(call.function) && env.funcs.find(call.function) === undefined) {
        found.push({ kind: 'function', name: call.function, exprId: expr.id });
      }
      walk(env, call.target, locals, found);
      for (const arg of call.args) walk(env, arg, locals, found);
      return;
    }
    case 'listExpr':
      for (const element of kind.value.elements) walk(env, element, locals, found);
      return;
    case 'structExpr': {
      const { messageName, entries } = kind.value;
      if (messageName !== '' && !PLANNER_MESSAGE_TYPES.test(messageName) && env.registry.getMessage(messageName) === undefined) {
        found.push({ kind: 'type', name: messageName, exprId: expr.id });
      }
      for (const entry of entries) {
        if (entry.keyKind.case === 'mapKey') walk(env, entry.keyKind.value, locals, found);
        walk(env, entry.value, locals, found);
      }
      return;
    }
    case 'comprehensionExpr': {
      const c = kind.value;
      walk(env, c.iterRange, locals, found);
      walk(env, c.accuInit, locals, found);
      const loopLocals = new Set([...locals, c.iterVar, c.accuVar]);
      if (c.iterVar2 !== '') loopLocals.add(c.iterVar2);
      walk(env, c.loopCondition, loopLocals, found);
      walk(env, c.loopStep, loopLocals, found);
      walk(env, c.result, new Set([...locals, c.accuVar]), found);
      return;
    }
    default:
      return;
  }
}

/** `a.b.c` for a chain of plain selects on an identifier, else undefined. */
function qualifiedName(expr: Expr): string | undefined {
  const kind = expr.exprKind;
  if (kind.case === 'identExpr') return kind.value.name;
  if (kind.case !== 'selectExpr' || kind.value.testOnly || kind.value.operand === undefined) return undefined;
  const parent = qualifiedName(kind.value.operand);
  return parent === undefined ? undefined : `${parent}.${kind.value.field}`;
}

function isVariable(env: CelEnv, locals: ReadonlySet<string>, qualified: string): boolean {
  const root = qualified.split('.')[0] ?? qualified;
  return locals.has(root) || env.variables.find(root) !== undefined;
}

/** True for a message type name or an enum value name, the two qualified names the library resolves. */
function isQualifiedTypeName(env: CelEnv, qualified: string): boolean {
  if (env.registry.getMessage(qualified) !== undefined) return true;
  const lastDot = qualified.lastIndexOf('.');
  if (lastDot < 0) return false;
  const enumType = env.registry.getEnum(qualified.slice(0, lastDot));
  return enumType?.values.some((v) => v.name === qualified.slice(lastDot + 1)) ?? false;
}
