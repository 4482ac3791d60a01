// SIGHUP for a process that follows the shared config: re-reads the certificate files (a rotation's deploy hook), logging what it did.
import { formatProblem } from '@portcullis/config';
import type { Logger } from '@portcullis/telemetry';
import type { RunningPortcullis } from './start-portcullis.ts';

/**
 * On SIGHUP, reloads the HTTPS certificate and key files of the running config (which comes from
 * NATS KV and is not re-read): the renewed ones are served from the next handshake on, a file that
 * fails a check keeps every certificate in use. Returns a function that stops listening.
 */
export function reloadCertificatesOnSighup(opts: { running: Pick<RunningPortcullis, 'reloadCertificates'>; logger: Logger; bucket: string }): () => void {
  const { running, logger, bucket } = opts;
  const onHup = (): void => {
    const result = running.reloadCertificates();
    if (result.outcome === 'no-https-listener') {
      logger.info(
        { trigger: 'SIGHUP', bucket },
        'SIGHUP: this process has no HTTPS listener, so no certificate to reload; the config follows the shared document in NATS KV (change it with `portcullis config push`)',
      );
      return;
    }
    for (const w of result.warnings) logger.warn({ trigger: 'SIGHUP', problem: formatProblem(w) }, 'config warning');
    if (result.outcome === 'rejected') {
      logger.error(
        { trigger: 'SIGHUP', problems: result.problems.map(formatProblem) },
        `TLS certificate reload rejected (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}); the certificates in use are kept`,
      );
      return;
    }
    logger.info(
      { trigger: 'SIGHUP', certificates: result.certificates },
      `TLS certificates reloaded from their files (${result.certificates.length}); new connections get them, open ones keep theirs`,
    );
  };
  process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}
