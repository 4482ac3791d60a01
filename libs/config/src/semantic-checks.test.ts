// Table tests of the semantic checks: URLs, listen addresses, CIDRs, uniqueness, regexes, CEL, cookie domain, cluster.
import { join } from 'node:path';
import { createSelfSignedCertificate } from '@portcullis/testkit';
import t from 'tap';
import { loadObject, minimalProvider, problemsOf } from './test-fixtures.ts';

const forwardDomain = (overrides: Record<string, unknown> = {}) =>
  minimalProvider({ mode: 'forward_domain', internal_host: null, external_host: 'https://auth.company', cookie_domain: 'company', ...overrides });
const withProvider = (overrides: Record<string, unknown>) => ({ providers: [minimalProvider(overrides)] });
const withCluster = (cluster: Record<string, unknown>) => ({ cluster, providers: [minimalProvider()] });

const bad: Array<{ name: string; config: Record<string, unknown>; path: string; reason: RegExp; fix?: RegExp }> = [
  { name: 'external_host that is not a URL', config: withProvider({ external_host: 'app.company' }), path: 'providers[0].external_host', reason: /is not an absolute URL/ },
  { name: 'external_host with another scheme', config: withProvider({ external_host: 'ftp://app.company' }), path: 'providers[0].external_host', reason: /scheme "ftp:" is not http: or https:/ },
  { name: 'external_host with a query', config: withProvider({ external_host: 'https://app.company/?a=1' }), path: 'providers[0].external_host', reason: /query, fragment or credentials/ },
  { name: 'external_host with a fragment', config: withProvider({ external_host: 'https://app.company/#x' }), path: 'providers[0].external_host', reason: /query, fragment or credentials/ },
  { name: 'proxy mode without internal_host', config: withProvider({ internal_host: null }), path: 'providers[0].internal_host', reason: /is required in proxy mode/, fix: /upstream URL/ },
  { name: 'internal_host with another scheme', config: withProvider({ internal_host: 'tcp://10.0.0.1:80' }), path: 'providers[0].internal_host', reason: /is not http: or https:/ },
  { name: 'issuer with another scheme', config: withProvider({ issuer: 'ldap://idp' }), path: 'providers[0].issuer', reason: /is not http: or https:/ },
  { name: 'issuer with a query', config: withProvider({ issuer: 'https://idp.company/o/?x=1' }), path: 'providers[0].issuer', reason: /query or fragment/ },
  {
    name: 'cookie_secret shorter than 32 characters',
    config: withProvider({ cookie_secret: 'a'.repeat(31) }),
    path: 'providers[0].cookie_secret',
    reason: /is 31 characters long; at least 32/,
    fix: /^set providers\[0\]\.cookie_secret to at least 32 random characters, e\.g\. the output of `openssl rand -base64 32`$/,
  },
  { name: 'listen port out of range', config: { outpost: { listen: { http: '0.0.0.0:99999' } }, providers: [minimalProvider()] }, path: 'outpost.listen.http', reason: /port "99999" is not a number from 1 to 65535/ },
  { name: 'listen port 0', config: { outpost: { listen: { metrics: '127.0.0.1:0' } }, providers: [minimalProvider()] }, path: 'outpost.listen.metrics', reason: /port "0"/ },
  { name: 'listen without a port', config: { outpost: { listen: { http: '0.0.0.0' } }, providers: [minimalProvider()] }, path: 'outpost.listen.http', reason: /is not of the form host:port/ },
  { name: 'listen IPv6 without brackets', config: { outpost: { listen: { https: '::' } }, providers: [minimalProvider()] }, path: 'outpost.listen.https', reason: /needs brackets and a port/ },
  { name: 'listen without a host', config: { outpost: { listen: { http: ':9000' } }, providers: [minimalProvider()] }, path: 'outpost.listen.http', reason: /has no host/ },
  { name: 'listen bracketed non-IPv6', config: { outpost: { listen: { http: '[localhost]:9000' } }, providers: [minimalProvider()] }, path: 'outpost.listen.http', reason: /is not an IPv6 address/ },
  { name: 'two listeners on one port', config: { outpost: { listen: { metrics: '127.0.0.1:9000' } }, providers: [minimalProvider()] }, path: 'outpost.listen.metrics', reason: /already taken by outpost.listen.http/ },
  { name: 'a CIDR with a bad address', config: { outpost: { trusted_proxy_cidrs: ['10.0.0.300/8'] }, providers: [minimalProvider()] }, path: 'outpost.trusted_proxy_cidrs[0]', reason: /is not an IP address/ },
  { name: 'a CIDR with a too long prefix', config: { outpost: { trusted_proxy_cidrs: ['10.0.0.0/8', '10.0.0.0/33'] }, providers: [minimalProvider()] }, path: 'outpost.trusted_proxy_cidrs[1]', reason: /prefix length "33" is not a number from 0 to 32/ },
  { name: 'a bare address where a CIDR is expected', config: { outpost: { trusted_proxy_cidrs: ['::1'] }, providers: [minimalProvider()] }, path: 'outpost.trusted_proxy_cidrs[0]', reason: /has no prefix length \(a single address is ::1\/128\)/ },
  {
    name: 'gateway workers in embedded mode',
    config: { outpost: { workers: 2 }, providers: [minimalProvider()] },
    path: 'outpost.workers',
    reason: /^2 gateway workers need cluster: \(in embedded mode/,
    fix: /^set outpost.workers to 1, or configure cluster: with NATS and Redis$/,
  },
  { name: 'an outpost name with a newline', config: { outpost: { name: 'a\nb' }, providers: [minimalProvider()] }, path: 'outpost.name', reason: /control characters/ },
  {
    name: 'two providers with one name',
    config: { providers: [minimalProvider(), minimalProvider({ external_host: 'https://other.company' })] },
    path: 'providers[1].name',
    reason: /"test" is already used by providers\[0\]/,
  },
  {
    name: 'two providers with one external_host (after normalisation)',
    config: { providers: [minimalProvider(), minimalProvider({ name: 'b', external_host: 'https://APP.company/' })] },
    path: 'providers[1].external_host',
    reason: /"https:\/\/app.company" is already used by providers\[0\]/,
  },
  {
    name: 'two providers on one host with different paths (requests are routed by host: the second is never reached)',
    config: {
      providers: [
        minimalProvider({ external_host: 'https://app.company/a' }),
        minimalProvider({ name: 'b', client_id: 'b', external_host: 'https://app.company/b' }),
      ],
    },
    path: 'providers[1].external_host',
    reason: /"https:\/\/app.company\/b" has the host of providers\[0\] \(https:\/\/app.company\/a\).*never receive/,
    fix: /own host/,
  },
  {
    name: 'a skip_path_regex line that does not compile, with its line number',
    config: withProvider({ skip_path_regex: '^/public/\n\n^/(?!admin)\n^/ok$' }),
    path: 'providers[0].skip_path_regex (line 3)',
    reason: /^"\^\/\(\?!admin\)" does not compile: /,
    fix: /line 3.*RE2/,
  },
  {
    name: 'a scope mapping that does not compile, with its index',
    config: withProvider({
      scope_mappings: [
        { name: 'good', expression: '{"ak_proxy": {}}' },
        { name: 'broken', expression: '{"ak_proxy": ' },
      ],
    }),
    path: 'providers[0].scope_mappings[1].expression',
    reason: /^mapping "broken" does not compile: /,
  },
  { name: 'forward_domain without cookie_domain', config: { providers: [forwardDomain({ cookie_domain: '' })] }, path: 'providers[0].cookie_domain', reason: /is required in forward_domain mode/, fix: /e\.g\. company$/ },
  {
    name: 'forward_domain host outside cookie_domain by a dot boundary',
    config: { providers: [forwardDomain({ external_host: 'https://auth.evilcompany', cookie_domain: 'company' })] },
    path: 'providers[0].cookie_domain',
    reason: /does not contain the external host auth.evilcompany/,
  },
  { name: 'cookie_domain with a scheme', config: { providers: [forwardDomain({ cookie_domain: 'https://company' })] }, path: 'providers[0].cookie_domain', reason: /is not a bare domain/ },
  { name: 'cookie_domain not covering the host in proxy mode', config: withProvider({ cookie_domain: 'other.company' }), path: 'providers[0].cookie_domain', reason: /does not contain the external host app.company/ },
  { name: 'scopes without openid', config: withProvider({ scopes: ['profile', 'email'] }), path: 'providers[0].scopes', reason: /does not include openid/ },
  { name: 'a scope with whitespace', config: withProvider({ scopes: ['openid', 'profile email'] }), path: 'providers[0].scopes[1]', reason: /contains whitespace/ },
  { name: 'post_logout_redirect_uri that is not http(s)', config: withProvider({ post_logout_redirect_uri: 'javascript:alert(1)' }), path: 'providers[0].post_logout_redirect_uri', reason: /is not http: or https:/ },
  { name: 'basic auth without a password attribute', config: withProvider({ basic_auth_enabled: true }), path: 'providers[0].basic_auth_password_attribute', reason: /is required when basic_auth_enabled is true/ },
  { name: 'a strip_headers entry that is not a header name', config: withProvider({ strip_headers: ['X Bad'] }), path: 'providers[0].strip_headers[0]', reason: /is not a header name/ },
  { name: 'an application_slug that is not a slug', config: withProvider({ application_slug: 'my app' }), path: 'providers[0].application_slug', reason: /is not a slug/ },
  { name: 'tls cert_file without key_file', config: withProvider({ tls: { cert_file: '/dev/null' } }), path: 'providers[0].tls.key_file', reason: /is required when providers\[0\]\.tls\.cert_file is set/ },
  { name: 'tls files that cannot be read', config: withProvider({ tls: { cert_file: '/nonexistent/c.pem', key_file: '/nonexistent/k.pem' } }), path: 'providers[0].tls.cert_file', reason: /cannot read \/nonexistent\/c.pem: ENOENT/ },
  { name: 'an empty NATS server list', config: withCluster({ nats: { servers: [] } }), path: 'cluster.nats.servers', reason: /is empty/ },
  { name: 'a NATS server with an http URL', config: withCluster({ nats: { servers: ['http://nats:4222'] } }), path: 'cluster.nats.servers[0]', reason: /is not a nats:\/\/, tls:\/\/ or ws:\/\/ URL/ },
  { name: 'a NATS stream name with a dot', config: withCluster({ nats: { stream: 'a.b' } }), path: 'cluster.nats.stream', reason: /not a valid JetStream stream name/ },
  { name: 'a config bucket name with a dot', config: withCluster({ nats: { config_bucket: 'portcullis.config' } }), path: 'cluster.nats.config_bucket', reason: /not a valid NATS KV bucket name/, fix: /or null/ },
  { name: 'an empty config bucket name', config: withCluster({ nats: { config_bucket: '' } }), path: 'cluster.nats.config_bucket', reason: /not a valid NATS KV bucket name/ },
  { name: 'a NATS user without password', config: withCluster({ nats: { user: 'u' } }), path: 'cluster.nats.password', reason: /is required when cluster.nats.user is set/ },
  { name: 'two NATS authentication methods', config: withCluster({ nats: { token: 't', creds_file: '/dev/null' } }), path: 'cluster.nats', reason: /more than one authentication method \(token, creds_file\)/ },
  { name: 'an unreadable NATS creds file', config: withCluster({ nats: { creds_file: '/nonexistent/x.creds' } }), path: 'cluster.nats.creds_file', reason: /ENOENT/ },
  { name: 'a NATS TLS CA that cannot be read', config: withCluster({ nats: { tls: { ca_file: '/nonexistent/ca.pem' } } }), path: 'cluster.nats.tls.ca_file', reason: /ENOENT/ },
  { name: 'a Redis URL with another scheme', config: withCluster({ redis: { url: 'http://redis:6379' } }), path: 'cluster.redis.url', reason: /is not a redis:\/\/ or rediss:\/\/ URL/ },
  { name: 'Redis sentinels without a master name', config: withCluster({ redis: { sentinels: ['s1:26379'] } }), path: 'cluster.redis.sentinel_name', reason: /is required when cluster.redis.sentinels is set/ },
  {
    name: 'Redis sentinels and cluster nodes together',
    config: withCluster({ redis: { sentinels: ['s1:26379'], sentinel_name: 'm', cluster_nodes: ['n1:6379'] } }),
    path: 'cluster.redis',
    reason: /both sentinels and cluster_nodes/,
  },
  { name: 'a Redis cluster node without a port', config: withCluster({ redis: { cluster_nodes: ['n1'] } }), path: 'cluster.redis.cluster_nodes[0]', reason: /host:port/ },
];

for (const c of bad) {
  t.test(`semantic problem: ${c.name}`, async (t) => {
    const problems = problemsOf(loadObject(c.config));
    const problem = problems.find((p) => p.path === c.path);
    t.ok(problem, `a problem at ${c.path} among ${JSON.stringify(problems)}`);
    t.match(problem?.reason, c.reason);
    if (c.fix) t.match(problem?.fix, c.fix);
  });
}

const good: Array<{ name: string; config: Record<string, unknown> }> = [
  { name: 'forward_domain with a leading-dot cookie domain', config: { providers: [forwardDomain({ cookie_domain: '.company' })] } },
  { name: 'forward_domain whose host is the cookie domain itself', config: { providers: [forwardDomain({ external_host: 'https://company' })] } },
  { name: 'an external_host with a path', config: withProvider({ external_host: 'https://app.company/sub/' }) },
  { name: 'IPv6 and hostname listen addresses', config: { outpost: { listen: { http: '[::]:9000', https: 'localhost:9443', metrics: '[::1]:9300' } }, providers: [minimalProvider()] } },
  { name: 'blank lines in skip_path_regex', config: withProvider({ skip_path_regex: '^/public/\n\n  \n^/health$\n' }) },
  { name: 'Redis Sentinel with a master name', config: withCluster({ redis: { sentinels: ['s1:26379', '[fd00::1]:26379'], sentinel_name: 'mymaster' } }) },
  { name: 'NATS user and password, TLS with the system CAs', config: withCluster({ nats: { servers: ['tls://n1:4222', 'ws://n2:8080'], user: 'u', password: 'p', tls: {} } }) },
  { name: 'gateway workers in cluster mode', config: { outpost: { workers: 4 }, cluster: {}, providers: [minimalProvider()] } },
  { name: 'one gateway worker in embedded mode', config: { outpost: { workers: 1 }, providers: [minimalProvider()] } },
  { name: 'a forward_single provider without internal_host', config: withProvider({ mode: 'forward_single', internal_host: null }) },
];

for (const c of good) {
  t.test(`semantically valid: ${c.name}`, async (t) => {
    t.same(problemsOf(loadObject(c.config)), []);
  });
}

t.test('external_host is normalised: no trailing slash, lower-case host, default port dropped', async (t) => {
  const result = loadObject(withProvider({ external_host: 'https://App.Company:443/Sub/' }));
  t.equal(result.ok && result.config.providers[0]?.external_host, 'https://app.company/Sub');
});

t.test('internal_host in a forward mode is a warning that it is ignored', async (t) => {
  const result = loadObject(withProvider({ mode: 'forward_single' }));
  t.ok(result.ok);
  t.strictSame(
    result.warnings.map((w) => [w.path, w.reason]),
    [['providers[0].internal_host', 'is ignored in forward_single mode (the front proxy reaches the upstream itself)']],
  );
});

t.test('a readable certificate with its own key passes', async (t) => {
  const pair = createSelfSignedCertificate({ commonName: 'app.company', altNames: ['app.company'] });
  const dir = t.testdir({ 'c.pem': pair.cert, 'k.pem': pair.key });
  const result = loadObject(withProvider({ tls: { cert_file: join(dir, 'c.pem'), key_file: join(dir, 'k.pem') } }));
  t.same(problemsOf(result), []);
});

t.test('TLS files that are not a PEM certificate and its key are a config problem, not a crash at start', async (t) => {
  const pair = createSelfSignedCertificate();
  const other = createSelfSignedCertificate();
  const dir = t.testdir({ 'c.pem': pair.cert, 'k.pem': pair.key, 'other-k.pem': other.key, 'text.pem': 'not pem\n' });
  const files = (cert: string, key: string) => ({ cert_file: join(dir, cert), key_file: join(dir, key) });

  const mismatch = problemsOf(loadObject(withProvider({ tls: files('c.pem', 'other-k.pem') })));
  t.match(mismatch, [{ path: 'providers[0].tls.key_file', reason: /is not the private key of .*c\.pem/, fix: /providers\[0\]\.tls/ }]);

  const notPem = problemsOf(loadObject(withProvider({ tls: files('text.pem', 'k.pem') })));
  t.match(notPem, [{ path: 'providers[0].tls', reason: /not a PEM certificate and private key/ }]);

  const swapped = problemsOf(loadObject(withProvider({ tls: files('k.pem', 'c.pem') })));
  t.equal(swapped.length, 1, 'cert and key given the wrong way round');

  const cluster = problemsOf(loadObject(withCluster({ redis: { tls: files('c.pem', 'other-k.pem') } })));
  t.match(cluster, [{ path: 'cluster.redis.tls.key_file', reason: /is not the private key/ }]);
});

t.test('an expired certificate, or one not valid yet, is a warning naming the file, the date and what to do (not a problem: it must not keep the process from starting); a client certificate too', async (t) => {
  const host = { commonName: 'app.company', altNames: ['app.company'] };
  const expired = createSelfSignedCertificate({ ...host, notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-03-04T05:06:07Z') });
  const future = createSelfSignedCertificate({ ...host, notBefore: new Date('2060-01-01T00:00:00Z'), notAfter: new Date('2061-01-01T00:00:00Z') });
  const dir = t.testdir({ 'old.pem': expired.cert, 'old-k.pem': expired.key, 'new.pem': future.cert, 'new-k.pem': future.key });
  const files = (name: string) => ({ cert_file: join(dir, `${name}.pem`), key_file: join(dir, `${name}-k.pem`) });

  const old = loadObject(withProvider({ tls: files('old') }));
  t.equal(old.ok, true, 'the config still loads');
  t.match(old.warnings, [
    {
      path: 'providers[0].tls.cert_file',
      reason: new RegExp(`the certificate in ${join(dir, 'old.pem')} expired on 2021-03-04T05:06:07Z \\(notAfter\\), so every client refuses`),
      fix: /renew/,
    },
  ]);
  t.equal(old.warnings.length, 1);

  const notYet = loadObject(withProvider({ tls: files('new') }));
  t.equal(notYet.ok, true);
  t.match(notYet.warnings, [{ path: 'providers[0].tls.cert_file', reason: /is not valid before 2060-01-01T00:00:00Z \(notBefore; this machine's clock says /, fix: /clock/ }]);

  const client = loadObject(withCluster({ nats: { servers: ['nats://nats:4222'], tls: files('old') } }));
  t.match(client.warnings, [{ path: 'cluster.nats.tls.cert_file', reason: /expired on 2021-03-04T05:06:07Z/ }], 'a NATS server refuses an expired client certificate as well');
});

t.test('a certificate expiring within 14 days is a warning with its date, not a problem; one with more days left is neither', async (t) => {
  const host = { commonName: 'app.company', altNames: ['app.company'] };
  const soon = createSelfSignedCertificate({ ...host, days: 5 });
  const later = createSelfSignedCertificate({ ...host, days: 20 });
  const dir = t.testdir({ 'soon.pem': soon.cert, 'soon-k.pem': soon.key, 'later.pem': later.cert, 'later-k.pem': later.key });
  const files = (name: string) => ({ cert_file: join(dir, `${name}.pem`), key_file: join(dir, `${name}-k.pem`) });

  const warned = loadObject(withProvider({ tls: files('soon') }));
  t.ok(warned.ok, 'it still loads: the certificate is valid today');
  t.match(warned.warnings, [{ path: 'providers[0].tls.cert_file', reason: new RegExp(`the certificate in ${join(dir, 'soon.pem')} expires on \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z, in [45] days`), fix: /renew/ }]);

  const quiet = loadObject(withProvider({ tls: files('later') }));
  t.ok(quiet.ok);
  t.same(quiet.warnings, []);
});

t.test('a certificate that does not cover the external_host host is a warning naming the host and the names it has', async (t) => {
  const other = createSelfSignedCertificate({ commonName: 'other.company', altNames: ['other.company', '*.other.company'] });
  const wildcard = createSelfSignedCertificate({ commonName: 'example.com', altNames: ['*.example.com'] });
  const dir = t.testdir({ 'other.pem': other.cert, 'other-k.pem': other.key, 'wild.pem': wildcard.cert, 'wild-k.pem': wildcard.key });
  const files = (name: string) => ({ cert_file: join(dir, `${name}.pem`), key_file: join(dir, `${name}-k.pem`) });

  const mismatch = loadObject(withProvider({ tls: files('other') }));
  t.ok(mismatch.ok, 'not an error: it is served anyway, as authentik does');
  t.match(mismatch.warnings, [
    {
      path: 'providers[0].tls.cert_file',
      reason: new RegExp(`the certificate in ${join(dir, 'other.pem')} does not cover app\\.company, the host of providers\\[0\\]\\.external_host \\(it names DNS:other\\.company, DNS:\\*\\.other\\.company\\)`),
      fix: /subjectAltName/,
    },
  ]);

  const covered = loadObject(withProvider({ external_host: 'https://app.example.com', tls: files('wild') }));
  t.ok(covered.ok);
  t.same(covered.warnings, [], 'a wildcard certificate covers app.example.com');
});

t.test('every bad regex line is reported, each with its own line number', async (t) => {
  const problems = problemsOf(loadObject(withProvider({ skip_path_regex: '(\n^/ok$\n[z-a]' })));
  t.strictSame(
    problems.map((p) => p.path),
    ['providers[0].skip_path_regex (line 1)', 'providers[0].skip_path_regex (line 3)'],
  );
});

t.test('a NATS or Redis URL refused as invalid is named without its password', async (t) => {
  // A base64 password holds "/" and "+": unencoded, the "/" ends the authority and the URL does not parse.
  const problems = problemsOf(
    loadObject(withCluster({ nats: { servers: ['nats://portcullis:Zm9v/YmFy+cGw@nats-1:4222'] }, redis: { url: 'redis://:c2Vj/cmV0+eA@redis:6379' } })),
  );
  const nats = problems.find((p) => p.path === 'cluster.nats.servers[0]');
  const redis = problems.find((p) => p.path === 'cluster.redis.url');
  t.match(nats?.reason, /^"nats:\/\/\*\*\*@nats-1:4222" is not a nats:\/\//);
  t.match(redis?.reason, /^"redis:\/\/\*\*\*@redis:6379" is not a redis:\/\//);
  t.notMatch(JSON.stringify(problems), /Zm9v|YmFy|c2Vj|cmV0/, 'no part of either password in any problem');
});
