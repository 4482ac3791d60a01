// Tests that deepMerge merges objects recursively, lets the overlay win, and never mutates or pollutes.
import t from 'tap';
import { deepMerge } from './deep-merge.ts';

const cases: { name: string; base: Record<string, unknown>; overlay: Record<string, unknown>; want: Record<string, unknown> }[] = [
  { name: 'nested plain objects merge key by key', base: { a: { x: 1, y: 2 } }, overlay: { a: { y: 3, z: 4 } }, want: { a: { x: 1, y: 3, z: 4 } } },
  { name: 'an array in the overlay replaces the base array', base: { a: [1, 2, 3] }, overlay: { a: [9] }, want: { a: [9] } },
  { name: 'a scalar in the overlay replaces an object', base: { a: { x: 1 } }, overlay: { a: 'flat' }, want: { a: 'flat' } },
  { name: 'an object in the overlay replaces a scalar', base: { a: 1 }, overlay: { a: { x: 1 } }, want: { a: { x: 1 } } },
  { name: 'null in the overlay replaces', base: { a: { x: 1 } }, overlay: { a: null }, want: { a: null } },
  { name: 'undefined in the overlay counts as absent', base: { a: 1 }, overlay: { a: undefined }, want: { a: 1 } },
  { name: 'keys only in base are kept', base: { a: 1, b: { c: 2 } }, overlay: { d: 3 }, want: { a: 1, b: { c: 2 }, d: 3 } },
  {
    name: 'three levels deep',
    base: { ak_proxy: { user_attributes: { additionalHeaders: { 'X-A': 'a' } } } },
    overlay: { ak_proxy: { user_attributes: { additionalHeaders: { 'X-B': 'b' } } } },
    want: { ak_proxy: { user_attributes: { additionalHeaders: { 'X-A': 'a', 'X-B': 'b' } } } },
  },
];

for (const c of cases) {
  t.test(`deepMerge: ${c.name}`, async (t) => {
    t.same(deepMerge(c.base, c.overlay), c.want);
  });
}

t.test('deepMerge does not mutate its inputs and shares no nested object or array with them', async (t) => {
  const base = { a: { x: 1 }, list: [{ k: 1 }] };
  const overlay = { a: { y: 2 }, b: { z: [1] } };
  const merged = deepMerge(base, overlay);
  t.same(base, { a: { x: 1 }, list: [{ k: 1 }] });
  t.same(overlay, { a: { y: 2 }, b: { z: [1] } });
  (merged.a as Record<string, unknown>).x = 99;
  ((merged.list as Record<string, unknown>[])[0] as Record<string, unknown>).k = 99;
  ((merged.b as Record<string, unknown[]>).z as unknown[]).push(2);
  t.same(base, { a: { x: 1 }, list: [{ k: 1 }] });
  t.same(overlay, { a: { y: 2 }, b: { z: [1] } });
});

t.test('deepMerge ignores __proto__, constructor and prototype keys at every depth', async (t) => {
  const overlay = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "a": {"__proto__": {"polluted": true}, "prototype": 1, "ok": 1}}');
  const base = JSON.parse('{"__proto__": {"fromBase": true}, "a": {}}');
  const merged = deepMerge(base, overlay);
  t.same(Object.keys(merged).sort(), ['a']);
  t.same(Object.keys(merged.a as object), ['ok']);
  t.equal(Object.getPrototypeOf(merged), Object.prototype);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.equal((merged as Record<string, unknown>).fromBase, undefined);
});

t.test('deepMerge treats a Date in the overlay as a value that replaces, not an object to merge into', async (t) => {
  const when = new Date(0);
  const merged = deepMerge({ at: { x: 1 } }, { at: when });
  t.equal(merged.at, when);
});
