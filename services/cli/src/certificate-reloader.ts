// SIGHUP for a process that follows the shared config: re-reads the certificate files (a rotation's deploy hook), logging what it did.
import { formatProblem } from '@portcullis/config';
import type { Logger } from '@portcullis/telemetry';
import type { CertificateReload, RunningPortcullis } from './start-portcullis.ts';

/**
 * On SIGHUP, reloads the HTTPS certificate and key files of the running config (which comes from
 * NATS KV and is not re-read): the renewed ones are served from the next handshake on, a file that
 * fails a check keeps every certificate in use. Returns a function that stops listening.
 */
export function reloadCertificatesOnSighup(opts: { running: Pick<RunningPortcullis, 'reloadCertificates'>; logger: Logger; bucket: string }): () => void {
  const { running, logger, bucket } = opts;
  const onHup = (): void => {
    void running.reloadCertificates().then((result) => {
      if (result.outcome === 'no-https-listener') {
        logger.info(
          { trigger: 'SIGHUP', bucket },
          'SIGHUP: this process has no HTTPS listener, so no certificate to reload; the config follows the shared document in NATS KV (change it with `portcullis config push`)',
        );
        return;
      }
      logCertificateReload(logger, { trigger: 'SIGHUP' }, result);
    });
  };
  process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}

/**
 * The log lines of a certificate-only reload, whatever asked for it (SIGHUP, changed files): its
 * warnings, then what is served now, or every problem that kept the certificates in use. `rejectedHint`
 * ends the rejection line (what makes the next attempt).
 */
export function logCertificateReload(
  logger: Logger,
  fields: Record<string, unknown>,
  result: Exclude<CertificateReload, { outcome: 'no-https-listener' }>,
  rejectedHint = '',
): void {
  for (const w of result.warnings) logger.warn({ ...fields, problem: formatProblem(w) }, 'config warning');
  if (result.outcome === 'rejected') {
    logger.error(
      { ...fields, problems: result.problems.map(formatProblem) },
      `TLS certificate reload rejected (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}); the certificates in use are kept${rejectedHint}`,
    );
    return;
  }
  logger.info(
    { ...fields, certificates: result.certificates },
    `TLS certificates reloaded from their files (${result.certificates.length}); new connections get them, open ones keep theirs`,
  );
}
