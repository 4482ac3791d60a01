// Generates a self-signed X.509 certificate in-process (P-256, SHA-256) for TLS test servers, with a minimal DER writer.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';

/** Options of {@link createSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /** Subject and issuer CN. Default "localhost". */
  commonName?: string;
  /** DNS names and IP addresses for subjectAltName. Default: localhost, *.localhost, 127.0.0.1, ::1. */
  altNames?: string[];
  /** Validity in days from one hour ago. Default 36525 (100 years). */
  days?: number;
  /** Start of validity; overrides the "one hour ago" start (e.g. a date in the future: not yet valid). */
  notBefore?: Date;
  /** End of validity; overrides `days` (e.g. a date in the past: an expired certificate). */
  notAfter?: Date;
}

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface SelfSignedCertificate {
  cert: string;
  key: string;
}

/**
 * Creates a self-signed server certificate. Node has no API that writes X.509, so the DER is assembled
 * here; the structure is the RFC 5280 minimum plus subjectAltName, basicConstraints and extKeyUsage.
 */
export function createSelfSignedCertificate(opts: SelfSignedCertificateOptions = {}): SelfSignedCertificate {
  const commonName = opts.commonName ?? 'localhost';
  const altNames = opts.altNames ?? ['localhost', '*.localhost', '127.0.0.1', '::1'];
  const days = opts.days ?? 36525;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = opts.notAfter ?? new Date(Date.now() + days * 86_400_000);
  const serial = randomBytes(16);
  // Positive (RFC 5280) and 16 significant bytes: a first byte of 0 would be a non-minimal DER INTEGER,
  // which OpenSSL refuses ("illegal padding") — once in ~256 certificates before.
  serial[0] = 0x40 | ((serial[0] ?? 0) & 0x3f);

  const extensions = seq(
    extension('2.5.29.19', true, seq()), // basicConstraints: not a CA
    extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))), // serverAuth, clientAuth
    extension('2.5.29.17', false, seq(...altNames.map(generalName))),
  );
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // version v3
    integer(serial),
    ecdsaWithSha256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, extensions),
  );
  const signature = sign('sha256', tbs, privateKey); // DER-encoded ECDSA signature, what X.509 expects
  const der = seq(tbs, ecdsaWithSha256, bitString(signature));

  return {
    cert: toPem('CERTIFICATE', der),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function tlv(tag: number, content: Buffer): Buffer {
  const length = content.length;
  let header: Buffer;
  if (length < 0x80) {
    header = Buffer.from([tag, length]);
  } else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
    header = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([header, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function set(...items: Buffer[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

function integer(value: Buffer): Buffer {
  // DER wants the minimal two's-complement form: no redundant leading zero bytes...
  let start = 0;
  while (start < value.length - 1 && value[start] === 0 && ((value[start + 1] ?? 0) & 0x80) === 0) start++;
  const minimal = value.subarray(start);
  // ...and a leading 1 bit would make the INTEGER negative.
  return tlv(0x02, (minimal[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), minimal]) : minimal);
}

function bitString(value: Buffer): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([0]), value]));
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift((n & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${iso}Z`, 'ascii'));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

function generalName(name: string): Buffer {
  const version = isIP(name);
  if (version === 4) return tlv(0x87, Buffer.from(name.split('.').map(Number)));
  if (version === 6) return tlv(0x87, ipv6Bytes(name));
  return tlv(0x82, Buffer.from(name, 'ascii')); // dNSName
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = address.includes('::') && tail ? tail.split(':') : [];
  const zeros = new Array(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = address.includes('::') ? [...headGroups, ...zeros, ...tailGroups] : headGroups;
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}
