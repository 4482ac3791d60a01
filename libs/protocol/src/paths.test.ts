// Tests for request path normalisation used by skip-rule matching.
import t from 'tap';
import { hasFragmentOnRequestLine, normalizePath } from './paths.ts';

t.test('normalizePath decodes, resolves dot segments and merges slashes', async (t) => {
  const cases: Array<[string, string]> = [
    ['/', '/'],
    ['', '/'],
    ['/api/v1', '/api/v1'],
    ['/api/v1/', '/api/v1/'],
    ['/a//b///c', '/a/b/c'],
    ['//a', '/a'],
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/public/../admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/public/%2e/x', '/public/x'],
    ['/caf%C3%A9', '/café'],
    ['/a%20b', '/a b'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a/.hidden', '/a/.hidden'],
    ['/a/..b', '/a/..b'],
    ['/a/...', '/a/...'],
    ['relative/path', '/relative/path'],
    ['*', '/*'],
    ['/a%25b', '/a%b'],
  ];
  for (const [raw, expected] of cases) {
    const result = normalizePath(raw);
    t.equal(result?.path, expected, JSON.stringify(raw));
  }
});

t.test('normalizePath keeps plain paths skip-eligible', async (t) => {
  for (const raw of ['/', '', '/api/v1/', '/a//b', '/.well-known/x', '/a/..b', '/a/...', '/caf%C3%A9', '/a%20b', '*']) {
    t.equal(normalizePath(raw)?.skipEligible, true, JSON.stringify(raw));
  }
});

t.test('normalizePath never allow-lists paths with dot segments, raw or encoded', async (t) => {
  const cases: Array<[string, string]> = [
    ['/public/../admin', '/admin'],
    ['/admin/../public/x', '/public/x'],
    ['/admin//../public/x', '/public/x'],
    ['/admin/%2e%2e/public/x', '/public/x'],
    ['/admin/.%2E/public/x', '/public/x'],
    ['/./public/x', '/public/x'],
    ['/public/%2e/x', '/public/x'],
    ['/public/x/.', '/public/x/'],
    ['/..', '/'],
  ];
  for (const [raw, expected] of cases) t.same(normalizePath(raw), { path: expected, skipEligible: false }, JSON.stringify(raw));
});

t.test('normalizePath never allow-lists dot segments with path parameters (Tomcat, Jetty and Spring read "..;x" as "..")', async (t) => {
  for (const raw of ['/public/..;/admin', '/public/..;jsessionid=1/admin', '/public/.;/x', '/public/%2e%2e;/admin', '/public/x/..;']) {
    t.equal(normalizePath(raw)?.skipEligible, false, JSON.stringify(raw));
  }
  for (const raw of ['/public/a;b/x', '/public/..a;/x', '/public/;/x']) t.equal(normalizePath(raw)?.skipEligible, true, `${JSON.stringify(raw)} has no dot segment`);
});

t.test('normalizePath marks hidden separators and backslashes as not skip-eligible', async (t) => {
  const cases: Array<[string, string]> = [
    ['/public%2F..%2Fadmin', '/admin'],
    ['/public%2f..%2fadmin', '/admin'],
    ['/public/a%2Fb', '/public/a/b'],
    ['/public%5C..%5Cadmin', '/public\\..\\admin'],
    ['/public%3Fx', '/public?x'],
    ['/public%3fx', '/public?x'],
    ['/public%23x', '/public#x'],
    ['/public\\..\\admin', '/public\\..\\admin'],
    ['/public/..\\admin', '/public/..\\admin'],
  ];
  for (const [raw, expected] of cases) t.same(normalizePath(raw), { path: expected, skipEligible: false }, JSON.stringify(raw));
});

t.test('normalizePath refuses malformed escapes, bad UTF-8 and decoded NUL, CR or LF', async (t) => {
  for (const raw of ['/%', '/%2', '/%zz', '/a%g0', '/%FF', '/%C3', '/%00', '/a%0d%0ab', '/a%0Ab', '/a\nb', '/a\rb', '/a\u0000b']) {
    t.equal(normalizePath(raw), null, JSON.stringify(raw));
  }
});

t.test('normalizePath only decodes once', async (t) => {
  t.same(normalizePath('/%252e%252e/admin'), { path: '/%2e%2e/admin', skipEligible: true });
  t.same(normalizePath('/a%252Fb'), { path: '/a%2Fb', skipEligible: true });
});

t.test('hasFragmentOnRequestLine spots a raw #', async (t) => {
  t.equal(hasFragmentOnRequestLine('/a#b'), true);
  t.equal(hasFragmentOnRequestLine('/a?b=#'), true);
  t.equal(hasFragmentOnRequestLine('/a%23b'), false);
  t.equal(hasFragmentOnRequestLine('/a?b=c'), false);
});
