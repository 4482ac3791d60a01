// Tests of loadConfig end to end: round trip with defaults, file handling, YAML errors, many problems at once.
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from './errors.ts';
import { formatProblem } from './config-problem.ts';
import { loadConfig } from './load-config.ts';
import { loadObject, minimalProvider, problemsOf } from './test-fixtures.ts';
import type { PortcullisConfig } from './types.ts';

const FULL_YAML = `
log_level: debug
outpost:
  name: Edge Outpost
  listen: { http: "0.0.0.0:9000", https: "[::]:9443", metrics: null }
  trusted_proxy_cidrs: ["10.0.0.0/8", "fc00::/7"]
  signout_propagation_timeout_ms: 500
  shutdown_grace_seconds: 25
  certificate_watch_interval_seconds: 300
  workers: 2
cluster:
  nats: { servers: ["nats://127.0.0.1:4222"], stream: PORTCULLIS_SESSIONS, replicas: 3, user: null, password: null, token: null, creds_file: null, tls: null }
  redis: { url: "redis://127.0.0.1:6379", key_prefix: "portcullis:", tls: null, sentinels: null, sentinel_name: null, cluster_nodes: null, password: null }
providers:
  - name: test
    application_slug: test-app
    mode: proxy
    external_host: https://app.company/
    internal_host: http://127.0.0.1:8080
    internal_host_ssl_validation: false
    issuer: https://idp.company/application/o/test/
    client_id: portcullis-test
    client_secret: s3cret
    scopes: [openid, profile, email, groups]
    cookie_secret: "abcdefghijklmnopqrstuvwxyz012345"
    cookie_domain: ""
    skip_path_regex: |
      ^/public/
    access_token_validity: 3600
    basic_auth_enabled: true
    basic_auth_user_attribute: basic_user
    basic_auth_password_attribute: basic_password
    intercept_header_auth: false
    post_logout_redirect_uri: https://app.company/bye
    backchannel_logout_max_age: 120
    header_auth_cache_seconds: 30
    strip_headers: [X-Forwarded-User]
    tls: { cert_file: null, key_file: null }
    scope_mappings:
      - name: per-user backend
        expression: '{"ak_proxy": {"backend_override": "http://foo.bar.baz/" + request.user.username}}'
  - name: docs
    mode: forward_domain
    external_host: https://auth.company
    issuer: https://idp.company/application/o/docs/
    client_id: docs
    client_secret: docs-secret
    cookie_secret: "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    cookie_domain: company
`;

t.test('a full valid file round-trips, every field as written and defaults filled in', async (t) => {
  const result = loadConfig({ text: FULL_YAML, env: {} });
  t.same(problemsOf(result), []);
  if (!result.ok) return;
  const expected: PortcullisConfig = {
    log_level: 'debug',
    outpost: {
      name: 'Edge Outpost',
      listen: { http: '0.0.0.0:9000', https: '[::]:9443', metrics: null },
      trusted_proxy_cidrs: ['10.0.0.0/8', 'fc00::/7'],
      signout_propagation_timeout_ms: 500,
      shutdown_grace_seconds: 25,
      certificate_watch_interval_seconds: 300,
      workers: 2,
    },
    cluster: {
      nats: {
        servers: ['nats://127.0.0.1:4222'],
        stream: 'PORTCULLIS_SESSIONS',
        config_bucket: null,
        replicas: 3,
        user: null,
        password: null,
        token: null,
        creds_file: null,
        tls: null,
      },
      redis: {
        url: 'redis://127.0.0.1:6379',
        key_prefix: 'portcullis:',
        tls: null,
        sentinels: null,
        sentinel_name: null,
        cluster_nodes: null,
        password: null,
      },
    },
    providers: [
      {
        name: 'test',
        application_slug: 'test-app',
        mode: 'proxy',
        external_host: 'https://app.company',
        internal_host: 'http://127.0.0.1:8080',
        internal_host_ssl_validation: false,
        issuer: 'https://idp.company/application/o/test/',
        client_id: 'portcullis-test',
        client_secret: 's3cret',
        scopes: ['openid', 'profile', 'email', 'groups'],
        cookie_secret: 'abcdefghijklmnopqrstuvwxyz012345',
        cookie_domain: '',
        skip_path_regex: '^/public/\n',
        access_token_validity: 3600,
        refresh: false,
        refresh_interval: null,
        idle_timeout: null,
        basic_auth_enabled: true,
        basic_auth_user_attribute: 'basic_user',
        basic_auth_password_attribute: 'basic_password',
        intercept_header_auth: false,
        post_logout_redirect_uri: 'https://app.company/bye',
        backchannel_logout_max_age: 120,
        header_auth_cache_seconds: 30,
        strip_headers: ['X-Forwarded-User'],
        tls: { cert_file: null, key_file: null },
        scope_mappings: [
          {
            name: 'per-user backend',
            expression: '{"ak_proxy": {"backend_override": "http://foo.bar.baz/" + request.user.username}}',
          },
        ],
      },
      {
        name: 'docs',
        application_slug: 'docs',
        mode: 'forward_domain',
        external_host: 'https://auth.company',
        internal_host: null,
        internal_host_ssl_validation: true,
        issuer: 'https://idp.company/application/o/docs/',
        client_id: 'docs',
        client_secret: 'docs-secret',
        scopes: ['openid', 'profile', 'email'],
        cookie_secret: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345',
        cookie_domain: 'company',
        skip_path_regex: '',
        access_token_validity: 86400,
        refresh: false,
        refresh_interval: null,
        idle_timeout: null,
        basic_auth_enabled: false,
        basic_auth_user_attribute: '',
        basic_auth_password_attribute: '',
        intercept_header_auth: true,
        post_logout_redirect_uri: null,
        backchannel_logout_max_age: 300,
        header_auth_cache_seconds: 60,
        strip_headers: [
          'X-Forwarded-User',
          'X-Forwarded-Email',
          'X-Forwarded-Groups',
          'X-Forwarded-Preferred-Username',
          'X-Forwarded-Access-Token',
          'Remote-User',
          'Remote-Groups',
          'Remote-Email',
          'Remote-Name',
          'X-Auth-Request-*',
        ],
        tls: { cert_file: null, key_file: null },
        scope_mappings: [],
      },
    ],
  };
  t.strictSame(result.config, expected);
  t.same(result.warnings, []);
});

t.test('a minimal file gets every outpost default and embedded mode (cluster null)', async (t) => {
  const result = loadObject({ providers: [minimalProvider()] });
  t.ok(result.ok);
  if (!result.ok) return;
  t.strictSame(result.config.log_level, 'info');
  t.strictSame(result.config.outpost, {
    name: 'Portcullis Outpost',
    listen: { http: '0.0.0.0:9000', https: '0.0.0.0:9443', metrics: '0.0.0.0:9300' },
    trusted_proxy_cidrs: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
    signout_propagation_timeout_ms: 250,
    shutdown_grace_seconds: 10,
    certificate_watch_interval_seconds: 60,
    workers: 1,
  });
  t.equal(result.config.cluster, null);
  t.equal(result.config.providers[0]?.application_slug, 'test', 'application_slug defaults to name');
});

t.test('an empty cluster mapping means cluster mode with default NATS and Redis', async (t) => {
  const result = loadConfig({ text: `cluster: {}\nproviders: ${JSON.stringify([minimalProvider()])}`, env: {} });
  t.ok(result.ok);
  if (!result.ok) return;
  t.strictSame(result.config.cluster?.nats.servers, ['nats://127.0.0.1:4222']);
  t.equal(result.config.cluster?.redis.url, 'redis://127.0.0.1:6379');
});

t.test('null turns the https and metrics listeners off', async (t) => {
  const text = `outpost:\n  listen:\n    https: null\n    metrics: ~\nproviders: ${JSON.stringify([minimalProvider()])}`;
  const result = loadConfig({ text, env: {} });
  t.strictSame(result.ok && result.config.outpost.listen, { http: '0.0.0.0:9000', https: null, metrics: null });
});

t.test('null on a key that cannot be null is a problem pointing at the default', async (t) => {
  const text = `outpost:\n  name:\n  listen: { http: null }\nproviders: ${JSON.stringify([minimalProvider({ scopes: null, basic_auth_enabled: null })])}`;
  const problems = problemsOf(loadConfig({ text, env: {} }));
  t.strictSame(
    problems.map((p) => [p.path, p.reason]),
    [
      ['outpost.name', 'may not be null'],
      ['outpost.listen.http', 'may not be null'],
      ['providers[0].scopes', 'may not be null'],
      ['providers[0].basic_auth_enabled', 'may not be null'],
    ],
  );
  t.equal(problems[1]?.fix, 'remove outpost.listen.http to get the default ("0.0.0.0:9000"), or set outpost.listen.http to a host:port address, e.g. 0.0.0.0:9000');
});

t.test('an empty section (YAML null) reads as all defaults', async (t) => {
  const text = `outpost:\nproviders:\n  - ${JSON.stringify(minimalProvider({ tls: null }))}`;
  const result = loadConfig({ text, env: {} });
  t.equal(result.ok && result.config.outpost.name, 'Portcullis Outpost');
  t.strictSame(result.ok && result.config.providers[0]?.tls, { cert_file: null, key_file: null });
});

t.test('a file with five different mistakes yields all five problems with their paths', async (t) => {
  const text = `
log_level: verbose
outpost:
  listen:
    http: "0.0.0.0:99999"
providers:
  - name: test
    mode: proxy
    external_host: https://app.company
    internal_host: http://127.0.0.1:8080
    issuer: https://idp.company/application/o/test/
    client_secret: s3cret
    cookie_secret: tooshort
    access_token_validty: 10
`;
  const result = loadConfig({ text, env: {} });
  t.notOk(result.ok);
  t.strictSame(
    problemsOf(result).map((p) => p.path).sort(),
    [
      'log_level',
      'outpost.listen.http',
      'providers[0].access_token_validty',
      'providers[0].client_id',
      'providers[0].cookie_secret',
    ].sort(),
  );
  const typo = problemsOf(result).find((p) => p.path === 'providers[0].access_token_validty');
  t.match(typo?.reason, /did you mean "access_token_validity"/);
});

t.test('no file and no text starts from {} and reports the missing providers', async (t) => {
  const result = loadConfig({ env: {} });
  t.strictSame(
    problemsOf(result).map((p) => p.path),
    ['providers'],
  );
});

t.test('the file comes from PORTCULLIS_CONFIG when opts.file is absent', async (t) => {
  const dir = t.testdir({ 'portcullis.yaml': `providers: ${JSON.stringify([minimalProvider({ name: 'from-env-file' })])}` });
  const result = loadConfig({ env: { PORTCULLIS_CONFIG: join(dir, 'portcullis.yaml') } });
  t.equal(result.ok && result.config.providers[0]?.name, 'from-env-file');
});

t.test('opts.file wins over PORTCULLIS_CONFIG', async (t) => {
  const dir = t.testdir({
    'a.yaml': `providers: ${JSON.stringify([minimalProvider({ name: 'a' })])}`,
    'b.yaml': `providers: ${JSON.stringify([minimalProvider({ name: 'b' })])}`,
  });
  const result = loadConfig({ file: join(dir, 'a.yaml'), env: { PORTCULLIS_CONFIG: join(dir, 'b.yaml') } });
  t.equal(result.ok && result.config.providers[0]?.name, 'a');
});

t.test('a JSON file with a .yaml extension loads', async (t) => {
  const json = JSON.stringify({ log_level: 'warn', providers: [minimalProvider()] }, null, 2);
  const dir = t.testdir({ 'config.yaml': json });
  const result = loadConfig({ file: join(dir, 'config.yaml'), env: {} });
  t.equal(result.ok && result.config.log_level, 'warn');
});

t.test('an unreadable config file is a problem naming the path and the OS error', async (t) => {
  const missing = join(t.testdir({}), 'nope.yaml');
  const result = loadConfig({ file: missing, env: {} });
  const [problem, ...rest] = problemsOf(result);
  t.same(rest, []);
  t.equal(problem?.path, `file ${missing}`);
  t.match(problem?.reason, /ENOENT/);
});

t.test('a YAML syntax error is a problem with line and column, and env mistakes are still listed', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'log_level: info\noutpost:\n  name: a: b\n' });
  const file = join(dir, 'bad.yaml');
  const result = loadConfig({ file, env: { PORTCULLIS_NOPE: '1' } });
  const problems = problemsOf(result);
  t.equal(problems.length, 2);
  t.equal(problems[0]?.path, `file ${file} (line 3, column 9)`);
  t.match(problems[0]?.reason, /^YAML: Nested mappings are not allowed/);
  t.notMatch(problems[0]?.reason, /\n/, 'the reason is one line');
  t.equal(problems[1]?.path, 'env PORTCULLIS_NOPE');
});

t.test('a duplicate key and tab indentation are YAML problems with a specific fix', async (t) => {
  const dup = problemsOf(loadConfig({ text: 'log_level: info\nlog_level: warn\n', env: {} }));
  t.equal(dup[0]?.path, 'config text (line 2, column 1)');
  t.match(dup[0]?.fix, /repeated key at line 2/);
  const tab = problemsOf(loadConfig({ text: 'outpost:\n\tname: x\n', env: {} }));
  t.match(tab[0]?.fix, /spaces instead of tabs/);
});

t.test('a second YAML document is a problem telling to keep one', async (t) => {
  const problems = problemsOf(loadConfig({ text: 'log_level: info\n---\nlog_level: warn\n', env: {} }));
  t.equal(problems[0]?.path, 'config text (line 2, column 1)');
  t.match(problems[0]?.fix, /single YAML document/);
});

t.test('an unknown YAML tag is a warning, and the value is still read', async (t) => {
  const text = `log_level: !loud debug\nproviders: ${JSON.stringify([minimalProvider()])}`;
  const result = loadConfig({ text, env: {} });
  t.equal(result.ok && result.config.log_level, 'debug');
  t.strictSame(
    result.warnings.map((w) => w.path),
    ['config text (line 1, column 12)'],
  );
});

t.test('a missing enum value lists the choices, a missing secret names its _file alternative', async (t) => {
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ mode: undefined, client_secret: undefined })] }));
  t.strictSame(
    problems.map((p) => p.fix),
    [
      'set providers[0].mode to one of: proxy, forward_single, forward_domain',
      'set providers[0].client_secret (or client_secret_file) to the OAuth2 client secret from the IdP',
    ],
  );
});

t.test('an alias without its anchor is a problem, not an exception', async (t) => {
  const problems = problemsOf(loadConfig({ text: 'log_level: *nowhere\n', env: {} }));
  t.equal(problems.length, 1);
  t.match(problems[0]?.reason, /YAML/);
});

t.test('a top level that is not a mapping is one problem', async (t) => {
  const problems = problemsOf(loadConfig({ text: '- a\n- b\n', env: {} }));
  t.equal(problems.length, 1);
  t.match(problems[0]?.reason, /top level must be a mapping, got a list/);
});

t.test('an http issuer on a remote host is a warning, not a problem; on localhost nothing', async (t) => {
  const remote = loadObject({ providers: [minimalProvider({ issuer: 'http://idp.company/application/o/test/' })] });
  t.ok(remote.ok);
  t.strictSame(
    remote.warnings.map((w) => w.path),
    ['providers[0].issuer'],
  );
  for (const issuer of ['http://localhost:9000/o/', 'http://idp.localhost/o/', 'http://127.0.0.1/o/', 'http://[::1]:8000/o/']) {
    const local = loadObject({ providers: [minimalProvider({ issuer })] });
    t.strictSame(local.warnings, [], issuer);
  }
});

t.test('formatProblem prints <path>: <reason> — <fix> on one line', async (t) => {
  t.equal(formatProblem({ path: 'a.b', reason: 'is wrong', fix: 'set it' }), 'a.b: is wrong — set it');
  t.equal(formatProblem({ path: 'p', reason: 'line one\nline two', fix: 'x' }), 'p: line one line two — x');
});

t.test('ConfigError carries the code, every problem and a message listing them', async (t) => {
  const result = loadConfig({ env: {} });
  if (result.ok) return t.fail('expected problems');
  const err = new ConfigError(result.problems);
  t.equal(err.code, 'PORTCULLIS_CONFIG_INVALID');
  t.equal(err.statusCode, 500);
  t.equal(err.expose, false);
  t.equal(err.problems, result.problems);
  t.match(err.message, /invalid configuration \(1 problem\):\n {2}providers: /);
  t.ok(err instanceof Error);
});

t.test('an unreadable (permission denied) file reports EACCES', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, async (t) => {
  const dir = t.testdir({ 'locked.yaml': 'log_level: info\n' });
  const file = join(dir, 'locked.yaml');
  chmodSync(file, 0o000);
  t.match(problemsOf(loadConfig({ file, env: {} }))[0]?.reason, /EACCES/);
});
