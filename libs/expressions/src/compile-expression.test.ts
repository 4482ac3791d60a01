// Tests compileExpression: compile-time errors with positions, evaluation errors, and CEL ↔ JSON value conversion.
import t from 'tap';
import { compileExpression } from './compile-expression.ts';
import { ExpressionError } from './expression-error.ts';
import type { MappingContext } from './mapping-context.ts';

const ctx = (overrides: { attributes?: Record<string, unknown>; claims?: Record<string, unknown>; groups?: string[] } = {}): MappingContext => ({
  request: {
    user: {
      username: 'alice',
      email: 'alice@example.com',
      name: 'Alice Example',
      uid: 'a1b2',
      groups: overrides.groups ?? ['admins', 'staff'],
      attributes: overrides.attributes ?? {},
    },
  },
  claims: overrides.claims ?? { sub: 'sub-1' },
  provider: { name: 'app', proxyprovider: { internal_host: 'http://backend:8080', external_host: 'https://app.example.com' } },
});

const compileErrors = [
  { name: 'a dangling operator is a syntax error with line:column', source: '{"a": 1} +', message: /^syntax error at 1:10: found \+ but expecting end of input$/ },
  { name: 'a syntax error on a later line reports that line', source: '{\n  "a": 1,\n  "b": }', message: /^syntax error at 3:8: / },
  { name: 'an empty expression is a syntax error', source: '', message: /^syntax error at 1:1: found end of input/ },
  { name: 'an undeclared variable is named with its position', source: '{"u": reqest.user.username}', message: /^undeclared reference to 'reqest' at 1:7 \(declared variables: request, claims, provider\)$/ },
  { name: 'an unknown function is named', source: '{"u": lower(request.user.username)}', message: /^unknown function 'lower' at 1:7$/ },
  { name: 'an unknown method is named', source: 'request.user.username.toLower()', message: /unknown function 'toLower'/ },
  { name: 'every problem is listed in source order', source: 'a + b', message: /^undeclared reference to 'a' at 1:1; undeclared reference to 'b' at 1:5/ },
  { name: 'a comprehension variable is not visible outside its macro', source: 'request.user.groups.exists(g, g == "x") && g == "y"', message: /^undeclared reference to 'g' at 1:44/ },
  { name: 'has() without a field selection is explained', source: 'has(request)', message: /^has\(\) needs a field selection/ },
  { name: 'an unknown message type is named', source: 'foo.Bar{}', message: /^unknown type 'foo.Bar'/ },
];

for (const c of compileErrors) {
  t.test(`compileExpression: ${c.name}`, async (t) => {
    t.throws(() => compileExpression(c.source), { name: 'ExpressionError', code: 'PORTCULLIS_EXPRESSION_COMPILE', statusCode: 500, expose: false, message: c.message });
  });
}

t.test('compileExpression: a non-string source is a compile error, not a crash', async (t) => {
  t.throws(() => compileExpression(42 as unknown as string), { code: 'PORTCULLIS_EXPRESSION_COMPILE', message: 'expression must be a string, got number' });
});

t.test('compileExpression: a syntax error keeps the library error as cause', async (t) => {
  const err = t.throws(() => compileExpression('1 +')) as ExpressionError;
  t.ok(err instanceof ExpressionError);
  t.ok(err.cause instanceof Error);
});

const accepted = [
  { name: 'comprehension variables, type names and qualified enum values are declared', source: '[1, 2].all(x, type(x) == int) && google.protobuf.NullValue.NULL_VALUE == 0', want: true },
  { name: 'two-step macros (map then filter) see their own variables', source: 'request.user.groups.map(g, g + "!").filter(g, g.startsWith("a"))', want: ['admins!'] },
  { name: 'namespaced extension functions resolve', source: 'strings.quote(request.user.username)', want: '"alice"' },
  { name: 'strings extension: join and lowerAscii', source: 'request.user.groups.join("|").upperAscii()', want: 'ADMINS|STAFF' },
  { name: 'group membership with in', source: '"admins" in request.user.groups', want: true },
  { name: 'group membership is false for other groups', source: '"ops" in request.user.groups', want: false },
  { name: 'has() on a present claim', source: 'has(claims.sub)', want: true },
  { name: 'has() on an absent claim', source: 'has(claims.email)', want: false },
  { name: 'conditional value on group membership', source: '"admins" in request.user.groups ? "yes" : "no"', want: 'yes' },
];

for (const c of accepted) {
  t.test(`compileExpression evaluates: ${c.name}`, async (t) => {
    t.same(compileExpression(c.source).evaluate(ctx()), c.want);
  });
}

const conversions = [
  { name: 'a small int becomes a JSON number', source: '42', want: 42 },
  { name: 'the largest safe int stays a number', source: '9007199254740991', want: 9007199254740991 },
  { name: 'an int beyond 2^53 becomes its exact decimal string', source: '9007199254740993', want: '9007199254740993' },
  { name: 'a negative int beyond -2^53 becomes a string', source: '-9223372036854775808', want: '-9223372036854775808' },
  { name: 'a uint becomes a number', source: '7u', want: 7 },
  { name: 'a large uint becomes a string', source: '18446744073709551615u', want: '18446744073709551615' },
  { name: 'a double stays a number', source: '1.5', want: 1.5 },
  { name: 'NaN becomes "NaN" (protobuf JSON spelling)', source: '0.0 / 0.0', want: 'NaN' },
  { name: 'bytes become base64', source: 'b"hi!"', want: 'aGkh' },
  { name: 'a timestamp becomes an ISO 8601 string', source: 'timestamp("2024-05-06T07:08:09.5Z")', want: '2024-05-06T07:08:09.500Z' },
  { name: 'a duration becomes protobuf JSON', source: 'duration("90s")', want: '90s' },
  { name: 'a type value becomes its name', source: 'type("x")', want: 'string' },
  { name: 'int and bool map keys become strings', source: '{1: "one", true: "yes"}', want: { 1: 'one', true: 'yes' } },
  { name: 'nested maps and lists convert recursively', source: '{"a": [1, {"b": null}]}', want: { a: [1, { b: null }] } },
];

for (const c of conversions) {
  t.test(`result conversion: ${c.name}`, async (t) => {
    t.same(compileExpression(c.source).evaluate(ctx()), c.want);
  });
}

t.test('result conversion: a "__proto__" map key does not change the result prototype', async (t) => {
  const out = compileExpression('{"__proto__": {"polluted": true}}').evaluate(ctx()) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(out), Object.prototype);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('input conversion: JSON numbers are doubles, bigints are ints', async (t) => {
  const expr = compileExpression('[type(request.user.attributes.n), type(claims.big), claims.big + 1]');
  t.same(expr.evaluate(ctx({ attributes: { n: 3 }, claims: { big: 2n ** 60n } })), ['double', 'int', '1152921504606846977']);
});

t.test('input conversion: a Date is a timestamp and undefined keys are absent', async (t) => {
  const expr = compileExpression('[request.user.attributes.when.getFullYear(), has(request.user.attributes.gone)]');
  t.same(expr.evaluate(ctx({ attributes: { when: new Date('2030-01-01T00:00:00Z'), gone: undefined } })), [2030, false]);
});

t.test('input conversion: values CEL cannot represent are evaluation errors naming their path', async (t) => {
  const expr = compileExpression('{}');
  t.throws(() => expr.evaluate(ctx({ attributes: { f: () => 1 } })), { code: 'PORTCULLIS_EXPRESSION_EVAL', message: /request\.user\.attributes\.f holds a value CEL cannot represent \(function\)/ });
  t.throws(() => expr.evaluate(ctx({ attributes: { m: new Map() } })), { message: /request\.user\.attributes\.m .*\(Map\)/ });
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  t.throws(() => expr.evaluate(ctx({ claims: cyclic })), { message: /claims\.self refers to itself/ });
});

const evalErrors = [
  { name: 'a missing key reports the position of the access', source: '{"x": request.user.attributes.nope}', message: /^evaluation failed at 1:30: field not found: nope$/ },
  { name: 'a type error names the overload', source: 'request.user.username + 1', message: /^evaluation failed at 1:23: found no matching overload for '_\+_' applied to '\(string, int\)'$/ },
  { name: 'division by zero', source: '1 / 0', message: /int divide by zero/ },
  { name: 'a JSON number plus an int literal has no overload (numbers are doubles)', source: 'claims.n + 1', message: /no matching overload for '_\+_' applied to '\(double, int\)'/ },
];

for (const c of evalErrors) {
  t.test(`evaluate: ${c.name}`, async (t) => {
    const expr = compileExpression(c.source);
    t.throws(() => expr.evaluate(ctx({ claims: { n: 1 } })), { name: 'ExpressionError', code: 'PORTCULLIS_EXPRESSION_EVAL', statusCode: 500, expose: false, message: c.message });
  });
}

t.test('a compiled expression is reusable across contexts', async (t) => {
  const expr = compileExpression('request.user.username');
  t.equal(expr.source, 'request.user.username');
  const first = expr.evaluate(ctx());
  const other = ctx();
  other.request.user.username = 'bob';
  t.equal(first, 'alice');
  t.equal(expr.evaluate(other), 'bob');
});
