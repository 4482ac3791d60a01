// Tests for post-login redirect validation: every known open-redirect trick must be refused.
import t from 'tap';
import type { RedirectContext } from './redirects.ts';
import { validateRedirect } from './redirects.ts';

const proxy: RedirectContext = { mode: 'proxy', externalHost: 'https://app.company', cookieDomain: '' };
const single: RedirectContext = { mode: 'forward_single', externalHost: 'https://app.company:8443/base', cookieDomain: '' };
const domain: RedirectContext = { mode: 'forward_domain', externalHost: 'https://auth.company.com', cookieDomain: 'company.com' };
const domainNoCookie: RedirectContext = { mode: 'forward_domain', externalHost: 'https://auth.company.com', cookieDomain: '' };

/** Tricks that must be refused for every mode. */
const ALWAYS_REFUSED = [
  '//evil.com',
  '//evil.com/path',
  '///evil.com',
  '/\\evil.com',
  '\\/evil.com',
  '\\\\evil.com',
  '/\\/evil.com',
  'https://evil.com',
  'http://evil.com/',
  'https://evil.com#https://app.company',
  'https://app.company.evil.com',
  'https://evil.com?https://app.company',
  'https://user@app.company/',
  'https://user:pass@app.company/',
  'https://:pass@app.company/',
  'https://app.company@evil.com',
  'http://app.company%2F@evil.com',
  'http://app.company%2f@evil.com',
  'http://evil.com%2F@app.company/',
  'http://app.company%5C@evil.com',
  'javascript:alert(1)',
  'JavaScript:alert(1)',
  'javascript://app.company/%0aalert(1)',
  'data:text/html,<script>alert(1)</script>',
  'vbscript:msgbox(1)',
  'ftp://app.company/',
  'https:evil.com',
  'https:/evil.com',
  'https:\\\\evil.com',
  'http:app.company',
  'evil.com',
  'app.company/x',
  '?x=1',
  '#frag',
  '/%09/evil.com',
  '/%0a/evil.com',
  '/%0d%0aSet-Cookie:x=1',
  '/%00',
  '/%2F/evil.com',
  '/%2f%2fevil.com',
  '/%5Cevil.com',
  '/%5cevil.com',
  '%2F%2Fevil.com',
  '/\t/evil.com',
  '/\n/evil.com',
  '\t//evil.com',
  ' //evil.com',
  '//evil.com ',
  '/ok\r\nSet-Cookie: x=1',
  '/\u0000',
  '/x\u007f',
  '/%E0%A4%A',
  '/%zz',
  '',
];

t.test('redirect tricks are refused in every mode', async (t) => {
  for (const ctx of [proxy, single, domain, domainNoCookie]) {
    for (const rd of ALWAYS_REFUSED) t.equal(validateRedirect(rd, { ...ctx }), null, `${ctx.mode}/${ctx.cookieDomain}: ${JSON.stringify(rd)}`);
  }
  t.equal(validateRedirect(undefined, proxy), null, 'missing rd');
  t.equal(validateRedirect(`/${'a'.repeat(9000)}`, proxy), null, 'over-long rd');
});

t.test('proxy mode accepts only the external host, resolving relative paths against it', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['/foo?x=1', 'https://app.company/foo?x=1'],
    ['/', 'https://app.company/'],
    ['/a/b#section', 'https://app.company/a/b#section'],
    ['/a/../b', 'https://app.company/b'],
    ['https://APP.company/x', 'https://app.company/x'],
    ['https://app.company:443/x', 'https://app.company/x'],
    ['HTTPS://app.company/x', 'https://app.company/x'],
    ['http://app.company/x', 'http://app.company/x'],
    ['https://app.company/search?q=100%25&r=a%2Fb', 'https://app.company/search?q=100%25&r=a%2Fb'],
    ['/caf%C3%A9', 'https://app.company/caf%C3%A9'],
    ['https://app.company:8443/x', null],
    ['https://app.company./x?y=1', 'https://app.company/x?y=1'],
    ['https://APP.company.:443/x', 'https://app.company/x'],
    ['https://app.company../x', null],
    ['https://other.company./x', null],
    ['https://other.company/x', null],
    ['https://company/x', null],
  ];
  for (const [rd, expected] of cases) t.equal(validateRedirect(rd, proxy), expected, rd);
});

t.test('forward_single requires host and port of the external host and ignores its path', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['/foo', 'https://app.company:8443/foo'],
    ['/base/foo', 'https://app.company:8443/base/foo'],
    ['https://app.company:8443/x', 'https://app.company:8443/x'],
    ['https://app.company/x', null],
    ['https://app.company:9443/x', null],
  ];
  for (const [rd, expected] of cases) t.equal(validateRedirect(rd, single), expected, rd);
});

t.test('forward_domain accepts the cookie domain and its subdomains on a dot boundary only', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['https://company.com/', 'https://company.com/'],
    ['https://app.company.com/x?y=1', 'https://app.company.com/x?y=1'],
    ['https://a.b.company.com:8443/x', 'https://a.b.company.com:8443/x'],
    ['http://APP.Company.com/', 'http://app.company.com/'],
    ['/relative', 'https://auth.company.com/relative'],
    ['https://evilcompany.com', null],
    ['https://evil-company.com', null],
    ['https://company.com.evil.org/', null],
    ['https://app.company.com.evil.org/', null],
    ['https://app.company.com./x', 'https://app.company.com/x'],
    ['https://company.com.evil.org./', null],
    ['https://xcompany.com/', null],
    ['https://com/', null],
  ];
  for (const [rd, expected] of cases) t.equal(validateRedirect(rd, domain), expected, rd);
  const dotted = { ...domain, cookieDomain: '.Company.com' };
  t.equal(validateRedirect('https://app.company.com/', dotted), 'https://app.company.com/', 'leading dot and case in cookie domain');
  t.equal(validateRedirect('https://evilcompany.com/', dotted), null);
});

t.test('forward_domain without a cookie domain falls back to the external host', async (t) => {
  t.equal(validateRedirect('https://auth.company.com/x', domainNoCookie), 'https://auth.company.com/x');
  t.equal(validateRedirect('/x', domainNoCookie), 'https://auth.company.com/x');
  t.equal(validateRedirect('https://app.company.com/x', domainNoCookie), null);
  t.equal(validateRedirect('https://anything.example/', domainNoCookie), null, 'unlike authentik, empty does not mean any host');
});

t.test('an unparsable external host makes every redirect invalid', async (t) => {
  t.equal(validateRedirect('/x', { mode: 'proxy', externalHost: 'not a url', cookieDomain: '' }), null);
});
