// Tests for CIDR matching and client-address resolution from X-Forwarded-For.
import t from 'tap';
import { buildCidrMatcher, resolveClientAddress, unmapAddress } from './network.ts';

t.test('CIDR matcher accepts IPv4 and IPv6 ranges and bare addresses', async (t) => {
  const matcher = buildCidrMatcher(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1', '172.16.0.0/12', ' 203.0.113.0/24 ']);
  t.strictSame(matcher.errors, []);
  const cases: Array<[string, boolean]> = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['172.31.255.255', true],
    ['172.32.0.0', false],
    ['203.0.113.200', true],
    ['fd12:3456::1', true],
    ['FD12:3456::1', true],
    ['fe80::1', false],
    ['::1', true],
    ['::2', false],
    ['::ffff:10.9.9.9', true],
    ['::FFFF:192.168.1.7', true],
    ['::ffff:11.0.0.1', false],
    ['::1%lo', true],
    ['', false],
    ['garbage', false],
    ['10.0.0', false],
    ['10.0.0.1/8', false],
  ];
  for (const [ip, expected] of cases) t.equal(matcher.matches(ip), expected, ip);
});

t.test('CIDR matcher reports bad entries by index and keeps the good ones', async (t) => {
  const matcher = buildCidrMatcher(['10.0.0.0/8', 'nonsense', '10.0.0.0/33', 'fd00::/129', '1.2.3.4/', '1.2.3.4/-1', '1.2.3.4/8x', '', '127.0.0.1']);
  t.strictSame(
    matcher.errors.map((e) => e.index),
    [1, 2, 3, 4, 5, 6, 7],
  );
  for (const error of matcher.errors) t.ok(error.message.length > 0);
  t.equal(matcher.matches('10.5.5.5'), true);
  t.equal(matcher.matches('127.0.0.1'), true);
  t.equal(matcher.matches('1.2.3.4'), false);
});

t.test('a /0 range matches every address of its family only', async (t) => {
  const matcher = buildCidrMatcher(['0.0.0.0/0']);
  t.equal(matcher.matches('8.8.8.8'), true);
  t.equal(matcher.matches('2001:db8::1'), false);
});

t.test('unmapAddress strips the IPv4-mapped prefix and IPv6 zones only', async (t) => {
  t.equal(unmapAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(unmapAddress('::FFFF:127.0.0.1'), '127.0.0.1');
  t.equal(unmapAddress('::ffff:abcd'), '::ffff:abcd');
  t.equal(unmapAddress('fe80::1%eth0'), 'fe80::1');
  t.equal(unmapAddress('10.0.0.1'), '10.0.0.1');
});

const trusted = buildCidrMatcher(['10.0.0.0/8', '127.0.0.1']);
const isTrusted = (ip: string) => trusted.matches(ip);

t.test('an untrusted peer cannot choose its client address', async (t) => {
  t.strictSame(resolveClientAddress('203.0.113.5', '1.1.1.1', isTrusted), { clientIp: '203.0.113.5', forwardedFor: '203.0.113.5' });
  t.strictSame(resolveClientAddress('::ffff:203.0.113.5', undefined, isTrusted), { clientIp: '203.0.113.5', forwardedFor: '203.0.113.5' });
});

t.test('a trusted peer: client is the rightmost untrusted X-Forwarded-For address', async (t) => {
  const cases: Array<[string, string | undefined, string, string]> = [
    ['10.0.0.2', '198.51.100.1', '198.51.100.1', '198.51.100.1, 10.0.0.2'],
    ['10.0.0.2', '6.6.6.6, 198.51.100.1, 10.0.0.9', '198.51.100.1', '6.6.6.6, 198.51.100.1, 10.0.0.9, 10.0.0.2'],
    ['10.0.0.2', '10.0.0.7, 10.0.0.9', '10.0.0.7', '10.0.0.7, 10.0.0.9, 10.0.0.2'],
    ['10.0.0.2', 'garbage, 198.51.100.1, not-an-ip', '198.51.100.1', 'garbage, 198.51.100.1, not-an-ip, 10.0.0.2'],
    ['10.0.0.2', 'garbage', '10.0.0.2', 'garbage, 10.0.0.2'],
    ['10.0.0.2', '', '10.0.0.2', '10.0.0.2'],
    ['10.0.0.2', undefined, '10.0.0.2', '10.0.0.2'],
    ['::ffff:127.0.0.1', '198.51.100.1', '198.51.100.1', '198.51.100.1, 127.0.0.1'],
    ['10.0.0.2', '::ffff:198.51.100.1', '198.51.100.1', '::ffff:198.51.100.1, 10.0.0.2'],
    ['10.0.0.2', '2001:db8::1', '2001:db8::1', '2001:db8::1, 10.0.0.2'],
    ['10.0.0.2', '[2001:db8::1]:443, 10.1.1.1', '2001:db8::1', '[2001:db8::1]:443, 10.1.1.1, 10.0.0.2'],
    ['10.0.0.2', '198.51.100.1:5555', '198.51.100.1', '198.51.100.1:5555, 10.0.0.2'],
    ['10.0.0.2', ' 198.51.100.1 ,, ', '198.51.100.1', '198.51.100.1 ,,, 10.0.0.2'],
  ];
  for (const [peer, xff, clientIp, forwardedFor] of cases) {
    t.strictSame(resolveClientAddress(peer, xff, isTrusted), { clientIp, forwardedFor }, `${peer} / ${xff}`);
  }
});

t.test('CIDR matcher answers stay the same on repeats and after many distinct addresses', async (t) => {
  const matcher = buildCidrMatcher(['10.0.0.0/8']);
  t.equal(matcher.matches('10.0.0.1'), true);
  t.equal(matcher.matches('10.0.0.1'), true, 'repeat');
  t.equal(matcher.matches('11.0.0.1'), false);
  t.equal(matcher.matches('11.0.0.1'), false, 'repeat');
  let inside = 0;
  for (let i = 0; i < 10_000; i++) if (matcher.matches(`${i % 2 === 0 ? 10 : 11}.0.${(i >> 8) & 255}.${i & 255}`)) inside++;
  t.equal(inside, 5_000);
  t.equal(matcher.matches('10.0.0.1'), true, 'after the memo started over');
  t.equal(matcher.matches('11.0.0.1'), false, 'after the memo started over');
});
