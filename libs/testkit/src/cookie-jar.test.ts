// Tests of the RFC 6265 cookie jar: domain and path matching, Secure, expiry and deletion.
import t from 'tap';
import { createCookieJar } from './cookie-jar.ts';

const names = (jar: ReturnType<typeof createCookieJar>, url: string) => jar.cookiesFor(url).map((c) => c.name);

t.test('a cookie without Domain goes back to its own host only, not to subdomains', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://auth.example.test/login', 'a=1');
  t.same(names(jar, 'http://auth.example.test/'), ['a']);
  t.same(names(jar, 'http://x.auth.example.test/'), []);
  t.same(names(jar, 'http://example.test/'), []);
});

t.test('Domain widens a cookie to the parent domain and its subdomains, ports ignored', async (t) => {
  const jar = createCookieJar();
  t.ok(jar.setCookie('http://auth.example.test:8080/', 'sso=1; Domain=.example.test; Path=/'));
  t.same(names(jar, 'http://app.example.test:9090/x'), ['sso']);
  t.same(names(jar, 'http://example.test/'), ['sso']);
  t.same(names(jar, 'http://example.test.evil/'), []);
});

t.test('a Domain the host does not belong to is rejected', async (t) => {
  const jar = createCookieJar();
  t.notOk(jar.setCookie('http://app.example.test/', 'x=1; Domain=other.test'));
  t.notOk(jar.setCookie('http://app.example.test/', 'x=1; Domain=evilexample.test'));
  t.notOk(jar.setCookie('http://127.0.0.1/', 'x=1; Domain=0.0.1'), 'no parent domains of an IP address');
  t.same(jar.all(), []);
});

t.test('Path limits a cookie to that path and below, at a segment boundary', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://h.test/', 'p=1; Path=/outpost.goauthentik.io');
  t.same(names(jar, 'http://h.test/outpost.goauthentik.io/callback'), ['p']);
  t.same(names(jar, 'http://h.test/outpost.goauthentik.io'), ['p']);
  t.same(names(jar, 'http://h.test/outpost.goauthentik.iox'), []);
  t.same(names(jar, 'http://h.test/'), []);
});

t.test('without Path the default is the directory of the request path', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://h.test/a/b/c', 'd=1');
  t.equal(jar.all()[0]?.path, '/a/b');
  jar.setCookie('http://h.test/top', 'e=1');
  t.equal(jar.all().find((c) => c.name === 'e')?.path, '/');
});

t.test('cookies are ordered longest path first', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://h.test/', 'short=1; Path=/');
  jar.setCookie('http://h.test/', 'long=1; Path=/deep');
  t.equal(jar.cookieHeaderFor('http://h.test/deep/x'), 'long=1; short=1');
});

t.test('a Secure cookie is sent over https only', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://h.test/', 's=1; Secure');
  t.same(names(jar, 'http://h.test/'), []);
  t.same(names(jar, 'https://h.test/'), ['s']);
});

t.test('Max-Age=0, a negative Max-Age or a past Expires deletes the cookie', async (t) => {
  const jar = createCookieJar();
  for (const deletion of ['Max-Age=0', 'Max-Age=-1', 'Expires=Thu, 01 Jan 1970 00:00:00 GMT']) {
    jar.setCookie('http://h.test/', 'c=1');
    t.same(names(jar, 'http://h.test/'), ['c']);
    jar.setCookie('http://h.test/', `c=; ${deletion}`);
    t.same(names(jar, 'http://h.test/'), [], deletion);
  }
});

t.test('a cookie expires when its Max-Age has passed, and Max-Age wins over Expires', async (t) => {
  const jar = createCookieJar();
  const now = Date.now();
  jar.setCookie('http://h.test/', 'm=1; Max-Age=10; Expires=Thu, 01 Jan 1970 00:00:00 GMT', now);
  t.same(jar.cookiesFor('http://h.test/', now + 9_000).map((c) => c.name), ['m']);
  t.same(jar.cookiesFor('http://h.test/', now + 10_000).map((c) => c.name), []);
});

t.test('setting the same name, domain and path replaces the value', async (t) => {
  const jar = createCookieJar();
  jar.setCookie('http://h.test/', 'v=1');
  jar.setCookie('http://h.test/', 'v=2');
  t.equal(jar.cookieHeaderFor('http://h.test/'), 'v=2');
  jar.clear();
  t.equal(jar.cookieHeaderFor('http://h.test/'), undefined);
});
