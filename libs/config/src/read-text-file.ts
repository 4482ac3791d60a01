// The only file access of this package besides the config file: `*_file` secrets, readability and TLS key pair checks.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';

/** Reads a secret file; the value is its content with trailing newlines removed. */
export function readSecretFile(path: string): { ok: true; text: string } | { ok: false; message: string } {
  try {
    // Secrets mounted by Docker/Kubernetes or written with `echo` end in a newline that is not part of the value.
    return { ok: true, text: readFileSync(path, 'utf8').replace(/[\r\n]+$/, '') };
  } catch (err) {
    return { ok: false, message: errorMessage(err) };
  }
}

/** Returns why `path` is not a readable regular file, or undefined when it is. */
export function whyUnreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'it is not a regular file';
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/**
 * Loads `certFile` and `keyFile` as a PEM certificate with its private key (as the HTTPS listener and
 * the NATS/Redis clients load them): the certificate, or why they do not load. Both must be readable.
 */
export function readKeyPair(certFile: string, keyFile: string): { ok: true; cert: X509Certificate } | { ok: false; mismatch: boolean; message: string } {
  let cert: X509Certificate;
  let key: ReturnType<typeof createPrivateKey>;
  try {
    // The first certificate of a chain is the one the key belongs to.
    cert = new X509Certificate(readFileSync(certFile));
    key = createPrivateKey(readFileSync(keyFile));
  } catch (err) {
    return { ok: false, mismatch: false, message: errorMessage(err) };
  }
  return cert.checkPrivateKey(key) ? { ok: true, cert } : { ok: false, mismatch: true, message: 'the key does not belong to the certificate' };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
