// The base error class every Portcullis package reuses: stable wire code, HTTP status, expose flag, cause.

/** Options accepted by {@link PortcullisError}. */
export interface PortcullisErrorOptions {
  /** HTTP status to answer with; defaults to 500. */
  statusCode?: number;
  /** Whether `message` is safe to show to the client; defaults to true for 4xx, false otherwise. */
  expose?: boolean;
  /** The lower-layer error this one translates, kept for logs. */
  cause?: unknown;
}

/**
 * The one error type of Portcullis. `code` is stable (`PORTCULLIS_<AREA>_<REASON>`) so callers and
 * dashboards can rely on it; `message` is only sent to clients when `expose` is true.
 */
export class PortcullisError extends Error {
  /** Stable machine-readable code, `PORTCULLIS_<AREA>_<REASON>`. */
  readonly code: string;
  /** HTTP status this error maps to. */
  readonly statusCode: number;
  /** True when the message may be shown to the client. */
  readonly expose: boolean;
  /** The original error from a lower layer, if any. */
  override readonly cause: unknown;

  constructor(code: string, message: string, opts: PortcullisErrorOptions = {}) {
    super(message);
    this.name = 'PortcullisError';
    this.code = code;
    this.cause = opts.cause;
    this.statusCode = opts.statusCode ?? 500;
    // Server-side failures hide their details by default; client errors describe what to fix.
    this.expose = opts.expose ?? (this.statusCode >= 400 && this.statusCode < 500);
  }
}
