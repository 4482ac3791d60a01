// Structured JSON logging (pino) with secrets redacted; libraries never log, services do.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { activeTraceIds } from './tracing.ts';

/** Paths never written to logs: tokens, cookies, codes, secrets. */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.accessToken',
  '*.idToken',
  '*.access_token',
  '*.id_token',
  '*.refresh_token',
  '*.client_secret',
  '*.cookie_secret',
  '*.code',
  '*.password',
];

/**
 * Error codes (node's `EADDRINUSE`, `ERR_…`, undici's `UND_ERR_…`, ours) under `*.code` (`err.code`):
 * what an operator needs to read, so not censored like an OAuth `code`. (pino does not tell the
 * censor which object a wildcard matched; an authorization code is long and random, never one of these.)
 */
const ERROR_CODE = /^(?:E[A-Z]{2,15}|ERR_[A-Z0-9_]{2,60}|UND_ERR_[A-Z_]{2,40}|PORTCULLIS_[A-Z_]{2,60})$/;

function censor(value: unknown, path: string[]): unknown {
  if (path[path.length - 1] === 'code' && typeof value === 'string' && ERROR_CODE.test(value)) return value;
  return '[redacted]';
}

export type { Logger };

/** Creates the process logger: JSON lines on `destination` (stdout by default), secrets redacted. */
export function createLogger(opts: { level?: LevelWithSilent; service: string; destination?: number }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: opts.service },
      redact: { paths: REDACT, censor },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // trace_id / span_id of the active span on every line (nothing when tracing is off).
      mixin: activeTraceIds,
    },
    pino.destination({ dest: opts.destination ?? 1, sync: false }),
  );
}
