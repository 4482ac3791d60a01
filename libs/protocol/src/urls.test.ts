// Tests for original-URL reconstruction per front proxy flavour.
import t from 'tap';
import type { ForwardFlavour, ForwardRequestInput } from './urls.ts';
import { fastAuthority, reconstructOriginalRequest } from './urls.ts';

function href(flavour: ForwardFlavour, input: ForwardRequestInput): string | null {
  return reconstructOriginalRequest(flavour, input)?.url.href ?? null;
}

t.test('traefik and caddy rebuild proto://host/uri from X-Forwarded-*', async (t) => {
  const cases: Array<[ForwardRequestInput['headers'], string | null]> = [
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/a/b?c=d' }, 'https://app.company/a/b?c=d'],
    [{ 'x-forwarded-proto': 'HTTP', 'x-forwarded-host': 'App.Company:8080', 'x-forwarded-uri': '/' }, 'http://app.company:8080/'],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company:443', 'x-forwarded-uri': '/x' }, 'https://app.company/x'],
    [{ 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'a.company, b.company', 'x-forwarded-uri': '/x' }, 'https://a.company/x'],
    [{ 'x-forwarded-proto': ['https', 'http'], 'x-forwarded-host': ['a.company', 'b'], 'x-forwarded-uri': ['/first', '/second'] }, 'https://a.company/first'],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '//evil.com/x' }, 'https://app.company//evil.com/x'],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': '[::1]:9443', 'x-forwarded-uri': '/x' }, 'https://[::1]:9443/x'],
    // Missing or unusable parts.
    [{ 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': '', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'ftp', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'javascript', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': 'x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '@evil.com/' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company', 'x-forwarded-uri': '/adm\tin' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'user@evil.com', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.com/app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.com\\app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.com?app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.com#app.company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app company', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company:99999', 'x-forwarded-uri': '/x' }, null],
    [{ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company:abc', 'x-forwarded-uri': '/x' }, null],
    [{}, null],
  ];
  for (const flavour of ['traefik', 'caddy'] as const) {
    for (const [headers, expected] of cases) t.equal(href(flavour, { headers }), expected, `${flavour} ${JSON.stringify(headers)}`);
  }
});

t.test('traefik ignores the request host and scheme', async (t) => {
  t.equal(href('traefik', { headers: {}, requestHost: 'app.company', requestScheme: 'https' }), null);
});

t.test('nginx uses X-Original-URI against forwarded or request host, else X-Original-URL', async (t) => {
  const cases: Array<[ForwardRequestInput, string | null]> = [
    [{ headers: { 'x-original-uri': '/a?b=c', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.company' } }, 'https://app.company/a?b=c'],
    [{ headers: { 'x-original-uri': '/a?b=c' }, requestScheme: 'http', requestHost: 'app.company:9000' }, 'http://app.company:9000/a?b=c'],
    [{ headers: { 'x-original-uri': '/a', 'x-forwarded-host': 'fwd.company' }, requestScheme: 'https', requestHost: 'req.company' }, 'https://fwd.company/a'],
    [{ headers: { 'x-original-uri': '/a', 'x-forwarded-proto': 'https' }, requestScheme: 'http', requestHost: 'req.company' }, 'https://req.company/a'],
    [{ headers: { 'x-original-uri': ['/first', '/second'] }, requestScheme: 'http', requestHost: 'h' }, 'http://h/first'],
    [{ headers: { 'x-original-uri': '/a', 'x-original-url': 'https://other.company/b' }, requestScheme: 'http', requestHost: 'h' }, 'http://h/a'],
    [{ headers: { 'x-original-url': 'https://app.company/b?c=1' } }, 'https://app.company/b?c=1'],
    [{ headers: { 'x-original-url': ['https://first.company/', 'https://second.company/'] } }, 'https://first.company/'],
    [{ headers: { 'x-original-uri': '', 'x-original-url': 'https://app.company/b' } }, 'https://app.company/b'],
    // Missing or unusable parts.
    [{ headers: {} }, null],
    [{ headers: {}, requestScheme: 'https', requestHost: 'app.company' }, null],
    [{ headers: { 'x-original-uri': '/a' } }, null],
    [{ headers: { 'x-original-uri': '/a' }, requestHost: 'app.company' }, null],
    [{ headers: { 'x-original-uri': '/a' }, requestScheme: 'https' }, null],
    [{ headers: { 'x-original-uri': '/a', 'x-forwarded-proto': 'gopher' }, requestScheme: 'https', requestHost: 'h' }, null],
    [{ headers: { 'x-original-uri': 'a' }, requestScheme: 'https', requestHost: 'h' }, null],
    [{ headers: { 'x-original-uri': '@evil.com/' }, requestScheme: 'https', requestHost: 'h' }, null],
    [{ headers: { 'x-original-uri': '/a' }, requestScheme: 'https', requestHost: 'u@evil.com' }, null],
    [{ headers: { 'x-original-url': '/relative' } }, null],
    [{ headers: { 'x-original-url': 'not a url' } }, null],
    [{ headers: { 'x-original-url': 'ftp://app.company/' } }, null],
    [{ headers: { 'x-original-url': 'javascript:alert(1)' } }, null],
    [{ headers: { 'x-original-url': 'https://user:pw@app.company/' } }, null],
    [{ headers: { 'x-original-url': 'https://app.company/a\tb' } }, null],
  ];
  for (const [input, expected] of cases) t.equal(href('nginx', input), expected, JSON.stringify(input));
});

t.test('envoy rebuilds scheme://host + path from the check request itself', async (t) => {
  const cases: Array<[ForwardRequestInput, string | null]> = [
    [{ headers: {}, requestHost: 'app.company', requestPath: '/a/b?c=d', requestScheme: 'https' }, 'https://app.company/a/b?c=d'],
    [{ headers: {}, requestHost: 'app.company', requestPath: '/a' }, 'http://app.company/a'],
    [{ headers: {}, requestHost: 'app.company', requestPath: '' }, 'http://app.company/'],
    [{ headers: {}, requestHost: 'app.company' }, 'http://app.company/'],
    [{ headers: {}, requestHost: 'app.company', requestPath: '?x=1' }, 'http://app.company/?x=1'],
    [{ headers: { 'x-forwarded-host': 'evil.com', 'x-forwarded-proto': 'https' }, requestHost: 'app.company', requestPath: '/a' }, 'http://app.company/a'],
    [{ headers: {}, requestPath: '/a' }, null],
    [{ headers: {}, requestHost: 'app.company', requestPath: 'X/a' }, null],
    [{ headers: {}, requestHost: 'evil.com@app.company', requestPath: '/a' }, null],
  ];
  for (const [input, expected] of cases) t.equal(href('envoy', input), expected, JSON.stringify(input));
});

t.test('an unknown flavour yields null', async (t) => {
  t.equal(reconstructOriginalRequest('haproxy' as ForwardFlavour, { headers: { 'x-original-url': 'https://a/' } }), null);
});

t.test('reconstructOriginalRequest keeps the path as sent: dot segments and backslashes unresolved, no query', async (t) => {
  const cases: Array<[ForwardFlavour, ForwardRequestInput, string]> = [
    ['traefik', { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'a', 'x-forwarded-uri': '/private/../public/x?q=/y' } }, '/private/../public/x'],
    ['caddy', { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'a', 'x-forwarded-uri': '/p\\..\\q#f' } }, '/p\\..\\q'],
    ['nginx', { headers: { 'x-original-uri': '/a/%2e%2e/b?c' }, requestScheme: 'http', requestHost: 'h' }, '/a/%2e%2e/b'],
    ['nginx', { headers: { 'x-original-url': 'https://app.company:8443/a/../b?c=/d' } }, '/a/../b'],
    ['nginx', { headers: { 'x-original-url': 'https://app.company\\a\\..\\b' } }, '\\a\\..\\b'],
    ['nginx', { headers: { 'x-original-url': 'https://app.company?x=/y' } }, '/'],
    ['envoy', { headers: {}, requestHost: 'h', requestPath: '/a/./b?q' }, '/a/./b'],
  ];
  for (const [flavour, input, expected] of cases) t.equal(reconstructOriginalRequest(flavour, input)?.rawPath, expected, `${flavour} ${JSON.stringify(input)}`);
  t.equal(reconstructOriginalRequest('traefik', { headers: {} }), null);
});

t.test("the fast authority reading gives the URL parser's scheme and host wherever it answers, and leaves everything unusual to the parser", async (t) => {
  const tricky = [
    'http://app.company/x',
    'HTTPS://App.Company:443/x?y#z',
    'http://app.company:80',
    'http://app.company:0080/',
    'http://app.company:00000/',
    'http://app.company:65535/',
    'http://app.company:65536/',
    'http://app.company:/x',
    'http://app.company./x',
    'http://.app.company/x',
    'http://app..company/x',
    'http://-/x',
    'http://a-.-b/x',
    'http://127.0.0.1/x',
    'http://127.1/x',
    'http://app.0x7f/x',
    'http://app.1/x',
    'http://1app/x',
    'http://app.1a/x',
    'http://xn--nxasmq6b.com/x',
    'http://a.XN--bad/x',
    'http://xn--a/x',
    'http://bücher.de/x',
    'http://user@app.company/x',
    'http://user:pw@app.company/x',
    'http://app.company@evil.com/x',
    'http://app.company\\evil.com/x',
    'http://app.company\\@evil.com/x',
    'http:\\\\app.company/x',
    'http:/app.company/x',
    'http:app.company/x',
    'http:///app.company/x',
    ' http://app.company/x',
    'http://app.company /x',
    'http://app_company/x',
    'http://app%2ecompany/x',
    'http://[::1]:9000/x',
    'http://app.company?x',
    'http://app.company#x',
    'http://app.company:8080?x',
    'ftp://app.company/x',
    'httpx://app.company/x',
    'http://a.b.c.d.e.f.example:9000/%2e%2e/x',
    'http://app.company/x\\y/../z',
  ];
  // Random strings over the characters that matter in an authority, too.
  const alphabet = ['a', 'Z', '0', '9', '-', '.', ':', '/', '?', '#', '@', '\\', '%', 'x', 'n', '_', '[', ']', ' '];
  let seed = 42;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const random: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    let tail = '';
    const n = 1 + (next() % 14);
    for (let j = 0; j < n; j++) tail += alphabet[next() % alphabet.length];
    random.push(`${next() % 2 ? 'http' : 'HTTPS'}://${tail}`);
  }
  let fast = 0;
  for (const value of [...tricky, ...random]) {
    const got = fastAuthority(value);
    if (got === undefined) continue;
    fast += 1;
    let url: URL;
    try {
      url = new URL(value);
    } catch (err) {
      t.fail(`${JSON.stringify(value)}: read fast as ${got.host}, but the parser refuses it (${String(err)})`);
      continue;
    }
    const same = url.host === got.host && url.protocol === `${got.scheme}:` && url.username === '' && url.password === '';
    if (!same) t.fail(`${JSON.stringify(value)}: fast ${got.scheme}://${got.host}, parser ${url.protocol}//${url.host} (user ${JSON.stringify(url.username)})`);
  }
  t.ok(fast > 1_000, `the fast reading answered for ${fast} of ${tricky.length + random.length} URLs, each as the parser does`);
  t.same(fastAuthority('HTTPS://App.Company:443/x?y#z'), { scheme: 'https', host: 'app.company' });
  t.same(fastAuthority('http://app.company:0080/'), { scheme: 'http', host: 'app.company' });
  t.same(fastAuthority('http://app.company:8080?x'), { scheme: 'http', host: 'app.company:8080' });
  for (const odd of ['http://127.1/x', 'http://xn--nxasmq6b.com/x', 'http://user@app.company/x', 'http://app.company\\evil.com/x', 'http://app.company:65536/']) {
    t.equal(fastAuthority(odd), undefined, `${odd}: left to the parser`);
  }
});

t.test('nginx X-Original-URL read the fast way gives the same original request as the parser', async (t) => {
  for (const value of ['http://App.Company:8080/a/../b?c=d#e', 'https://app.company/%2e%2e/x\\y', 'https://app.company:443']) {
    const o = reconstructOriginalRequest('nginx', { headers: { 'x-original-url': value } })!;
    const url = new URL(value);
    t.equal(o.host, url.host, `${value}: host`);
    t.equal(`${o.scheme}:`, url.protocol, `${value}: scheme`);
    t.equal(o.url.href, url.href, `${value}: the URL, parsed when asked for`);
  }
  t.equal(reconstructOriginalRequest('nginx', { headers: { 'x-original-url': 'http://user@app.company/x' } }), null, 'credentials: still refused (by the parser)');
});
