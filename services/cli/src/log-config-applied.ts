// The log line of a config applied while running (file reload or shared-config document), with the certificates now served.
import type { Logger } from '@portcullis/telemetry';
import type { ConfigReload } from './start-portcullis.ts';

/**
 * Logs that a config was applied: `what` alone for a process without an HTTPS listener, otherwise
 * `what; TLS certificates served (N): …` with `certificates`, the gateway's description of each one it
 * serves from now on (provider, host, cert_file, not_after, sha256) — the same details as the
 * certificate SIGHUP's line, so a rotation is confirmed alike however the config arrived.
 */
export function logConfigApplied(logger: Logger, what: string, fields: Record<string, unknown>, applied: ConfigReload): void {
  if (applied.certificates === null) {
    logger.info(fields, what);
    return;
  }
  logger.info(
    { ...fields, certificates: applied.certificates },
    `${what}; TLS certificates served (${applied.certificates.length}): new connections get them, open ones keep theirs`,
  );
}
