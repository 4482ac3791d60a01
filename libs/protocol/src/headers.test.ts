// Tests for identity headers: spoof-header stripping, claims → headers mapping, value sanitising.
import t from 'tap';
import type { IdentityClaims, IdentityContext } from './headers.ts';
import {
  buildHeaderStripper,
  buildIdentityHeaders,
  DEFAULT_STRIP_HEADERS,
  encodeHeaderValueForWire,
  IDENTITY_HEADERS,
  sanitizeHeaderValue,
} from './headers.ts';

const ctx: IdentityContext = {
  jwksUri: 'https://idp.example/jwks',
  outpostName: 'outpost-1',
  providerName: 'provider-a',
  appSlug: 'app-a',
  version: 'goauthentik.io/outpost/2026.5.0',
};

function headerMap(headers: Array<[string, string]>): Map<string, string> {
  return new Map(headers.map(([k, v]) => [k.toLowerCase(), v]));
}

t.test('IDENTITY_HEADERS lists the 12 authentik names in authentik order', async (t) => {
  t.strictSame(
    [...IDENTITY_HEADERS],
    [
      'X-authentik-username',
      'X-authentik-groups',
      'X-authentik-entitlements',
      'X-authentik-email',
      'X-authentik-name',
      'X-authentik-uid',
      'X-authentik-jwt',
      'X-authentik-meta-jwks',
      'X-authentik-meta-outpost',
      'X-authentik-meta-provider',
      'X-authentik-meta-app',
      'X-authentik-meta-version',
    ],
  );
});

t.test('header stripper drops every spelling of identity and listed spoof headers', async (t) => {
  const strip = buildHeaderStripper(DEFAULT_STRIP_HEADERS);
  const dropped = [
    'X-Authentik-Username',
    'x-authentik-username',
    'x_authentik_uid',
    'X.AUTHENTIK.GROUPS',
    'x-authentik-anything-new',
    'X_Authentik-Meta.Jwks',
    'remote_user',
    'Remote-User',
    'REMOTE.GROUPS',
    'remote-email',
    'remote-name',
    'X-Auth-Request-Email',
    'x_auth_request_user',
    'x-auth-request-',
    'X-Forwarded-User',
    'x_forwarded_email',
    'x-forwarded-groups',
    'x-forwarded-preferred-username',
    'X-Forwarded-Access-Token',
  ];
  for (const name of dropped) t.equal(strip(name), true, `drops ${name}`);
  const kept = [
    'authorization',
    'Authorization',
    'cookie',
    'host',
    'x-forwarded-for',
    'x-forwarded-host',
    'x-forwarded-proto',
    'x-authentik',
    'xauthentik-username',
    'remote-user-agent',
    'remote-address',
    'x-auth-request',
    'x-forwarded-user-agent',
    'user-agent',
  ];
  for (const name of kept) t.equal(strip(name), false, `keeps ${name}`);
});

t.test('header stripper folds configured entries the same way as incoming names', async (t) => {
  const strip = buildHeaderStripper(['X_Custom.User', 'x-tenant-*', '  Remote-Role  ']);
  t.equal(strip('x-custom-user'), true);
  t.equal(strip('X.CUSTOM_USER'), true);
  t.equal(strip('x_tenant_id'), true);
  t.equal(strip('X-Tenant-'), true);
  t.equal(strip('remote.role'), true);
  t.equal(strip('x-custom-user-2'), false, 'an exact entry is not a prefix');
  t.equal(strip('x-tenant'), false);
  t.equal(strip('X-Forwarded-User'), false, 'the default list only applies when passed');
  t.equal(strip('x-authentik-uid'), true, 'identity headers are always dropped');
});

t.test('header stripper ignores entries that would match every header', async (t) => {
  const strip = buildHeaderStripper(['*', '', ' * ']);
  t.equal(strip('host'), false);
  t.equal(strip('content-type'), false);
  t.equal(strip('x-authentik-email'), true);
});

t.test('identity headers map every claim to its header in order', async (t) => {
  const claims: IdentityClaims = {
    sub: 'uid-123',
    preferred_username: 'alice',
    email: 'alice@example.com',
    name: 'Alice Liddell',
    groups: ['admins', 'users'],
    entitlements: ['read', 'write'],
  };
  const { headers, warnings } = buildIdentityHeaders(claims, 'raw.jwt.token', ctx);
  t.strictSame(headers, [
    ['X-authentik-username', 'alice'],
    ['X-authentik-groups', 'admins|users'],
    ['X-authentik-entitlements', 'read|write'],
    ['X-authentik-email', 'alice@example.com'],
    ['X-authentik-name', 'Alice Liddell'],
    ['X-authentik-uid', 'uid-123'],
    ['X-authentik-jwt', 'raw.jwt.token'],
    ['X-authentik-meta-jwks', 'https://idp.example/jwks'],
    ['X-authentik-meta-outpost', 'outpost-1'],
    ['X-authentik-meta-provider', 'provider-a'],
    ['X-authentik-meta-app', 'app-a'],
    ['X-authentik-meta-version', 'goauthentik.io/outpost/2026.5.0'],
  ]);
  t.strictSame(warnings, []);
});

t.test('identity headers are all present and empty when claims are unknown', async (t) => {
  const { headers, warnings } = buildIdentityHeaders({ sub: 'u' }, '', ctx);
  t.equal(headers.length, 12);
  const map = headerMap(headers);
  for (const name of ['X-authentik-username', 'X-authentik-groups', 'X-authentik-entitlements', 'X-authentik-email', 'X-authentik-name', 'X-authentik-jwt']) {
    t.equal(map.get(name.toLowerCase()), '', `${name} is empty`);
  }
  t.equal(map.get('x-authentik-uid'), 'u');
  t.strictSame(warnings, []);
});

t.test('identity headers ignore non-string scalar claims', async (t) => {
  const claims = { sub: 'u', preferred_username: 42, email: { a: 1 }, name: null } as unknown as IdentityClaims;
  const map = headerMap(buildIdentityHeaders(claims, '', ctx).headers);
  t.equal(map.get('x-authentik-username'), '');
  t.equal(map.get('x-authentik-email'), '');
  t.equal(map.get('x-authentik-name'), '');
});

t.test('group entries that could forge list items or headers are left out with a warning', async (t) => {
  const cases: Array<{ groups: unknown; expected: string; warns: number }> = [
    { groups: ['a', 'b|admins', 'c'], expected: 'a|c', warns: 1 },
    { groups: ['a', 'evil\r\nX-Injected: 1'], expected: 'a', warns: 1 },
    { groups: ['a', 'b\n'], expected: 'a', warns: 1 },
    { groups: ['a', 7, null, { name: 'x' }, 'b'], expected: 'a|b', warns: 1 },
    { groups: ['x|y', 3], expected: '', warns: 2 },
    { groups: 'admins', expected: '', warns: 1 },
    { groups: [], expected: '', warns: 0 },
    { groups: null, expected: '', warns: 0 },
  ];
  for (const c of cases) {
    const { headers, warnings } = buildIdentityHeaders({ sub: 'u', groups: c.groups, entitlements: c.groups }, '', ctx);
    const map = headerMap(headers);
    t.equal(map.get('x-authentik-groups'), c.expected, `groups ${JSON.stringify(c.groups)}`);
    t.equal(map.get('x-authentik-entitlements'), c.expected, `entitlements ${JSON.stringify(c.groups)}`);
    t.equal(warnings.length, c.warns * 2, `warnings for ${JSON.stringify(c.groups)}`);
  }
});

t.test('additionalHeaders are appended after the 12 and may override standard ones in place', async (t) => {
  const claims: IdentityClaims = {
    sub: 'u',
    preferred_username: 'alice',
    ak_proxy: {
      user_attributes: {
        additionalHeaders: {
          'X-Tenant': 'acme',
          'x-authentik-username': 'override',
          'X-Count': 3,
          'X-Ratio': 1.5,
          'X-Flag': false,
        },
      },
    },
  };
  const { headers, warnings } = buildIdentityHeaders(claims, 'tok', ctx);
  t.equal(headers.length, 16);
  t.strictSame(headers[0], ['X-authentik-username', 'override'], 'override keeps the standard position and spelling');
  t.strictSame(headers.slice(12), [
    ['X-Tenant', 'acme'],
    ['X-Count', '3'],
    ['X-Ratio', '1.5'],
    ['X-Flag', 'false'],
  ]);
  t.strictSame(warnings, []);
});

t.test('additionalHeaders with unusable names or values are skipped with a warning', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['Bad Name', 'v'],
    ['X-Colon:', 'v'],
    ['', 'v'],
    ['X-Ünicode', 'v'],
    ['X-List', ['a', 'b']],
    ['X-Object', { a: 1 }],
    ['X-Null', null],
    ['X-NaN', Number.NaN],
    ['X-Inf', Number.POSITIVE_INFINITY],
    ['Host', 'evil.example'],
    ['Content-Length', '0'],
    ['transfer-encoding', 'chunked'],
    ['Connection', 'close'],
  ];
  for (const [name, value] of cases) {
    const claims: IdentityClaims = { sub: 'u', ak_proxy: { user_attributes: { additionalHeaders: { [name]: value } } } };
    const { headers, warnings } = buildIdentityHeaders(claims, '', ctx);
    t.equal(headers.length, 12, `${JSON.stringify(name)} not added`);
    t.equal(warnings.length, 1, `${JSON.stringify(name)} warned`);
  }
});

t.test('additionalHeaders that are not an object are ignored', async (t) => {
  for (const extras of [['X-A', 'b'], 'X-A: b', 5]) {
    const claims: IdentityClaims = { sub: 'u', ak_proxy: { user_attributes: { additionalHeaders: extras } } };
    const { headers, warnings } = buildIdentityHeaders(claims, '', ctx);
    t.equal(headers.length, 12);
    t.equal(warnings.length, 1);
  }
  const absent = buildIdentityHeaders({ sub: 'u', ak_proxy: { user_attributes: { additionalHeaders: null } } }, '', ctx);
  t.equal(absent.headers.length, 12);
  t.strictSame(absent.warnings, []);
});

t.test('warnings never echo header values', async (t) => {
  const claims: IdentityClaims = {
    sub: 'u',
    groups: ['secret|group'],
    ak_proxy: { user_attributes: { additionalHeaders: { 'X-Secret': 'hunter2\r\nX-Evil: 1', 'Bad Name': 'hunter3' } } },
  };
  const { warnings } = buildIdentityHeaders(claims, 'tokenvalue\nrest', ctx);
  const joined = warnings.join('\n');
  for (const secret of ['hunter2', 'hunter3', 'secret|group', 'tokenvalue']) t.notOk(joined.includes(secret), `no ${secret}`);
});

const basicCtx: IdentityContext = {
  ...ctx,
  basicAuth: { enabled: true, userAttribute: 'basic_user', passwordAttribute: 'basic_password' },
};

function authorizationOf(claims: IdentityClaims, context: IdentityContext = basicCtx): string | undefined {
  return headerMap(buildIdentityHeaders(claims, '', context).headers).get('authorization');
}

function basic(user: string, pass: string): string {
  return 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
}

t.test('basic auth header uses the user attribute, else the email', async (t) => {
  t.equal(
    authorizationOf({ sub: 'u', email: 'a@x', ak_proxy: { user_attributes: { basic_user: 'bob', basic_password: 'pw' } } }),
    basic('bob', 'pw'),
  );
  t.equal(authorizationOf({ sub: 'u', email: 'a@x', ak_proxy: { user_attributes: { basic_password: 'pw' } } }), basic('a@x', 'pw'));
  t.equal(
    authorizationOf({ sub: 'u', email: 'a@x', ak_proxy: { user_attributes: { basic_user: 12, basic_password: 'pw' } } }),
    basic('a@x', 'pw'),
    'a non-string user attribute falls back to the email',
  );
  t.equal(authorizationOf({ sub: 'u', ak_proxy: { user_attributes: { basic_password: 'pässwörd' } } }), basic('', 'pässwörd'));
});

t.test('basic auth header is absent without a non-empty string password or when disabled', async (t) => {
  const withPassword: IdentityClaims = { sub: 'u', ak_proxy: { user_attributes: { basic_user: 'bob', basic_password: 'pw' } } };
  t.equal(authorizationOf({ sub: 'u', ak_proxy: { user_attributes: { basic_user: 'bob', basic_password: '' } } }), undefined);
  t.equal(authorizationOf({ sub: 'u', ak_proxy: { user_attributes: { basic_user: 'bob', basic_password: 42 } } }), undefined);
  t.equal(authorizationOf({ sub: 'u', ak_proxy: { user_attributes: { basic_user: 'bob' } } }), undefined);
  t.equal(authorizationOf({ sub: 'u' }), undefined, 'no ak_proxy, no header');
  t.equal(authorizationOf(withPassword, ctx), undefined, 'basicAuth not configured');
  t.equal(authorizationOf(withPassword, { ...ctx, basicAuth: { ...basicCtx.basicAuth!, enabled: false } }), undefined);
});

t.test('basic auth header comes last and replaces an additionalHeaders Authorization', async (t) => {
  const claims: IdentityClaims = {
    sub: 'u',
    ak_proxy: {
      user_attributes: { basic_user: 'bob', basic_password: 'pw', additionalHeaders: { authorization: 'Bearer forged', 'X-A': 'a' } },
    },
  };
  const { headers } = buildIdentityHeaders(claims, '', basicCtx);
  t.strictSame(headers.slice(12), [
    ['authorization', basic('bob', 'pw')],
    ['X-A', 'a'],
  ]);
});

t.test('no header value keeps CR, LF or NUL, and each cleaning is warned about', async (t) => {
  const claims: IdentityClaims = {
    sub: 'u\u0000id',
    preferred_username: 'alice\r\nX-Injected: yes',
    email: 'a@x\n',
    name: 'Tab\tKept',
    ak_proxy: { user_attributes: { additionalHeaders: { 'X-A': 'one\rtwo' } } },
  };
  const { headers, warnings } = buildIdentityHeaders(claims, 'tok\u0000', { ...ctx, appSlug: 'app\n' });
  for (const [name, value] of headers) t.notMatch(value, /[\r\n\0]/, `${name} is clean`);
  const map = headerMap(headers);
  t.equal(map.get('x-authentik-username'), 'aliceX-Injected: yes');
  t.equal(map.get('x-authentik-uid'), 'uid');
  t.equal(map.get('x-authentik-name'), 'Tab\tKept');
  t.equal(map.get('x-authentik-jwt'), 'tok');
  t.equal(map.get('x-authentik-meta-app'), 'app');
  t.equal(map.get('x-a'), 'onetwo');
  t.equal(warnings.length, 6);
});

t.test('sanitizeHeaderValue removes C0 controls and DEL but keeps tab and text', async (t) => {
  const cases: Array<[string, string]> = [
    ['plain', 'plain'],
    ['', ''],
    ['a\r\nb', 'ab'],
    ['a\u0000b', 'ab'],
    ['a\tb', 'a\tb'],
    ['\u0001\u0008\u000b\u000c\u001f', ''],
    ['del\u007f', 'del'],
    ['José 李', 'José 李'],
  ];
  for (const [input, expected] of cases) t.equal(sanitizeHeaderValue(input), expected, JSON.stringify(input));
});

t.test('encodeHeaderValueForWire turns non-ASCII text into UTF-8 bytes Node can send', async (t) => {
  t.equal(encodeHeaderValueForWire('ascii only'), 'ascii only');
  const wire = encodeHeaderValueForWire('José 李');
  t.equal(Buffer.from(wire, 'latin1').toString('utf8'), 'José 李');
  t.notMatch(wire, /[^\x00-\xff]/);
});
