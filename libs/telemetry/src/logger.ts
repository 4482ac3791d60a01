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

export type { Logger };

/** Creates the process logger: JSON lines on `destination` (stdout by default), secrets redacted. */
export function createLogger(opts: { level?: LevelWithSilent; service: string; destination?: number }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: opts.service },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // trace_id / span_id of the active span on every line (nothing when tracing is off).
      mixin: activeTraceIds,
    },
    pino.destination({ dest: opts.destination ?? 1, sync: false }),
  );
}
