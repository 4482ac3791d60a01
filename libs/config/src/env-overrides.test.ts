// Tests of PORTCULLIS_* environment overrides: naming, value parsing, lists, creation, precedence, mistakes.
import t from 'tap';
import { loadConfig } from './load-config.ts';
import { loadObject, minimalProvider, problemsOf } from './test-fixtures.ts';
import type { PortcullisConfig } from './types.ts';

const BASE = { log_level: 'warn', providers: [minimalProvider()] };

const applies: Array<{ name: string; config?: Record<string, unknown>; env: Record<string, string>; pick: (c: PortcullisConfig) => unknown; expected: unknown }> = [
  {
    name: 'a nested key by its upper-case path',
    env: { PORTCULLIS_OUTPOST__LISTEN__HTTP: '127.0.0.1:9101' },
    pick: (c) => c.outpost.listen.http,
    expected: '127.0.0.1:9101',
  },
  {
    name: 'a key inside a list item by its index',
    env: { PORTCULLIS_PROVIDERS__0__CLIENT_SECRET: 'x' },
    pick: (c) => c.providers[0]?.client_secret,
    expected: 'x',
  },
  {
    name: 'env wins over the file',
    env: { PORTCULLIS_LOG_LEVEL: 'error' },
    pick: (c) => c.log_level,
    expected: 'error',
  },
  {
    name: 'names match keys case-insensitively',
    env: { PORTCULLIS_Outpost__Name: 'Mixed Case' },
    pick: (c) => c.outpost.name,
    expected: 'Mixed Case',
  },
  {
    name: "a key's own underscores stay, and a list-valued key takes a comma-separated list",
    env: { PORTCULLIS_OUTPOST__TRUSTED_PROXY_CIDRS: '10.1.0.0/16, 192.168.0.0/24' },
    pick: (c) => c.outpost.trusted_proxy_cidrs,
    expected: ['10.1.0.0/16', '192.168.0.0/24'],
  },
  {
    name: 'true is parsed as a boolean',
    env: { PORTCULLIS_PROVIDERS__0__INTERNAL_HOST_SSL_VALIDATION: 'false' },
    pick: (c) => c.providers[0]?.internal_host_ssl_validation,
    expected: false,
  },
  {
    name: '42 is parsed as an integer',
    env: { PORTCULLIS_OUTPOST__SIGNOUT_PROPAGATION_TIMEOUT_MS: '42' },
    pick: (c) => c.outpost.signout_propagation_timeout_ms,
    expected: 42,
  },
  {
    name: 'null turns a nullable key off',
    env: { PORTCULLIS_OUTPOST__LISTEN__METRICS: 'null' },
    pick: (c) => c.outpost.listen.metrics,
    expected: null,
  },
  {
    name: 'a string key takes the text literally, digits and YAML syntax included',
    env: { PORTCULLIS_PROVIDERS__0__CLIENT_ID: '12345', PORTCULLIS_PROVIDERS__0__CLIENT_SECRET: '#&*not: yaml' },
    pick: (c) => [c.providers[0]?.client_id, c.providers[0]?.client_secret],
    expected: ['12345', '#&*not: yaml'],
  },
  {
    name: 'one item of a string list by its index',
    config: { providers: [minimalProvider({ scopes: ['openid', 'profile', 'email'] })] },
    env: { PORTCULLIS_PROVIDERS__0__SCOPES__2: 'groups' },
    pick: (c) => c.providers[0]?.scopes,
    expected: ['openid', 'profile', 'groups'],
  },
  {
    name: 'cluster is created from env when the file has none',
    env: { PORTCULLIS_CLUSTER__NATS__SERVERS: 'nats://a:4222,nats://b:4222' },
    pick: (c) => [c.cluster?.nats.servers, c.cluster?.nats.stream, c.cluster?.redis.url],
    expected: [['nats://a:4222', 'nats://b:4222'], 'PORTCULLIS_SESSIONS', 'redis://127.0.0.1:6379'],
  },
  {
    name: 'a whole section from a YAML flow value, deeper variables applied after it',
    env: { PORTCULLIS_CLUSTER: '{redis: {key_prefix: "a:"}}', PORTCULLIS_CLUSTER__REDIS__URL: 'rediss://r:6380' },
    pick: (c) => [c.cluster?.redis.key_prefix, c.cluster?.redis.url],
    expected: ['a:', 'rediss://r:6380'],
  },
  {
    name: 'PORTCULLIS_CONFIG is not an override',
    env: { PORTCULLIS_CONFIG: '' },
    pick: (c) => c.log_level,
    expected: 'warn',
  },
];

for (const c of applies) {
  t.test(`env override: ${c.name}`, async (t) => {
    const result = loadObject(c.config ?? BASE, c.env);
    t.same(problemsOf(result), []);
    if (result.ok) t.strictSame(c.pick(result.config), c.expected);
  });
}

t.test('env override: PORTCULLIS_CLUSTER=null turns off a cluster the file defines', async (t) => {
  const result = loadObject({ ...BASE, cluster: { nats: { servers: ['nats://x:4222'] } } }, { PORTCULLIS_CLUSTER: 'null' });
  t.equal(result.ok && result.config.cluster, null);
});

t.test("Kubernetes' service-link variables for Services named portcullis* are not overrides (a pod would not start)", async (t) => {
  const links: Record<string, string> = {};
  for (const svc of ['PORTCULLIS', 'PORTCULLIS_GATEWAY', 'PORTCULLIS_AUTH_METRICS']) {
    Object.assign(links, {
      [`${svc}_SERVICE_HOST`]: '10.0.0.7',
      [`${svc}_SERVICE_PORT`]: '9000',
      [`${svc}_SERVICE_PORT_HTTP`]: '9000',
      [`${svc}_PORT`]: 'tcp://10.0.0.7:9000',
      [`${svc}_PORT_9000_TCP`]: 'tcp://10.0.0.7:9000',
      [`${svc}_PORT_9000_TCP_PROTO`]: 'tcp',
      [`${svc}_PORT_9000_TCP_PORT`]: '9000',
      [`${svc}_PORT_9000_TCP_ADDR`]: '10.0.0.7',
    });
  }
  const result = loadObject(BASE, { ...links, PORTCULLIS_LOG_LEVEL: 'error' });
  t.same(problemsOf(result), [], 'no problem');
  t.equal(result.ok && result.config.log_level, 'error', 'real overrides still apply');
  t.match(problemsOf(loadObject(BASE, { PORTCULLIS_GATEWAY_HOST: 'x' })), [{ path: 'env PORTCULLIS_GATEWAY_HOST' }], 'anything else stays a mistake');
});

const mistakes: Array<{ name: string; config?: Record<string, unknown>; env: Record<string, string>; path: string; reason: RegExp; fix?: RegExp }> = [
  {
    name: 'a variable that names no config key',
    env: { PORTCULLIS_FOO__BAR: '1' },
    path: 'env PORTCULLIS_FOO__BAR',
    reason: /names no configuration key \(nothing called "FOO" at the top level\)/,
  },
  {
    name: 'a misspelt level, with the corrected full name suggested',
    env: { PORTCULLIS_OUTPOST__LISTN__HTTP: '1.2.3.4:80' },
    path: 'env PORTCULLIS_OUTPOST__LISTN__HTTP',
    reason: /did you mean PORTCULLIS_OUTPOST__LISTEN__HTTP\?/,
    fix: /rename it to PORTCULLIS_OUTPOST__LISTEN__HTTP/,
  },
  {
    name: 'a level below a scalar key',
    env: { PORTCULLIS_LOG_LEVEL__X: 'debug' },
    path: 'env PORTCULLIS_LOG_LEVEL__X',
    reason: /nothing called "X" under log_level/,
  },
  {
    name: 'a provider index at or past the number of providers',
    env: { PORTCULLIS_PROVIDERS__1__CLIENT_SECRET: 'x' },
    path: 'env PORTCULLIS_PROVIDERS__1__CLIENT_SECRET',
    reason: /providers\[1\] does not exist \(providers has 1 item\)/,
    fix: /index from 0 to 0/,
  },
  {
    name: 'a provider index when the file has no providers',
    config: {},
    env: { PORTCULLIS_PROVIDERS__0__NAME: 'x' },
    path: 'env PORTCULLIS_PROVIDERS__0__NAME',
    reason: /providers\[0\] does not exist \(providers has 0 items\)/,
    fix: /define providers\[0\] in the config file first/,
  },
  {
    name: 'a list index that is not a number',
    env: { PORTCULLIS_PROVIDERS__FIRST__NAME: 'x' },
    path: 'env PORTCULLIS_PROVIDERS__FIRST__NAME',
    reason: /nothing called "FIRST" under providers/,
  },
  {
    name: 'a value of the wrong type, reported at the config path with the variable named',
    env: { PORTCULLIS_OUTPOST__SIGNOUT_PROPAGATION_TIMEOUT_MS: 'soon' },
    path: 'outpost.signout_propagation_timeout_ms',
    reason: /expected a whole number, got the string "soon" \(set by env PORTCULLIS_OUTPOST__SIGNOUT_PROPAGATION_TIMEOUT_MS\)/,
  },
  {
    name: 'a semantic mistake in an env value names the variable',
    env: { PORTCULLIS_PROVIDERS__0__COOKIE_SECRET: 'short' },
    path: 'providers[0].cookie_secret',
    reason: /set by env PORTCULLIS_PROVIDERS__0__COOKIE_SECRET/,
  },
  {
    name: 'a section value that is not valid YAML',
    env: { PORTCULLIS_CLUSTER: '{nats: [' },
    path: 'env PORTCULLIS_CLUSTER',
    reason: /is not valid YAML/,
  },
  {
    name: 'a key under a file section that is not a mapping',
    config: { ...BASE, outpost: 'edge' },
    env: { PORTCULLIS_OUTPOST__NAME: 'x' },
    path: 'env PORTCULLIS_OUTPOST__NAME',
    reason: /cannot be applied: outpost in the config file is the string "edge", not a mapping/,
  },
];

for (const c of mistakes) {
  t.test(`env mistake: ${c.name}`, async (t) => {
    const problems = problemsOf(loadObject(c.config ?? BASE, c.env));
    const problem = problems.find((p) => p.path === c.path);
    t.ok(problem, `a problem at ${c.path} among ${JSON.stringify(problems.map((p) => p.path))}`);
    t.match(problem?.reason, c.reason);
    if (c.fix) t.match(problem?.fix, c.fix);
  });
}

t.test('every env mistake is listed together with the file problems', async (t) => {
  const problems = problemsOf(
    loadObject({ ...BASE, log_level: 'loud' }, { PORTCULLIS_A: '1', PORTCULLIS_B: '2', PORTCULLIS_PROVIDERS__0__MODE: 'sideways' }),
  );
  t.strictSame(problems.map((p) => p.path).sort(), ['env PORTCULLIS_A', 'env PORTCULLIS_B', 'log_level', 'providers[0].mode'].sort());
});

t.test('without opts.env, process.env supplies overrides', async (t) => {
  process.env.PORTCULLIS_LOG_LEVEL = 'trace';
  t.teardown(() => {
    delete process.env.PORTCULLIS_LOG_LEVEL;
  });
  const result = loadConfig({ text: JSON.stringify(BASE) });
  t.equal(result.ok && result.config.log_level, 'trace');
});
