// Tests compiling, checking and evaluating scope-mapping lists: ordering, merging, and errors naming the mapping.
import t from 'tap';
import { ExpressionError } from './expression-error.ts';
import type { MappingContext } from './mapping-context.ts';
import { checkScopeMappings, compileScopeMappings, evaluateScopeMappings, type ScopeMapping } from './scope-mappings.ts';

const user = (username: string, groups: string[], claims: Record<string, unknown> = {}): MappingContext => ({
  request: { user: { username, email: `${username}@example.com`, name: username, uid: `uid-${username}`, groups, attributes: {} } },
  claims,
  provider: { name: 'app', proxyprovider: { internal_host: 'http://backend.internal:8080', external_host: 'https://app.example.com' } },
});
const alice = user('alice', ['admins', 'staff'], { big: 2n ** 62n, small: 5n });
const bob = user('bob', ['staff']);

const run = (mappings: ScopeMapping[], ctx: MappingContext) => evaluateScopeMappings(compileScopeMappings(mappings), ctx);

const evaluations: { name: string; mappings: ScopeMapping[]; ctx: MappingContext; want: Record<string, unknown> }[] = [
  { name: 'no mappings give an empty object', mappings: [], ctx: alice, want: {} },
  {
    name: 'a later mapping wins over an earlier one for the same key',
    mappings: [
      { name: 'first', expression: '{"ak_proxy": {"host_header": "first"}}' },
      { name: 'second', expression: '{"ak_proxy": {"host_header": "second"}}' },
    ],
    ctx: alice,
    want: { ak_proxy: { host_header: 'second' } },
  },
  {
    name: 'maps from different mappings deep-merge; lists from a later mapping replace',
    mappings: [
      { name: 'a', expression: '{"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-A": "1"}}}, "tags": ["x", "y"]}' },
      { name: 'b', expression: '{"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-B": "2"}}, "host_header": "h"}, "tags": ["z"]}' },
    ],
    ctx: alice,
    want: { ak_proxy: { user_attributes: { additionalHeaders: { 'X-A': '1', 'X-B': '2' } }, host_header: 'h' }, tags: ['z'] },
  },
  {
    name: 'conditional headers: a group member gets the header',
    mappings: [{ name: 'admin header', expression: '"admins" in request.user.groups ? {"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-Admin": "true"}}}} : {}' }],
    ctx: alice,
    want: { ak_proxy: { user_attributes: { additionalHeaders: { 'X-Admin': 'true' } } } },
  },
  {
    name: 'conditional headers: a non-member gets nothing',
    mappings: [{ name: 'admin header', expression: '"admins" in request.user.groups ? {"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-Admin": "true"}}}} : {}' }],
    ctx: bob,
    want: {},
  },
  {
    name: 'group membership drives a value inside the map',
    mappings: [{ name: 'role', expression: '{"role": "admins" in request.user.groups ? "admin" : "user"}' }],
    ctx: bob,
    want: { role: 'user' },
  },
  {
    name: 'ints convert to numbers when safe and to exact strings when not',
    mappings: [{ name: 'ints', expression: '{"small": claims.small, "big": claims.big, "sum": claims.big + (claims.big - 1)}' }],
    ctx: alice,
    want: { small: 5, big: '4611686018427387904', sum: '9223372036854775807' },
  },
  {
    name: 'an empty map from an earlier mapping is harmless',
    mappings: [
      { name: 'empty', expression: '{}' },
      { name: 'backend', expression: '{"ak_proxy": {"backend_override": "http://foo.bar.baz/" + request.user.username}}' },
    ],
    ctx: bob,
    want: { ak_proxy: { backend_override: 'http://foo.bar.baz/bob' } },
  },
];

for (const c of evaluations) {
  t.test(`evaluateScopeMappings: ${c.name}`, async (t) => {
    t.same(run(c.mappings, c.ctx), c.want);
  });
}

t.test('evaluateScopeMappings: int overflow is an evaluation error, not a wrapped number', async (t) => {
  t.throws(() => run([{ name: 'overflow', expression: '{"x": claims.big * 4}' }], alice), { code: 'PORTCULLIS_EXPRESSION_EVAL', mapping: 'overflow', message: /overflow/ });
});

const evalErrors = [
  { name: 'a missing key names the mapping, its index and the position', expression: '{"x": request.user.attributes.missing}', message: /^scope mapping #1 "broken": evaluation failed at 1:30: field not found: missing$/ },
  { name: 'a type error names the mapping', expression: '{"x": request.user.username + 1}', message: /^scope mapping #1 "broken": evaluation failed at 1:29: found no matching overload for '_\+_'/ },
  { name: 'a result that is not a map names the mapping and the type', expression: 'request.user.username', message: /^scope mapping #1 "broken": must return a map, but returned string$/ },
  { name: 'a list result is not a map', expression: '[{"a": 1}]', message: /must return a map, but returned list/ },
];

for (const c of evalErrors) {
  t.test(`evaluateScopeMappings: ${c.name}`, async (t) => {
    const compiled = compileScopeMappings([
      { name: 'fine', expression: '{"ok": true}' },
      { name: 'broken', expression: c.expression },
    ]);
    const err = t.throws(() => evaluateScopeMappings(compiled, alice), { name: 'ExpressionError', code: 'PORTCULLIS_EXPRESSION_EVAL', mapping: 'broken', statusCode: 500, expose: false, message: c.message }) as ExpressionError;
    t.ok(err.cause instanceof ExpressionError, 'the unlabelled error is kept as cause');
  });
}

const badList: ScopeMapping[] = [
  { name: 'syntax', expression: '{"a": ' },
  { name: 'fine', expression: '{"ok": true}' },
  { name: 'typo', expression: '{"u": reqest.user.username}' },
  { name: '', expression: '{}' },
  { name: 'not text', expression: 7 as unknown as string },
];

t.test('checkScopeMappings returns every problem with index, name and reason, without throwing', async (t) => {
  const problems = checkScopeMappings(badList);
  t.same(
    problems.map((p) => [p.index, p.name]),
    [
      [0, 'syntax'],
      [2, 'typo'],
      [3, ''],
      [4, 'not text'],
    ],
  );
  t.match(problems[0]?.message, /^syntax error at 1:7: /);
  t.equal(problems[1]?.message, "undeclared reference to 'reqest' at 1:7 (declared variables: request, claims, provider)");
  t.equal(problems[2]?.message, 'name must be a non-empty string');
  t.equal(problems[3]?.message, 'expression must be a string, got number');
});

t.test('checkScopeMappings returns an empty list for valid mappings', async (t) => {
  t.same(checkScopeMappings([{ name: 'fine', expression: '{"ok": true}' }]), []);
});

t.test('compileScopeMappings throws one COMPILE error listing every failing mapping', async (t) => {
  const err = t.throws(() => compileScopeMappings(badList), { name: 'ExpressionError', code: 'PORTCULLIS_EXPRESSION_COMPILE', statusCode: 500, expose: false }) as ExpressionError;
  t.match(err.message, /^4 of 5 scope mappings failed to compile: #0 "syntax": syntax error at 1:7: .*; #2 "typo": undeclared reference to 'reqest'.*; #3 "": name must be a non-empty string; #4 "not text": expression must be a string/);
  t.equal(err.problems?.length, 4);
  t.equal(err.mapping, undefined, 'no single mapping is blamed when several fail');
});

t.test('compileScopeMappings names the mapping when exactly one fails', async (t) => {
  t.throws(() => compileScopeMappings([{ name: 'only', expression: 'nope' }]), { mapping: 'only', message: /#0 "only": undeclared reference to 'nope'/ });
});

t.test('compiled mappings keep their index and name and are reusable across logins', async (t) => {
  const compiled = compileScopeMappings([{ name: 'who', expression: '{"who": request.user.username}' }]);
  t.same(
    compiled.mappings.map((m) => [m.index, m.name, m.expression.source]),
    [[0, 'who', '{"who": request.user.username}']],
  );
  t.same(evaluateScopeMappings(compiled, alice), { who: 'alice' });
  t.same(evaluateScopeMappings(compiled, bob), { who: 'bob' });
});

t.test('evaluateScopeMappings rejects a list it did not compile', async (t) => {
  const foreign = { mappings: [{ index: 0, name: 'x', expression: { source: '{}', evaluate: () => ({}) } }] };
  t.throws(() => evaluateScopeMappings(foreign, alice), TypeError);
});

t.test('evaluateScopeMappings: a map key "__proto__" from a mapping does not pollute prototypes', async (t) => {
  const out = run([{ name: 'evil', expression: '{"__proto__": {"polluted": true}, "ok": 1}' }], alice);
  t.same(Object.keys(out), ['ok']);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});
