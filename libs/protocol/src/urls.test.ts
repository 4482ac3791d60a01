// Tests for original-URL reconstruction per front proxy flavour.
import t from 'tap';
import type { ForwardFlavour, ForwardRequestInput } from './urls.ts';
import { reconstructOriginalRequest } from './urls.ts';

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
