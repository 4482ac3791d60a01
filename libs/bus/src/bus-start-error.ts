// The error a cluster bus raises when it cannot start (NATS unreachable, stream cannot be set up).

/** Stable codes of {@link BusStartError}. */
export const BusStartErrorCode = {
  ConnectFailed: 'PORTCULLIS_BUS_CONNECT_FAILED',
  StreamSetupFailed: 'PORTCULLIS_BUS_STREAM_SETUP_FAILED',
} as const;
export type BusStartErrorCode = (typeof BusStartErrorCode)[keyof typeof BusStartErrorCode];

/** The bus could not start; the message names the servers and what to check. */
export class BusStartError extends Error {
  readonly code: BusStartErrorCode;
  readonly statusCode = 503;
  readonly expose = false;
  constructor(code: BusStartErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'BusStartError';
    this.code = code;
  }
}
