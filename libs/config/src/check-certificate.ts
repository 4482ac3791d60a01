// Checks of a TLS certificate and key pair named by the config: readable, a matching pair, valid today, covering its host.
import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';
import type { CheckSink, ConfigProblem } from './config-problem.ts';
import { joinIndex } from './config-path.ts';
import { readKeyPair, whyUnreadable } from './read-text-file.ts';
import type { PortcullisConfig } from './types.ts';

/** A certificate with fewer days than this left is a warning (certbot renews at 30 days left, so this means renewal is failing). */
export const CERTIFICATE_EXPIRY_WARNING_DAYS = 14;

const DAY_MS = 86_400_000;

/**
 * cert_file and key_file: both or neither, each readable, a certificate and its key (problems), valid
 * now and not about to expire (warnings). Returns the certificate when the pair loads, for further checks.
 */
export function checkCertKeyPair(
  cert: string | null | undefined,
  key: string | null | undefined,
  path: string,
  sink: CheckSink,
): X509Certificate | undefined {
  const { problems } = sink;
  if (cert === undefined || key === undefined) return undefined;
  if ((cert === null) !== (key === null)) {
    const missing = cert === null ? 'cert_file' : 'key_file';
    problems.push({
      path: `${path}.${missing}`,
      reason: `is required when ${path}.${missing === 'cert_file' ? 'key_file' : 'cert_file'} is set`,
      fix: `set both ${path}.cert_file and ${path}.key_file, or neither`,
    });
  }
  const certReadable = cert ? checkReadable(cert, `${path}.cert_file`, problems) : false;
  const keyReadable = key ? checkReadable(key, `${path}.key_file`, problems) : false;
  if (!cert || !key || !certReadable || !keyReadable) return undefined;
  // Readable is not enough: a wrong file would otherwise pass check-config and fail only at start or reload.
  const pair = readKeyPair(cert, key);
  if (pair.ok) {
    checkValidity(pair.cert, cert, path, sink);
    return pair.cert;
  }
  const fix = `set ${path}.cert_file to a PEM certificate (chain) and ${path}.key_file to its unencrypted PEM private key`;
  problems.push(
    pair.mismatch
      ? {
          path: `${path}.key_file`,
          reason: `${key} is not the private key of the certificate in ${cert}`,
          fix: `${fix}; \`openssl x509 -noout -pubkey -in CERT\` and \`openssl pkey -pubout -in KEY\` must print the same key`,
        }
      : { path, reason: `${cert} and ${key} are not a PEM certificate and private key: ${pair.message}`, fix },
  );
  return undefined;
}

/**
 * The certificate's dates against the clock: node serves (and connects with) an expired certificate
 * without a word, and every client then refuses the handshake — found by users, not at start. Said as
 * a warning, not a problem: a problem would keep the whole process from starting (a restarted pod
 * crash-looping, plain HTTP and every other host down with it) for what breaks one host's HTTPS.
 */
function checkValidity(x509: X509Certificate, file: string, path: string, sink: CheckSink): void {
  const now = Date.now();
  const notBefore = Date.parse(x509.validFrom);
  const notAfter = Date.parse(x509.validTo);
  const certPath = `${path}.cert_file`;
  const renew = `renew the certificate (e.g. \`certbot renew\`) and write it to ${file}, with its key to ${path}.key_file`;
  if (notAfter <= now) {
    sink.warnings.push({
      path: certPath,
      certificateNotValidNow: true,
      reason: `the certificate in ${file} expired on ${isoDate(notAfter)} (notAfter), so every client refuses the connections it serves`,
      fix: `${renew}, then restart or reload (SIGHUP); \`openssl x509 -noout -enddate -in ${file}\` shows the date`,
    });
  } else if (notBefore > now) {
    sink.warnings.push({
      certificateNotValidNow: true,
      path: certPath,
      reason: `the certificate in ${file} is not valid before ${isoDate(notBefore)} (notBefore; this machine's clock says ${isoDate(now)}), so clients refuse it until then`,
      fix: `check this machine's clock (NTP), or use a certificate that is valid now in ${certPath}`,
    });
  } else if (notAfter - now < CERTIFICATE_EXPIRY_WARNING_DAYS * DAY_MS) {
    const days = Math.floor((notAfter - now) / DAY_MS);
    sink.warnings.push({
      path: certPath,
      reason: `the certificate in ${file} expires on ${isoDate(notAfter)}, in ${days} day${days === 1 ? '' : 's'}; clients will refuse it from then on`,
      fix: `${renew} before then, and reload (SIGHUP); is its automatic renewal failing?`,
    });
  }
}

/**
 * Warns when the certificate does not name `host` (subjectAltName, or the CN without one): browsers
 * then warn on every page. Not a problem: authentik serves it anyway, and an operator may mean it.
 */
export function checkCertificateHost(x509: X509Certificate, file: string, host: string, path: string, hostPath: string, warnings: ConfigProblem[]): void {
  const bare = host.replace(/^\[|\]$/g, '');
  const covered = isIP(bare) ? x509.checkIP(bare) : x509.checkHost(bare);
  if (covered !== undefined) return;
  const names = x509.subjectAltName ?? x509.subject.replace(/\n/g, ', ');
  warnings.push({
    path: `${path}.cert_file`,
    reason: `the certificate in ${file} does not cover ${bare}, the host of ${hostPath} (it names ${names}), so browsers warn on every page of it`,
    fix: `use a certificate whose subjectAltName includes ${bare} (or a wildcard matching it) in ${path}.cert_file, or correct ${hostPath}`,
  });
}

/** Pushes a problem when `file` cannot be read; true when it can. */
export function checkReadable(file: string, path: string, problems: ConfigProblem[]): boolean {
  const why = whyUnreadable(file);
  if (why) {
    problems.push({
      path,
      reason: `cannot read ${file}: ${why}`,
      fix: `make ${file} exist and be readable by the user running Portcullis, or correct ${path}`,
    });
  }
  return why === undefined;
}

/** A time as ISO 8601 to the second (certificate dates have no milliseconds). */
function isoDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Checks the HTTPS certificate files of an already loaded config again, as loading it did (readable,
 * a key pair, valid now, covering the provider's host): for re-reading the files, when only they changed.
 * Unlike at load, a certificate that is not valid now is a problem here: reloading only the files has
 * nothing else to apply, and should never swap an expired certificate in for the one being served —
 * except the very certificate being served (`servedFingerprints`, SHA-256 as node's `fingerprint256`):
 * reloading does not change it, so its expiry stays a warning, and another provider's renewed files
 * are not held back by it. `checked` holds the fingerprint of each certificate file as it was checked,
 * so the caller can refuse to serve a file that changed after its check.
 */
export function checkServerCertificates(config: PortcullisConfig, servedFingerprints: ReadonlySet<string> = new Set()): CheckSink & { checked: Map<string, string> } {
  const found: CheckSink & { checked: Map<string, string> } = { problems: [], warnings: [], checked: new Map() };
  config.providers.forEach((p, i) => {
    const path = `${joinIndex('providers', i)}.tls`;
    const first = found.warnings.length;
    const cert = checkCertKeyPair(p.tls.cert_file, p.tls.key_file, path, found);
    if (cert && p.tls.cert_file) checkCertificateHost(cert, p.tls.cert_file, new URL(p.external_host).hostname, path, `${joinIndex('providers', i)}.external_host`, found.warnings);
    if (cert && p.tls.cert_file) found.checked.set(p.tls.cert_file, cert.fingerprint256);
    const inUse = cert !== undefined && servedFingerprints.has(cert.fingerprint256);
    for (const w of found.warnings.splice(first)) {
      if (!w.certificateNotValidNow) found.warnings.push(w);
      else if (inUse) found.warnings.push({ path: w.path, reason: `${w.reason}; it is the certificate being served, which this reload keeps`, fix: w.fix });
      else found.problems.push(w);
    }
  });
  return found;
}
