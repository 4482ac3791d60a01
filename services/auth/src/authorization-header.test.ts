// Unit tests of the Authorization header parser: the accepted forms and the short reason of each refusal.
import t from 'tap';
import { MAX_AUTHORIZATION_LENGTH, parseAuthorizationHeader } from './authorization-header.ts';
import { AuthErrorCode } from './errors.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('Bearer and Basic parse whatever the scheme case; a colon in the password stays in it', async (t) => {
  t.same(parseAuthorizationHeader('Bearer abc.def-_~+/=='), { kind: 'bearer', token: 'abc.def-_~+/==' });
  t.same(parseAuthorizationHeader('bEaReR tok'), { kind: 'bearer', token: 'tok' });
  t.same(parseAuthorizationHeader(`BASIC ${b64('user:pa:ss')}`), { kind: 'basic', username: 'user', password: 'pa:ss' });
});

t.test('every malformed header is refused with HEADER_AUTH_REJECTED (401) and a short reason', async (t) => {
  const cases: [string, string][] = [
    ['', 'malformed authorization header'],
    ['Bearer', 'malformed authorization header'],
    ['Bearer a b', 'malformed authorization header'],
    ['Bearer a"b', 'malformed bearer token'],
    ['Digest abc', 'unsupported authorization scheme'],
    [`Basic ${b64('nocolon')}`, 'malformed basic credentials'],
    [`Basic ${b64(':password')}`, 'malformed basic credentials'],
    [`Basic ${b64('user:')}`, 'malformed basic credentials'],
    ['Basic abc', 'malformed basic credentials'],
    [`Bearer ${'a'.repeat(MAX_AUTHORIZATION_LENGTH)}`, 'authorization header too long'],
  ];
  for (const [header, reason] of cases) {
    t.throws(() => parseAuthorizationHeader(header), { code: AuthErrorCode.HeaderAuthRejected, statusCode: 401, message: reason }, JSON.stringify(header.slice(0, 40)));
  }
});
