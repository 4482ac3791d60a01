// Tests that urlparse splits URLs exactly as Python's urllib.parse.urlparse (expected values produced by CPython).
import t from 'tap';
import { compileExpression } from './compile-expression.ts';
import type { MappingContext } from './mapping-context.ts';
import { parsePythonUrl } from './python-urlparse.ts';

const parts = (scheme: string, netloc: string, path: string, query = '', fragment = '', hostname = '', port = '', params = '') => ({
  scheme,
  netloc,
  path,
  params,
  query,
  fragment,
  hostname,
  port,
});

const cases = [
  { name: 'http with port: netloc keeps host:port, port is split out', url: 'http://internal:8080', want: parts('http', 'internal:8080', '', '', '', 'internal', '8080') },
  { name: 'http without port: port is empty', url: 'http://internal', want: parts('http', 'internal', '', '', '', 'internal', '') },
  { name: 'https with root path', url: 'https://app.example.com/', want: parts('https', 'app.example.com', '/', '', '', 'app.example.com') },
  {
    name: 'path, query and fragment are split; hostname is lowercased but netloc is not',
    url: 'https://App.Example.COM:8443/a/b?x=1&y=2#frag',
    want: parts('https', 'App.Example.COM:8443', '/a/b', 'x=1&y=2', 'frag', 'app.example.com', '8443'),
  },
  { name: 'userinfo stays in netloc but not in hostname', url: 'http://user:pw@host:81/p', want: parts('http', 'user:pw@host:81', '/p', '', '', 'host', '81') },
  { name: 'bracketed IPv6 host with port', url: 'http://[::1]:8080/x', want: parts('http', '[::1]:8080', '/x', '', '', '::1', '8080') },
  { name: 'IPv6 zone id keeps its case', url: 'http://[FE80::1%Eth0]/', want: parts('http', '[FE80::1%Eth0]', '/', '', '', 'fe80::1%Eth0') },
  { name: 'host:port without scheme parses as a scheme (Python 3.9+)', url: 'internal-host:8080', want: parts('internal-host', '', '8080') },
  { name: 'scheme-relative URL has a netloc', url: '//host/path', want: parts('', 'host', '/path', '', '', 'host') },
  { name: 'no scheme and no // means everything is path', url: 'host/path', want: parts('', '', 'host/path') },
  { name: ';params of the last segment are split from the path', url: 'http://host/a;p?q', want: parts('http', 'host', '/a', 'q', '', 'host', '', 'p') },
  { name: 'scheme is lowercased and the port is Python int formatted', url: 'HTTP://h:080/', want: parts('http', 'h:080', '/', '', '', 'h', '80') },
  { name: 'leading spaces and tab/newline characters are removed', url: '  http://h/\tx\n', want: parts('http', 'h', '/x', '', '', 'h') },
  { name: 'non-hierarchical scheme', url: 'mailto:a@b.c', want: parts('mailto', '', 'a@b.c') },
  { name: 'empty port after colon is absent', url: 'http://h:/x', want: parts('http', 'h:', '/x', '', '', 'h') },
  { name: 'file URL with empty netloc', url: 'file:///etc/hosts', want: parts('file', '', '/etc/hosts') },
  { name: 'query before fragment', url: 'http://h?q#f', want: parts('http', 'h', '', 'q', 'f', 'h') },
  { name: 'a ? after # belongs to the fragment', url: 'http://h#f?q', want: parts('http', 'h', '', '', 'f?q', 'h') },
];

for (const c of cases) {
  t.test(`parsePythonUrl: ${c.name}`, async (t) => {
    t.same(parsePythonUrl(c.url), c.want);
  });
}

const errors = [
  { name: 'unbalanced bracket', url: 'http://[::1', message: /Invalid IPv6 URL/ },
  { name: 'non-numeric port', url: 'http://h:abc/', message: /Port could not be cast to integer value as 'abc'/ },
  { name: 'port above 65535', url: 'http://h:70000/', message: /Port out of range 0-65535/ },
  { name: 'IPv4 address in brackets', url: 'http://[1.2.3.4]/', message: /IPv4 address cannot be in brackets/ },
  { name: 'text before the bracket (CVE-2024-11168 check)', url: 'http://x[::1]/', message: /Invalid IPv6 URL/ },
  { name: 'not an address in brackets', url: 'http://[nothost]/', message: /does not appear to be an IPv4 or IPv6 address/ },
];

for (const c of errors) {
  t.test(`parsePythonUrl rejects ${c.name} like Python's ValueError`, async (t) => {
    t.throws(() => parsePythonUrl(c.url), c.message);
  });
}

const ctx = (internalHost: string): MappingContext => ({
  request: { user: { username: 'u', email: '', name: '', uid: '', groups: [], attributes: {} } },
  claims: {},
  provider: { name: 'p', proxyprovider: { internal_host: internalHost, external_host: 'https://app.example.com' } },
});

t.test('CEL urlparse(provider.proxyprovider.internal_host).netloc gives host:port', async (t) => {
  const expr = compileExpression('urlparse(provider.proxyprovider.internal_host).netloc');
  t.equal(expr.evaluate(ctx('http://backend.internal:8080/app')), 'backend.internal:8080');
  t.equal(expr.evaluate(ctx('https://backend.internal')), 'backend.internal');
});

t.test('CEL urlparse returns every field as a string map', async (t) => {
  const expr = compileExpression('urlparse("https://h.example:8443/p?q=1#f")');
  t.same(expr.evaluate(ctx('')), parts('https', 'h.example:8443', '/p', 'q=1', 'f', 'h.example', '8443'));
});

t.test('CEL urlparse on an invalid URL is an evaluation error naming the reason', async (t) => {
  const expr = compileExpression('urlparse(provider.proxyprovider.internal_host).port');
  t.throws(() => expr.evaluate(ctx('http://h:99999')), { code: 'PORTCULLIS_EXPRESSION_EVAL', message: /Port out of range/ });
});

t.test('CEL urlparse of a non-string is an evaluation error (no matching overload)', async (t) => {
  const expr = compileExpression('urlparse(1)');
  t.throws(() => expr.evaluate(ctx('')), { code: 'PORTCULLIS_EXPRESSION_EVAL', message: /no matching overload for 'urlparse'/ });
});
