// Tests for cookie names, the session cookie codec (incl. tampering), Set-Cookie output, reading and sealing.
import { createHash, createHmac } from 'node:crypto';
import { parse } from 'cookie';
import t from 'tap';
import {
  randomToken,
  readCookie,
  sealPayload,
  serializeCookie,
  serializeDeletionCookie,
  sessionCookieName,
  signSessionCookie,
  stateCookieName,
  unsealPayload,
  verifySessionCookie,
} from './cookies.ts';
import { PortcullisError } from './errors.ts';

const SECRET = 'cookie-secret-of-provider-a';

t.test('cookie names follow authentik: prefix + first 8 hex chars of sha256(client_id)', async (t) => {
  const hash = createHash('sha256').update('my-client-id').digest('hex').slice(0, 8);
  t.equal(sessionCookieName('my-client-id'), `authentik_proxy_${hash}`);
  t.equal(stateCookieName('my-client-id'), `authentik_proxy_${hash}_state`);
  t.match(sessionCookieName('other'), /^authentik_proxy_[0-9a-f]{8}$/);
  t.not(sessionCookieName('a'), sessionCookieName('b'));
});

t.test('a signed session cookie verifies to the same id and seq', async (t) => {
  const cases = [
    { sessionId: 'abc', seq: 1 },
    { sessionId: 'A-b_9'.repeat(12).slice(0, 64), seq: Number.MAX_SAFE_INTEGER },
    { sessionId: randomToken(32), seq: 123456 },
  ];
  for (const value of cases) {
    const cookie = signSessionCookie(SECRET, value);
    t.match(cookie, /^[A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]{43}$/);
    t.strictSame(verifySessionCookie(SECRET, cookie), value, `${value.sessionId}.${value.seq}`);
  }
});

t.test('the session cookie MAC is HMAC-SHA256 over the documented message', async (t) => {
  const mac = createHmac('sha256', SECRET).update('portcullis-session|sid.42').digest('base64url');
  t.equal(signSessionCookie(SECRET, { sessionId: 'sid', seq: 42 }), `sid.42.${mac}`);
});

t.test('signing refuses values the verifier could never accept', async (t) => {
  const bad: Array<[string, { sessionId: string; seq: number }]> = [
    ['', { sessionId: 'abc', seq: 1 }],
    [SECRET, { sessionId: '', seq: 1 }],
    [SECRET, { sessionId: 'a.b', seq: 1 }],
    [SECRET, { sessionId: 'a/b', seq: 1 }],
    [SECRET, { sessionId: 'x'.repeat(65), seq: 1 }],
    [SECRET, { sessionId: 'abc', seq: 0 }],
    [SECRET, { sessionId: 'abc', seq: -1 }],
    [SECRET, { sessionId: 'abc', seq: 1.5 }],
    [SECRET, { sessionId: 'abc', seq: Number.MAX_SAFE_INTEGER + 1 }],
    [SECRET, { sessionId: 'abc', seq: Number.NaN }],
  ];
  for (const [secret, value] of bad) {
    t.throws(() => signSessionCookie(secret, value), { code: 'PORTCULLIS_PROTOCOL_INVALID_SESSION_COOKIE' }, JSON.stringify(value));
  }
});

t.test('tampered or malformed session cookies verify to null without throwing', async (t) => {
  const good = signSessionCookie(SECRET, { sessionId: 'session1', seq: 7 });
  const [id, seq, mac] = good.split('.') as [string, string, string];
  const flipped = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const macFor = (message: string) => createHmac('sha256', SECRET).update(message).digest('base64url');
  const cases: Array<[string, string]> = [
    ['flipped first MAC char', `${id}.${seq}.${flipped(mac, 0)}`],
    ['flipped last MAC char', `${id}.${seq}.${flipped(mac, 42)}`],
    ['flipped session id char', `${flipped(id, 0)}.${seq}.${mac}`],
    ['other seq', `${id}.8.${mac}`],
    ['truncated MAC', good.slice(0, -1)],
    ['MAC with padding', `${good}=`],
    ['extra char on MAC', `${good}A`],
    ['extra dot at the end', `${good}.`],
    ['extra dot segment', `${id}.${seq}.${mac}.x`],
    ['extra dot in id', `a.${id}.${seq}.${mac}`],
    ['missing seq', `${id}..${mac}`],
    ['only two parts', `${id}.${mac}`],
    ['no dots', id],
    ['empty', ''],
    ['dots only', '..'],
    ['non-numeric seq', `${id}.abc.${mac}`],
    ['hex seq', `${id}.0x7.${mac}`],
    ['exponent seq', `${id}.7e0.${mac}`],
    ['leading zero seq', `${id}.07.${mac}`],
    ['negative seq', `${id}.-7.${mac}`],
    ['zero seq with valid MAC', `${id}.0.${macFor(`portcullis-session|${id}.0`)}`],
    ['huge seq with valid MAC', `${id}.9007199254740993.${macFor(`portcullis-session|${id}.9007199254740993`)}`],
    ['17-digit seq with valid MAC', `${id}.12345678901234567.${macFor(`portcullis-session|${id}.12345678901234567`)}`],
    ['id too long with valid MAC', `${'a'.repeat(65)}.7.${macFor(`portcullis-session|${'a'.repeat(65)}.7`)}`],
    ['MAC without domain prefix', `${id}.${seq}.${macFor(`${id}.${seq}`)}`],
    ['base64 (not url) MAC', `${id}.${seq}.${mac.replace(/-/g, '+').replace(/_/g, '/')}x`],
    ['space inside', `${id} .${seq}.${mac}`],
    ['percent-encoded', encodeURIComponent(`${id}/.${seq}.${mac}`)],
    ['huge input', 'a'.repeat(100_000)],
  ];
  for (const [label, cookie] of cases) t.equal(verifySessionCookie(SECRET, cookie), null, label);
  t.equal(verifySessionCookie('another-secret', good), null, 'other secret');
  t.equal(verifySessionCookie('', good), null, 'empty secret');
  t.equal(verifySessionCookie(SECRET, undefined as unknown as string), null, 'not a string');
  t.strictSame(verifySessionCookie(SECRET, good), { sessionId: 'session1', seq: 7 }, 'the untouched cookie still verifies');
});

t.test('a MAC that differs only in non-canonical padding bits is refused', async (t) => {
  const good = signSessionCookie(SECRET, { sessionId: 'sid', seq: 1 });
  const last = good.at(-1)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const index = alphabet.indexOf(last);
  // The last of 43 chars carries 4 data bits; changing the low 2 bits decodes to the same bytes.
  const sibling = alphabet[(index & ~3) | ((index + 1) & 3)]!;
  const variant = good.slice(0, -1) + sibling;
  t.strictSame(Buffer.from(variant.split('.')[2]!, 'base64url'), Buffer.from(good.split('.')[2]!, 'base64url'));
  t.equal(verifySessionCookie(SECRET, variant), null);
});

t.test('serializeCookie sets HttpOnly, SameSite=Lax, Path and the optional attributes', async (t) => {
  const cases: Array<[Parameters<typeof serializeCookie>[2], string]> = [
    [{ secure: true, domain: '.company.com', maxAgeSeconds: 3600 }, 'n=v; Max-Age=3600; Domain=company.com; Path=/; HttpOnly; Secure; SameSite=Lax'],
    [{ secure: false }, 'n=v; Path=/; HttpOnly; SameSite=Lax'],
    [{ secure: false, domain: '' }, 'n=v; Path=/; HttpOnly; SameSite=Lax'],
    [{ secure: false, domain: '.' }, 'n=v; Path=/; HttpOnly; SameSite=Lax'],
    [{ secure: true, domain: 'app.company.com', path: '/app' }, 'n=v; Domain=app.company.com; Path=/app; HttpOnly; Secure; SameSite=Lax'],
    [{ secure: false, maxAgeSeconds: 86400.9 }, 'n=v; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax'],
    [{ secure: false, maxAgeSeconds: -5 }, 'n=v; Max-Age=0; Path=/; HttpOnly; SameSite=Lax'],
  ];
  for (const [opts, expected] of cases) t.equal(serializeCookie('n', 'v', opts), expected, JSON.stringify(opts));
});

t.test('serializeCookie refuses invalid names and domains with a PortcullisError', async (t) => {
  for (const [name, domain] of [
    ['bad name', undefined],
    ['n;x', undefined],
    ['n', 'evil.com; Secure'],
    ['n', 'a b'],
  ] as Array<[string, string | undefined]>) {
    t.throws(() => serializeCookie(name, 'v', { secure: true, domain }), { code: 'PORTCULLIS_PROTOCOL_INVALID_COOKIE' });
  }
  const error = t.throws(() => serializeCookie('n', 'v', { secure: true, path: '/a;b' }));
  t.ok(error instanceof PortcullisError && error.cause instanceof TypeError, 'keeps the cookie library error as cause');
});

t.test('a session cookie value survives Set-Cookie serialisation unchanged', async (t) => {
  const value = signSessionCookie(SECRET, { sessionId: randomToken(24), seq: 99 });
  const header = serializeCookie('authentik_proxy_12345678', value, { secure: true });
  t.equal(header.split(';')[0], `authentik_proxy_12345678=${value}`);
});

t.test('serializeDeletionCookie expires the cookie with the same attributes', async (t) => {
  t.equal(
    serializeDeletionCookie('n', { secure: true, domain: '.company.com' }),
    'n=; Max-Age=0; Domain=company.com; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; HttpOnly; Secure; SameSite=Lax',
  );
  t.equal(
    serializeDeletionCookie('n', { secure: false }),
    'n=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; HttpOnly; SameSite=Lax',
  );
});

t.test('readCookie finds a cookie by exact name on pair boundaries', async (t) => {
  const cases: Array<[string | undefined, string, string | undefined]> = [
    ['a=1; b=2; c=3', 'b', '2'],
    ['a=1; b=2; c=3', 'a', '1'],
    ['a=1; b=2; c=3', 'c', '3'],
    ['a=1;b=2', 'b', '2'],
    ['  a = 1 ;  b =  2  ', 'b', '2'],
    ['a=1; b=2', 'd', undefined],
    ['xb=1; b=2', 'b', '2'],
    ['bx=1; b=2', 'b', '2'],
    ['xb=1; bx=2', 'b', undefined],
    ['a=b=c; b=2', 'b', '2'],
    ['a=1; b=first; b=second', 'b', 'first'],
    ['b=; b=2', 'b', ''],
    ['b', 'b', undefined],
    ['b; b=2', 'b', '2'],
    ['a="quoted"', 'a', 'quoted'],
    ['a="', 'a', '"'],
    ['a=x.y.z', 'a', 'x.y.z'],
    ['', 'a', undefined],
    [undefined, 'a', undefined],
    ['a=1', '', undefined],
    ['authentik_proxy_1234abcd_state=s; authentik_proxy_1234abcd=v', 'authentik_proxy_1234abcd', 'v'],
    ['a=1;;; b=2;', 'b', '2'],
  ];
  for (const [header, name, expected] of cases) t.equal(readCookie(header, name), expected, `${JSON.stringify(header)} / ${name}`);
});

t.test('readCookie agrees with the cookie library on undecoded headers', async (t) => {
  const header = 'z=9; authentik_proxy_abcdef12=sid.3.MAC-_x; other=y; dup=1; dup=2';
  const parsed = parse(header);
  for (const name of ['z', 'authentik_proxy_abcdef12', 'other', 'dup', 'missing']) {
    t.equal(readCookie(header, name), parsed[name], name);
  }
});

t.test('sealed payloads round-trip with an exp added', async (t) => {
  const token = sealPayload(SECRET, 'login-state', { verifier: 'v', nonce: 'n', redirect: 'https://app/x?y=1' }, 600, 1_000);
  t.match(token, /^[A-Za-z0-9_-]+$/, 'cookie-safe');
  t.strictSame(unsealPayload(SECRET, 'login-state', token, 1_000), {
    verifier: 'v',
    nonce: 'n',
    redirect: 'https://app/x?y=1',
    exp: 1_600,
  });
  t.strictSame(unsealPayload(SECRET, 'login-state', token, 1_599)?.['exp'], 1_600, 'valid one second before exp');
  const clock = sealPayload(SECRET, 'p', { a: 1 }, 60);
  t.equal(unsealPayload(SECRET, 'p', clock)?.['a'], 1, 'defaults to the clock');
});

t.test('a sealed payload is confidential and never repeats', async (t) => {
  const a = sealPayload(SECRET, 'p', { verifier: 'super-secret-verifier' }, 60, 0);
  const b = sealPayload(SECRET, 'p', { verifier: 'super-secret-verifier' }, 60, 0);
  t.not(a, b, 'random IV');
  t.notOk(Buffer.from(a, 'base64url').toString('latin1').includes('super-secret'), 'plaintext not visible');
});

t.test('unsealPayload returns null for tampered, expired, foreign or malformed tokens', async (t) => {
  const token = sealPayload(SECRET, 'login-state', { nonce: 'n' }, 600, 1_000);
  const raw = Buffer.from(token, 'base64url');
  const flip = (index: number) => {
    const copy = Buffer.from(raw);
    copy[index] = copy[index]! ^ 0x01;
    return copy.toString('base64url');
  };
  const cases: Array<[string, string, string, string, number]> = [
    ['expired at exp', SECRET, 'login-state', token, 1_600],
    ['expired later', SECRET, 'login-state', token, 10_000],
    ['other purpose', SECRET, 'session', token, 1_000],
    ['other secret', 'other-secret', 'login-state', token, 1_000],
    ['empty secret', '', 'login-state', token, 1_000],
    ['flipped IV bit', SECRET, 'login-state', flip(0), 1_000],
    ['flipped ciphertext bit', SECRET, 'login-state', flip(14), 1_000],
    ['flipped tag bit', SECRET, 'login-state', flip(raw.length - 1), 1_000],
    ['truncated', SECRET, 'login-state', token.slice(0, -2), 1_000],
    ['tag only', SECRET, 'login-state', raw.subarray(0, 28).toString('base64url'), 1_000],
    ['empty', SECRET, 'login-state', '', 1_000],
    ['not base64url', SECRET, 'login-state', `${token}!`, 1_000],
    ['with a dot', SECRET, 'login-state', `${token}.x`, 1_000],
    ['huge', SECRET, 'login-state', 'A'.repeat(20_000), 1_000],
  ];
  for (const [label, secret, purpose, candidate, now] of cases) {
    t.equal(unsealPayload(secret, purpose, candidate, now), null, label);
  }
});

t.test('sealPayload refuses an empty secret or purpose and a non-positive ttl', async (t) => {
  const bad: Array<[string, string, number]> = [
    ['', 'p', 60],
    [SECRET, '', 60],
    [SECRET, 'p', 0],
    [SECRET, 'p', -1],
    [SECRET, 'p', Number.NaN],
    [SECRET, 'p', Number.POSITIVE_INFINITY],
  ];
  for (const [secret, purpose, ttl] of bad) {
    t.throws(() => sealPayload(secret, purpose, {}, ttl), { code: 'PORTCULLIS_PROTOCOL_INVALID_SEAL' });
  }
  t.throws(() => sealPayload(SECRET, 'p', { n: 10n }, 60), { code: 'PORTCULLIS_PROTOCOL_INVALID_SEAL' });
});

t.test('derived seal keys stay per secret and purpose, across more secrets than are kept', async (t) => {
  // Rotating secrets (reloads): each token opens with its own secret only, before and after older keys are dropped.
  const secrets = Array.from({ length: 40 }, (_, i) => `${SECRET}-rotated-${i}`);
  const tokens = secrets.map((secret) => sealPayload(secret, 'p', { i: secret }, 60, 0));
  for (const [i, secret] of secrets.entries()) {
    t.equal(unsealPayload(secret, 'p', tokens[i]!, 0)?.['i'], secret, `secret ${i} opens its own token`);
    t.equal(unsealPayload(secret, 'p', tokens[(i + 1) % secrets.length]!, 0), null, `secret ${i} does not open the next one's`);
    t.equal(unsealPayload(secret, 'q', tokens[i]!, 0), null, `secret ${i} under another purpose opens nothing`);
  }
});

t.test('sealPayload sets exp itself even when the payload carries one', async (t) => {
  const token = sealPayload(SECRET, 'p', { exp: 9_999_999_999 }, 10, 100);
  t.equal(unsealPayload(SECRET, 'p', token, 100)?.['exp'], 110);
  t.equal(unsealPayload(SECRET, 'p', token, 200), null);
});

t.test('randomToken returns base64url of the requested number of random bytes', async (t) => {
  t.equal(Buffer.from(randomToken(), 'base64url').length, 32);
  t.equal(Buffer.from(randomToken(16), 'base64url').length, 16);
  t.match(randomToken(), /^[A-Za-z0-9_-]{43}$/);
  t.not(randomToken(), randomToken());
});
