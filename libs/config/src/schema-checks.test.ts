// Table tests of the schema reader: unknown keys, types, bounds, enums and required keys, each with its fix.
import t from 'tap';
import { loadConfig } from './load-config.ts';
import { loadObject, minimalProvider, problemsOf } from './test-fixtures.ts';

const cases: Array<{ name: string; config: Record<string, unknown>; path: string; reason: RegExp; fix: RegExp }> = [
  {
    name: 'an unknown top-level key, with a suggestion',
    config: { providers: [minimalProvider()], log_levl: 'info' },
    path: 'log_levl',
    reason: /^unknown key "log_levl" \(did you mean "log_level"\?\)$/,
    fix: /^rename it to log_level$/,
  },
  {
    name: 'an unknown key in camelCase, matched to its snake_case twin',
    config: { providers: [minimalProvider({ externalHost: 'https://x.company' })] },
    path: 'providers[0].externalHost',
    reason: /did you mean "external_host"/,
    fix: /rename it to external_host/,
  },
  {
    name: 'an unknown key with no close match lists the allowed keys',
    config: { outpost: { colour: 'red' }, providers: [minimalProvider()] },
    path: 'outpost.colour',
    reason: /^unknown key "colour"$/,
    fix: /allowed here are: name, listen, trusted_proxy_cidrs, signout_propagation_timeout_ms, shutdown_grace_seconds, certificate_watch_interval_seconds, workers/,
  },
  {
    name: 'an unknown nested key deep in cluster',
    config: { cluster: { nats: { tls: { ca: 'x' } } }, providers: [minimalProvider()] },
    path: 'cluster.nats.tls.ca',
    reason: /unknown key "ca"/,
    fix: /ca_file/,
  },
  {
    name: 'a number where a string is expected, with a quoting hint',
    config: { providers: [minimalProvider({ client_id: 12345 })] },
    path: 'providers[0].client_id',
    reason: /^expected a string, got number 12345$/,
    fix: /quote it \("12345"\)/,
  },
  {
    name: 'a missing required key',
    config: { providers: [minimalProvider({ issuer: undefined })] },
    path: 'providers[0].issuer',
    reason: /^is required$/,
    fix: /set providers\[0\]\.issuer to the OIDC issuer URL/,
  },
  {
    name: 'an empty required string',
    config: { providers: [minimalProvider({ client_id: '  ' })] },
    path: 'providers[0].client_id',
    reason: /^is empty$/,
    fix: /OAuth2 client ID/,
  },
  {
    name: 'a value outside an enum, with a suggestion',
    config: { providers: [minimalProvider({ mode: 'forward-single' })] },
    path: 'providers[0].mode',
    reason: /"forward-single" is not a valid value \(did you mean "forward_single"\?\)/,
    fix: /one of: proxy, forward_single, forward_domain/,
  },
  {
    name: 'a quoted number where an integer is expected',
    config: { providers: [minimalProvider({ access_token_validity: '3600' })] },
    path: 'providers[0].access_token_validity',
    reason: /expected a whole number, got the string "3600"/,
    fix: /from 60 to 31536000.*without quotes/,
  },
  {
    name: 'an idle timeout below its minimum',
    config: { providers: [minimalProvider({ idle_timeout: 5 })] },
    path: 'providers[0].idle_timeout',
    reason: /5/,
    fix: /10/,
  },
  {
    name: 'refresh given as a string',
    config: { providers: [minimalProvider({ refresh: 'yes' })] },
    path: 'providers[0].refresh',
    reason: /yes/,
    fix: /true|false/,
  },
  {
    name: 'a fraction where an integer is expected',
    config: { outpost: { signout_propagation_timeout_ms: 1.5 }, providers: [minimalProvider()] },
    path: 'outpost.signout_propagation_timeout_ms',
    reason: /expected a whole number, got number 1.5/,
    fix: /from 0 to 60000/,
  },
  {
    name: 'an integer below its minimum',
    config: { cluster: { nats: { replicas: 0 } }, providers: [minimalProvider()] },
    path: 'cluster.nats.replicas',
    reason: /^0 is out of range \(1–5\)$/,
    fix: /from 1 to 5 .*, or null/,
  },
  {
    name: 'a header-auth cache period below 5 s',
    config: { providers: [minimalProvider({ header_auth_cache_seconds: 4 })] },
    path: 'providers[0].header_auth_cache_seconds',
    reason: /^4 is out of range \(5–3600\)$/,
    fix: /from 5 to 3600/,
  },
  {
    name: 'a header-auth cache period above one hour',
    config: { providers: [minimalProvider({ header_auth_cache_seconds: 3601 })] },
    path: 'providers[0].header_auth_cache_seconds',
    reason: /^3601 is out of range \(5–3600\)$/,
    fix: /from 5 to 3600/,
  },
  {
    name: 'a negative certificate watch interval: the fix says 0 turns it off',
    config: { outpost: { certificate_watch_interval_seconds: -1 }, providers: [minimalProvider()] },
    path: 'outpost.certificate_watch_interval_seconds',
    reason: /^-1 is out of range \(0–86400\)$/,
    fix: /from 0 to 86400 \(a time in seconds; 0 turns watching the certificate files off \(reload them with SIGHUP\)\)/,
  },
  {
    name: 'a certificate watch interval given with a unit',
    config: { outpost: { certificate_watch_interval_seconds: '60s' }, providers: [minimalProvider()] },
    path: 'outpost.certificate_watch_interval_seconds',
    reason: /expected a whole number, got the string "60s"/,
    fix: /from 0 to 86400/,
  },
  {
    name: 'no gateway worker at all',
    config: { outpost: { workers: 0 }, cluster: {}, providers: [minimalProvider()] },
    path: 'outpost.workers',
    reason: /^0 is out of range \(1–64\)$/,
    fix: /from 1 to 64 \(a number of gateway processes/,
  },
  {
    name: 'a YAML 1.1 boolean word, which YAML 1.2 reads as a string',
    config: { providers: [minimalProvider({ basic_auth_enabled: 'yes' })] },
    path: 'providers[0].basic_auth_enabled',
    reason: /expected true or false, got the string "yes"/,
    fix: /true or false/,
  },
  {
    name: 'a string where a list is expected',
    config: { providers: [minimalProvider({ scopes: 'openid profile' })] },
    path: 'providers[0].scopes',
    reason: /expected a list, got the string "openid profile"/,
    fix: /YAML list/,
  },
  {
    name: 'a non-string item in a string list',
    config: { outpost: { trusted_proxy_cidrs: ['10.0.0.0/8', 7] }, providers: [minimalProvider()] },
    path: 'outpost.trusted_proxy_cidrs[1]',
    reason: /expected a non-empty string, got number 7/,
    fix: /non-empty string/,
  },
  {
    name: 'a scalar where a mapping is expected',
    config: { outpost: { listen: '0.0.0.0:9000' }, providers: [minimalProvider()] },
    path: 'outpost.listen',
    reason: /expected a mapping, got the string "0.0.0.0:9000"/,
    fix: /http, https and metrics/,
  },
  {
    name: 'a mapping where the provider list is expected',
    config: { providers: minimalProvider() },
    path: 'providers',
    reason: /expected a list, got a mapping/,
    fix: /"- "/,
  },
  {
    name: 'an empty provider list',
    config: { providers: [] },
    path: 'providers',
    reason: /at least 1 item is required, found 0/,
    fix: /name, mode, external_host, issuer, client_id, client_secret and cookie_secret/,
  },
  {
    name: 'a scope mapping without an expression',
    config: { providers: [minimalProvider({ scope_mappings: [{ name: 'x' }] })] },
    path: 'providers[0].scope_mappings[0].expression',
    reason: /is required/,
    fix: /CEL expression/,
  },
  {
    name: 'http set to null (it cannot be turned off)',
    config: { outpost: { listen: { http: null } }, providers: [minimalProvider()] },
    path: 'outpost.listen.http',
    reason: /./,
    fix: /./,
  },
];

for (const c of cases) {
  t.test(`schema: ${c.name}`, async (t) => {
    const problems = problemsOf(loadObject(c.config));
    const problem = problems.find((p) => p.path === c.path);
    t.ok(problem, `a problem at ${c.path} among ${JSON.stringify(problems)}`);
    t.match(problem?.reason, c.reason);
    t.match(problem?.fix, c.fix);
  });
}

t.test('every mistake in one provider is reported, not only the first', async (t) => {
  const problems = problemsOf(
    loadObject({ providers: [{ name: 7, mode: 'nope', external_host: 'ftp://x', scopes: 'openid', cookie_secret: 'x', extra: 1 }] }),
  );
  t.strictSame(
    problems.map((p) => p.path).sort(),
    [
      'providers[0].client_id',
      'providers[0].client_secret',
      'providers[0].cookie_secret',
      'providers[0].external_host',
      'providers[0].extra',
      'providers[0].issuer',
      'providers[0].mode',
      'providers[0].name',
      'providers[0].scopes',
    ].sort(),
  );
});

t.test('a value with a type problem gets no follow-on semantic problem', async (t) => {
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ cookie_secret: 12 })] }));
  t.equal(problems.length, 1);
});

t.test('YAML comments, anchors and block scalars load', async (t) => {
  const text = `
defaults: &d
providers:
  - &p
    name: a   # trailing comment
    mode: proxy
    external_host: https://a.company
    internal_host: http://127.0.0.1:1
    issuer: https://idp.company/o/
    client_id: a
    client_secret: s
    cookie_secret: >-
      abcdefghijklmnop
      qrstuvwxyz012345
`;
  const problems = problemsOf(loadConfig({ text, env: {} }));
  t.strictSame(
    problems.map((p) => p.path),
    ['defaults'],
    'the anchor-holding key is unknown; the folded cookie secret is long enough',
  );
});
