// Certificates for the HTTPS listener: each provider's own by SNI, a generated self-signed default otherwise.
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type SecureContext, createSecureContext } from 'node:tls';
import type { PortcullisConfig } from '@portcullis/config';
import { generate } from 'selfsigned';

/** A provider certificate the HTTPS listener serves, as logged when it is (re)loaded. */
export interface ServedCertificate {
  provider: string;
  /** The SNI host name it is served for (the host of the provider's external_host). */
  host: string;
  cert_file: string;
  /** The certificate's notAfter, ISO 8601. */
  not_after: string;
  /** SHA-256 fingerprint (`AA:BB:…`), as `openssl x509 -noout -fingerprint -sha256` prints it. */
  sha256: string;
}

/** SHA-256 of a file's bytes, hex: what {@link buildTlsOptions}'s `files` compares a file's content by. */
export function fileDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Each provider's certificate by host name. Throws (before anything changes) when a file cannot be read or the key does not fit. */
function certificatesByHost(config: PortcullisConfig): { byHost: Map<string, SecureContext>; served: ServedCertificate[]; files: Map<string, string> } {
  const byHost = new Map<string, SecureContext>();
  const served: ServedCertificate[] = [];
  const files = new Map<string, string>();
  const read = (file: string): Buffer => {
    const bytes = readFileSync(file);
    files.set(file, fileDigest(bytes));
    return bytes;
  };
  for (const p of config.providers) {
    if (p.tls.cert_file && p.tls.key_file) {
      // Each file is read once: what is described is what is served.
      const cert = read(p.tls.cert_file);
      const ctx = createSecureContext({ cert, key: read(p.tls.key_file) });
      const host = new URL(p.external_host).hostname.toLowerCase();
      byHost.set(host, ctx);
      const x509 = new X509Certificate(cert);
      served.push({ provider: p.name, host, cert_file: p.tls.cert_file, not_after: new Date(x509.validTo).toISOString(), sha256: x509.fingerprint256 });
    }
  }
  return { byHost, served, files };
}

/**
 * Builds the SNI callback and default key pair for the HTTPS listener; `update` swaps the certificates
 * on reload (read from their files again) and returns what is served now. The SNI callback picks a
 * context per handshake, so open connections keep theirs and nothing is dropped.
 */
export async function buildTlsOptions(config: PortcullisConfig): Promise<{
  options: {
    key: string;
    cert: string;
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  };
  /**
   * Reads the files of `config` and serves them; `accept`, given what was read, may refuse it with a
   * reason: then it throws that reason and what was served stays.
   */
  update(config: PortcullisConfig, accept?: (loaded: ServedCertificate[]) => string | undefined): ServedCertificate[];
  /** The provider certificates served now (the last `update`, or those of the first config). */
  served(): ServedCertificate[];
  /** The certificate and key files they were read from, each with the {@link fileDigest} of the bytes read. */
  files(): ReadonlyMap<string, string>;
}> {
  let { byHost, served, files } = certificatesByHost(config);
  const self = await generate([{ name: 'commonName', value: 'portcullis-default' }], { keyType: 'ec', curve: 'P-256', notAfterDate: new Date(Date.now() + 3650 * 86_400_000) });
  const fallback = createSecureContext({ key: self.private, cert: self.cert });
  return {
    options: {
      key: self.private,
      cert: self.cert,
      SNICallback: (servername, cb) => cb(null, byHost.get(servername.toLowerCase().replace(/\.$/, '')) ?? fallback),
    },
    update(next, accept) {
      const loaded = certificatesByHost(next);
      const refused = accept?.(loaded.served);
      if (refused !== undefined) throw new Error(refused);
      byHost = loaded.byHost;
      served = loaded.served;
      files = loaded.files;
      return served;
    },
    served: () => served,
    files: () => files,
  };
}
