// Claims computed at login: userinfo over the ID token, mappings over both, and the mapping context's shape.
import { compileScopeMappings } from '@portcullis/expressions';
import t from 'tap';
import { AuthError } from './errors.ts';
import { buildMappingContext, computeSessionClaims } from './session-claims.ts';
import { buildProvider } from './test-harness.ts';

const provider = buildProvider('http://127.0.0.1:1', { internal_host: 'http://backend:8080' });

t.test('the mapping context reads user fields from the claims and tolerates missing or odd ones', async (t) => {
  const ctx = buildMappingContext(
    { sub: 'u1', preferred_username: 'alice', email: 'a@x', groups: ['g1', 7, 'g2'], ak_proxy: { user_attributes: { k: 'v' } } },
    provider,
  );
  t.same(ctx.request.user, { username: 'alice', email: 'a@x', name: '', uid: 'u1', groups: ['g1', 'g2'], attributes: { k: 'v' } });
  t.same(ctx.provider, { name: 'app', proxyprovider: { internal_host: 'http://backend:8080', external_host: provider.external_host } });
  const bare = buildMappingContext({ sub: 'u2', groups: 'admins', ak_proxy: 'x' }, provider);
  t.same(bare.request.user.groups, []);
  t.same(bare.request.user.attributes, {});
});

t.test('userinfo wins over the ID token, mappings win over both, nested objects merge', async (t) => {
  const mappings = compileScopeMappings([
    { name: 'm', expression: '{"name": "Mapped " + request.user.username, "ak_proxy": {"host_header": "h"}}' },
  ]);
  const claims = computeSessionClaims(
    { sub: 'u1', name: 'From ID token', preferred_username: 'alice', ak_proxy: { user_attributes: { a: 1 } } },
    { sub: 'u1', name: 'From userinfo', email: 'a@x' },
    mappings,
    provider,
  );
  t.equal(claims['name'], 'Mapped alice');
  t.equal(claims['email'], 'a@x');
  t.same(claims['ak_proxy'], { user_attributes: { a: 1 }, host_header: 'h' });
});

t.test('a mapping that fails at login becomes a 500 AuthError naming it', async (t) => {
  const mappings = compileScopeMappings([{ name: 'needs-claim', expression: '{"x": claims["missing"]}' }]);
  const err = (() => {
    try {
      computeSessionClaims({ sub: 'u1' }, null, mappings, provider);
      return null;
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof AuthError);
  t.equal((err as AuthError).statusCode, 500);
  t.equal((err as AuthError).code, 'PORTCULLIS_AUTH_MAPPING_FAILED');
  t.match((err as AuthError).message, /"needs-claim"/);
});
