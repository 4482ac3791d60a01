// Errors raised by the Redis store, with stable codes.

/** Stable codes of {@link StoreError}. */
export const StoreErrorCode = {
  /** Redis could not be reached at start. */
  ConnectFailed: 'PORTCULLIS_STORE_CONNECT_FAILED',
  /** A command failed (connection lost, script error...): callers fail closed (503). */
  Unavailable: 'PORTCULLIS_STORE_UNAVAILABLE',
  /** A stored record could not be read back. */
  CorruptRecord: 'PORTCULLIS_STORE_CORRUPT_RECORD',
  /** The projection is being rebuilt: normal applies and listings are refused until it ends. */
  Rebuilding: 'PORTCULLIS_STORE_REBUILDING',
  /** A rebuild's token no longer holds the rebuild marker (its TTL ran out, or it was ended). */
  RebuildLost: 'PORTCULLIS_STORE_REBUILD_LOST',
  /**
   * Redis no longer holds the projection this process saw (restarted without persistence, flushed,
   * failed over to an empty replica): nothing is applied onto it and no session is read from it
   * until it is rebuilt from the log (the session service does so on its own).
   */
  ProjectionLost: 'PORTCULLIS_STORE_PROJECTION_LOST',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** The session store failed; the original error is kept as `cause`. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly statusCode = 503;
  readonly expose = false;
  constructor(code: StoreErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'StoreError';
    this.code = code;
  }
}
