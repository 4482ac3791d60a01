// Reloads the HTTPS certificate files when their content changes (a renewal nobody sent SIGHUP for), polling every outpost.certificate_watch_interval_seconds.
import { readFile } from 'node:fs/promises';
import { fileDigest } from '@portcullis/gateway';
import type { Logger } from '@portcullis/telemetry';
import { logCertificateReload } from './certificate-reloader.ts';
import type { RunningPortcullis } from './start-portcullis.ts';

/**
 * How long changed files must hold still before they are reloaded: certbot re-points its `live/`
 * symlinks one by one, and a file written in place is briefly empty. Reloading mid-rotation would
 * only log an error for a pair that is fine a moment later.
 */
const SETTLE_MS = 1000;
/** Reads before a rotation that keeps changing the files is left to the next poll. */
const SETTLE_TRIES = 5;

/** A poller of the certificate files; `rearm` after a config change picks up a new interval. */
export interface CertificateWatcher {
  /** Polls at the interval of the config in force (0: stops polling until the next `rearm`). */
  rearm(): void;
  stop(): void;
}

/**
 * Polls the certificate and key files the HTTPS listener serves from (those of the config in force,
 * so the set follows every reload) and compares the SHA-256 of their bytes with what was loaded. Polling,
 * not fs.watch: that misses a Kubernetes Secret's `..data` symlink swap and changes on network
 * filesystems. Changed files are reloaded as SIGHUP reloads them (`reloadCertificates`: the same checks,
 * the same refusal of a bad, expired or not-yet-valid certificate or a key that does not fit, the same
 * log lines). A refused content is logged once: it is tried again when the files change again.
 */
export function watchCertificateFiles(opts: {
  running: Pick<RunningPortcullis, 'gateway' | 'reloadCertificates'>;
  logger: Logger;
}): CertificateWatcher {
  const { running, logger } = opts;
  const gateway = running.gateway;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  let stopped = false;
  // The content (paths and digests) last refused, so that it is reported once, not at every poll.
  let refused: string | undefined;

  const intervalSeconds = (): number => (gateway ? gateway.config.outpost.certificate_watch_interval_seconds : 0);

  let armedSeconds = 0;
  const arm = (): void => {
    clearTimeout(timer);
    timer = undefined;
    armedSeconds = intervalSeconds();
    // An HTTPS listener is only added by a restart.
    if (stopped || armedSeconds === 0 || !gateway?.https) return;
    timer = setTimeout(() => void poll(), armedSeconds * 1000);
    // Never what keeps the process alive.
    timer.unref();
  };
  const rearm = (): void => {
    // A poll under way arms the next when it ends; an unchanged interval keeps its countdown, so
    // frequent config pushes cannot put the next poll off for ever.
    if (polling || (timer !== undefined && intervalSeconds() === armedSeconds)) return;
    arm();
  };

  const poll = async (): Promise<void> => {
    polling = true;
    try {
      await check();
    } catch (err) {
      // Not expected (reading a file reports its error as its content); the next poll tries again.
      logger.error({ trigger: 'certificate files changed', err: (err as Error).message }, 'watching the TLS certificate files failed; the certificates in use are kept');
    } finally {
      polling = false;
      arm();
    }
  };

  const check = async (): Promise<void> => {
    const served = gateway?.certificateFiles;
    if (!served || served.size === 0) return;
    const files = [...served.keys()];
    let seen = await digests(files);
    if (sameContent(served, seen)) {
      refused = undefined;
      logger.debug({ files, outcome: 'unchanged' }, 'TLS certificate files polled');
      return;
    }
    if (contentKey(seen) === refused) {
      logger.debug({ files, outcome: 'refused before' }, 'TLS certificate files polled');
      return;
    }
    logger.debug({ files, outcome: 'changed' }, 'TLS certificate files polled');
    for (let tries = 0; ; tries++) {
      await sleep(SETTLE_MS);
      if (stopped) return;
      const again = await digests(files);
      if (contentKey(again) === contentKey(seen)) break;
      // Still being written: looked at again at the next poll.
      if (tries + 1 === SETTLE_TRIES) return;
      seen = again;
    }
    // A SIGHUP may have reloaded them meanwhile; another config may have named other files.
    const now = gateway.certificateFiles;
    if (stopped || !now || sameContent(now, seen) || files.some((f) => !now.has(f))) return;
    const changed = files.filter((f) => seen.get(f) !== served.get(f));
    const result = await running.reloadCertificates();
    if (result.outcome === 'no-https-listener') return;
    const fields = { trigger: 'certificate files changed', changed };
    if (result.outcome === 'rejected') {
      refused = contentKey(seen);
      const seconds = intervalSeconds();
      logCertificateReload(logger, fields, result, `; the files are tried again when they change (checked every ${seconds} s) or on SIGHUP`);
      return;
    }
    refused = undefined;
    logCertificateReload(logger, fields, result);
  };

  arm();
  if (timer) logger.info({ files: [...(gateway?.certificateFiles?.keys() ?? [])], interval_seconds: armedSeconds }, 'watching the TLS certificate files: a change is reloaded as SIGHUP does');
  return {
    rearm,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * The digest of each file's bytes; a file that cannot be read (briefly missing during a rotation,
 * unreadable) gets its error code instead, a content of its own.
 */
async function digests(files: readonly string[]): Promise<Map<string, string>> {
  const read = await Promise.all(
    files.map(async (file): Promise<[string, string]> => {
      try {
        return [file, fileDigest(await readFile(file))];
      } catch (err) {
        return [file, `unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`];
      }
    }),
  );
  return new Map(read);
}

function sameContent(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [file, digest] of a) if (b.get(file) !== digest) return false;
  return true;
}

function contentKey(m: ReadonlyMap<string, string>): string {
  return JSON.stringify([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
