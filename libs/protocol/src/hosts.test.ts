// Tests for host normalisation and host → provider routing.
import t from 'tap';
import type { RoutableProvider } from './hosts.ts';
import { buildHostRouter, externalHostKey, normalizeCookieDomain, normalizeHost, stripPort } from './hosts.ts';

t.test('normalizeHost lower-cases, drops the trailing dot and the default port', async (t) => {
  const cases: Array<[string, 'http' | 'https', string]> = [
    ['App.Company.COM', 'https', 'app.company.com'],
    ['app.company.com.', 'https', 'app.company.com'],
    ['app.company.com.:443', 'https', 'app.company.com'],
    ['app.company.com:443', 'https', 'app.company.com'],
    ['app.company.com:443', 'http', 'app.company.com:443'],
    ['app.company.com:80', 'http', 'app.company.com'],
    ['app.company.com:80', 'https', 'app.company.com:80'],
    ['app.company.com:8443', 'https', 'app.company.com:8443'],
    ['app.company.com:08443', 'https', 'app.company.com:8443'],
    ['app.company.com:0443', 'https', 'app.company.com'],
    ['app.company.com:', 'https', 'app.company.com'],
    ['[::1]', 'https', '[::1]'],
    ['[::1]:443', 'https', '[::1]'],
    ['[::1]:9443', 'https', '[::1]:9443'],
    ['[FE80::1]:80', 'http', '[fe80::1]'],
    ['::1', 'http', '[::1]'],
    ['127.0.0.1:80', 'http', '127.0.0.1'],
    ['127.0.0.1:9000', 'http', '127.0.0.1:9000'],
    ['', 'http', ''],
  ];
  for (const [host, scheme, expected] of cases) t.equal(normalizeHost(host, scheme), expected, `${host} (${scheme})`);
});

t.test('stripPort and normalizeCookieDomain give bare names', async (t) => {
  t.equal(stripPort('a.b:81'), 'a.b');
  t.equal(stripPort('a.b'), 'a.b');
  t.equal(stripPort('[::1]:8443'), '[::1]');
  t.equal(normalizeCookieDomain('.Company.COM.'), 'company.com');
  t.equal(normalizeCookieDomain('..company.com'), 'company.com');
  t.equal(normalizeCookieDomain(''), '');
});

t.test('externalHostKey keeps non-default ports and refuses non-http URLs', async (t) => {
  t.equal(externalHostKey('https://App.Company:443/path'), 'app.company');
  t.equal(externalHostKey('https://app.company:8443'), 'app.company:8443');
  t.equal(externalHostKey('http://app.company:80'), 'app.company');
  t.equal(externalHostKey('not a url'), undefined);
  t.equal(externalHostKey('ftp://app.company'), undefined);
});

const providers: RoutableProvider[] = [
  { mode: 'proxy', externalHost: 'https://app.company.com', cookieDomain: '' },
  { mode: 'forward_single', externalHost: 'https://single.company.com:8443/base', cookieDomain: '' },
  { mode: 'forward_domain', externalHost: 'https://auth.company.com', cookieDomain: 'company.com' },
  { mode: 'forward_domain', externalHost: 'https://auth.eu.company.com', cookieDomain: '.EU.Company.com' },
  { mode: 'proxy', externalHost: 'http://plain.example:8080', cookieDomain: 'example' },
];

t.test('host router picks exact external host first, then the longest forward_domain cookie domain', async (t) => {
  const route = buildHostRouter(providers);
  const cases: Array<[string, 'http' | 'https', number | undefined]> = [
    ['app.company.com', 'https', 0],
    ['APP.company.com.', 'https', 0],
    ['app.company.com:443', 'https', 0],
    ['single.company.com:8443', 'https', 1],
    ['auth.company.com', 'https', 2],
    ['plain.example:8080', 'http', 4],
    ['plain.example', 'http', undefined],
    ['x.plain.example', 'http', undefined],
    ['other.company.com', 'https', 2],
    ['deep.other.company.com', 'https', 2],
    ['company.com', 'https', 2],
    ['company.com:8080', 'https', 2],
    ['svc.eu.company.com', 'https', 3],
    ['eu.company.com', 'https', 3],
    ['a.b.eu.company.com', 'https', 3],
    ['single.company.com', 'https', 2],
    ['evilcompany.com', 'https', undefined],
    ['company.com.evil.org', 'https', undefined],
    ['notcompany.com', 'https', undefined],
    ['unknown.org', 'https', undefined],
    ['', 'https', undefined],
  ];
  for (const [host, scheme, expected] of cases) t.equal(route(host, scheme), expected, `${host} (${scheme})`);
});

t.test('host router answers the same when a Host repeats, per scheme, and past its memo limit', async (t) => {
  const route = buildHostRouter(providers);
  for (let round = 0; round < 3; round++) {
    t.equal(route('app.company.com:443', 'https'), 0, `https default port (round ${round})`);
    t.equal(route('app.company.com:443', 'http'), 2, `over http the port stays, so the cookie domain decides (round ${round})`);
    t.equal(route('plain.example:8080', 'http'), 4);
    t.equal(route('unknown.org', 'https'), undefined, 'a miss is remembered as a miss');
  }
  // More distinct Hosts than the memo holds: answers stay right while it starts over.
  for (let i = 0; i < 10_000; i++) {
    const host = `h${i}.company.com`;
    t.equal(route(host, 'https'), 2, host, { diagnostic: false });
    if (i % 1000 === 0) t.equal(route('app.company.com', 'https'), 0);
  }
  t.equal(route('h0.company.com', 'https'), 2);
  t.equal(route('unknown.org', 'https'), undefined);
});

t.test('host router falls back to the only provider, whatever the host', async (t) => {
  const route = buildHostRouter([providers[0]!]);
  t.equal(route('anything.example', 'http'), 0);
  t.equal(route('', 'https'), 0);
  t.equal(buildHostRouter([])('app.company.com', 'https'), undefined);
});

t.test('host router uses the first provider when two share a host or cookie domain', async (t) => {
  const route = buildHostRouter([
    { mode: 'forward_domain', externalHost: 'https://a.x.com', cookieDomain: 'x.com' },
    { mode: 'forward_domain', externalHost: 'https://a.x.com', cookieDomain: 'x.com' },
  ]);
  t.equal(route('a.x.com', 'https'), 0);
  t.equal(route('b.x.com', 'https'), 0);
});

t.test('host router ignores cookie domains of non-forward_domain providers and empty ones', async (t) => {
  const route = buildHostRouter([
    { mode: 'proxy', externalHost: 'https://a.x.com', cookieDomain: 'x.com' },
    { mode: 'forward_domain', externalHost: 'https://b.y.com', cookieDomain: '' },
  ]);
  t.equal(route('c.x.com', 'https'), undefined);
  t.equal(route('c.y.com', 'https'), undefined);
  t.equal(route('b.y.com', 'https'), 1);
});

t.test('host router skips an unparsable external host instead of failing', async (t) => {
  const route = buildHostRouter([
    { mode: 'proxy', externalHost: '::not a url::', cookieDomain: '' },
    { mode: 'proxy', externalHost: 'https://ok.example', cookieDomain: '' },
  ]);
  t.equal(route('ok.example', 'https'), 1);
  t.equal(route('::not a url::', 'https'), undefined);
});
