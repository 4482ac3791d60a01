// Tests of the in-process self-signed certificate: valid X.509 that verifies itself and names the requested hosts.
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import t from 'tap';
import { createSelfSignedCertificate } from './self-signed-certificate.ts';

t.test('the default certificate is CN=localhost, self-signed, valid for about 100 years, for localhost and loopback IPs', async (t) => {
  const { cert, key } = createSelfSignedCertificate();
  const x509 = new X509Certificate(cert);
  t.equal(x509.subject, 'CN=localhost');
  t.equal(x509.issuer, 'CN=localhost');
  t.ok(x509.verify(x509.publicKey), 'signed by its own key');
  t.ok(x509.checkPrivateKey((await import('node:crypto')).createPrivateKey(key)), 'the key matches');
  t.equal(x509.checkHost('localhost'), 'localhost');
  t.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(x509.checkIP('::1'), '::1');
  const years = (Date.parse(x509.validTo) - Date.now()) / (365.25 * 86_400_000);
  t.ok(years > 99 && years < 101, `valid for ${years.toFixed(1)} years`);
  t.ok(Date.parse(x509.validFrom) < Date.now(), 'already valid');
  t.equal(x509.ca, false, 'not a CA');
});

t.test('altNames, commonName and days shape the certificate', async (t) => {
  const { cert } = createSelfSignedCertificate({ commonName: 'proxy.test', altNames: ['proxy.test', '10.1.2.3', 'fd00::1:2'], days: 2 });
  const x509 = new X509Certificate(cert);
  t.equal(x509.subject, 'CN=proxy.test');
  t.equal(x509.subjectAltName, 'DNS:proxy.test, IP Address:10.1.2.3, IP Address:FD00:0:0:0:0:0:1:2');
  t.equal(x509.checkHost('localhost'), undefined, 'localhost is not in this one');
  t.ok(Date.parse(x509.validTo) - Date.now() < 3 * 86_400_000);
});

t.test('notBefore and notAfter set the validity: an expired certificate, and one not valid yet, both still load in OpenSSL', async (t) => {
  const expired = createSelfSignedCertificate({ notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  const x509 = new X509Certificate(expired.cert);
  t.equal(Date.parse(x509.validFrom), Date.parse('2020-01-01T00:00:00Z'));
  t.equal(Date.parse(x509.validTo), Date.parse('2021-01-01T00:00:00Z'));
  t.doesNotThrow(() => createSecureContext(expired), 'node serves it (it does not look at the dates)');
  const later = createSelfSignedCertificate({ notBefore: new Date('2060-01-01T00:00:00Z'), notAfter: new Date('2061-01-01T00:00:00Z') });
  t.equal(Date.parse(new X509Certificate(later.cert).validFrom), Date.parse('2060-01-01T00:00:00Z'), 'GeneralizedTime from 2050 on');
});

t.test('every certificate loads in OpenSSL: 2 000 in a row (a serial starting with a zero byte was refused, ~1 in 256)', async (t) => {
  let refused = 0;
  let first = '';
  for (let i = 0; i < 2_000; i++) {
    const { cert, key } = createSelfSignedCertificate();
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      refused += 1;
      first ||= (err as Error).message;
    }
  }
  t.equal(refused, 0, first || 'all loaded');
});
