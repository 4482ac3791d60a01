// Runs every CEL example in the package README against its sample users and checks the documented results.
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { MappingContext } from './mapping-context.ts';
import { compileScopeMappings, evaluateScopeMappings } from './scope-mappings.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

const contexts = new Map<string, MappingContext>();
for (const m of readme.matchAll(/<!-- context: (\w+) -->\s*```json\n([\s\S]*?)```/g)) {
  contexts.set(m[1] as string, JSON.parse(m[2] as string) as MappingContext);
}

interface Example {
  name: string;
  expression: string;
  results: { user: string; want: unknown }[];
}

// Each example runs from its marker to the next one, so a result always belongs to the example above it.
const examples: Example[] = readme
  .split('<!-- example: ')
  .slice(1)
  .map((chunk) => {
    const name = chunk.slice(0, chunk.indexOf(' -->'));
    const expression = /```cel\n([\s\S]*?)```/.exec(chunk)?.[1] ?? '';
    const results = [...chunk.matchAll(/<!-- result: (\w+) -->\s*```json\n([\s\S]*?)```/g)].map((m) => ({
      user: m[1] as string,
      want: JSON.parse(m[2] as string) as unknown,
    }));
    return { name, expression, results };
  });

t.test('the README documents sample users and at least the authentik examples', async (t) => {
  t.same([...contexts.keys()], ['alice', 'bob']);
  t.ok(examples.length >= 8, `found ${examples.length} examples`);
  for (const needle of ['"http://foo.bar.baz/" + request.user.username', '"my-internal-host-header"', 'urlparse(provider.proxyprovider.internal_host).netloc', 'additionalHeaders', '"admins" in request.user.groups']) {
    t.ok(examples.some((e) => e.expression.includes(needle)), `an example uses ${needle}`);
  }
});

t.test('every cel block in the README is a marked, tested example', async (t) => {
  const celBlocks = readme.match(/```cel\n/g) ?? [];
  t.equal(celBlocks.length, examples.length);
});

for (const example of examples) {
  t.test(`README example "${example.name}" compiles and gives the documented result`, async (t) => {
    t.ok(example.results.length > 0, 'the example documents at least one result');
    const compiled = compileScopeMappings([{ name: example.name, expression: example.expression }]);
    for (const { user, want } of example.results) {
      const ctx = contexts.get(user);
      if (ctx === undefined) {
        t.fail(`unknown sample user ${user}`);
        continue;
      }
      t.same(evaluateScopeMappings(compiled, ctx), want, `result for ${user}`);
    }
  });
}

t.test('README: per-group-headers then per-user-headers merge into one additionalHeaders map', async (t) => {
  const byName = new Map(examples.map((e) => [e.name, e.expression]));
  const compiled = compileScopeMappings([
    { name: 'per-group-headers', expression: byName.get('per-group-headers') ?? '' },
    { name: 'per-user-headers', expression: byName.get('per-user-headers') ?? '' },
  ]);
  t.same(evaluateScopeMappings(compiled, contexts.get('alice') as MappingContext), {
    ak_proxy: { user_attributes: { additionalHeaders: { 'X-Role': 'admin', 'X-User-Email': 'alice@example.com', 'X-User-Groups': 'admins|staff' } } },
  });
});
