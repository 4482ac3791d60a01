// Certificates for the HTTPS listener: each provider's own by SNI, a generated self-signed default otherwise.
import { readFileSync } from 'node:fs';
import { type SecureContext, createSecureContext } from 'node:tls';
import type { PortcullisConfig } from '@portcullis/config';
import { generate } from 'selfsigned';

/** Each provider's certificate by host name. Throws (before anything changes) when a file cannot be read. */
function certificatesByHost(config: PortcullisConfig): Map<string, SecureContext> {
  const byHost = new Map<string, SecureContext>();
  for (const p of config.providers) {
    if (p.tls.cert_file && p.tls.key_file) {
      const ctx = createSecureContext({ cert: readFileSync(p.tls.cert_file), key: readFileSync(p.tls.key_file) });
      byHost.set(new URL(p.external_host).hostname.toLowerCase(), ctx);
    }
  }
  return byHost;
}

/** Builds the SNI callback and default key pair for the HTTPS listener; `update` swaps the certificates on reload. */
export async function buildTlsOptions(config: PortcullisConfig): Promise<{
  options: {
    key: string;
    cert: string;
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  };
  update(config: PortcullisConfig): void;
}> {
  let byHost = certificatesByHost(config);
  const self = await generate([{ name: 'commonName', value: 'portcullis-default' }], { keyType: 'ec', curve: 'P-256', notAfterDate: new Date(Date.now() + 3650 * 86_400_000) });
  const fallback = createSecureContext({ key: self.private, cert: self.cert });
  return {
    options: {
      key: self.private,
      cert: self.cert,
      SNICallback: (servername, cb) => cb(null, byHost.get(servername.toLowerCase().replace(/\.$/, '')) ?? fallback),
    },
    update(next) {
      byHost = certificatesByHost(next);
    },
  };
}
