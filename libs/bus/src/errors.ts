// Errors raised by the bus, with stable codes.

/** A request failed: no responder, timeout, or the responder threw (its code and message are kept). */
export class BusRequestError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly expose: boolean;
  constructor(code: string, message: string, opts: { statusCode?: number; expose?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'BusRequestError';
    this.code = code;
    this.statusCode = opts.statusCode ?? 503;
    this.expose = opts.expose ?? false;
  }
}

/** Serializable form of an error thrown by a request handler. */
export interface WireError {
  code: string;
  message: string;
  statusCode: number;
  expose: boolean;
}

/** Converts anything a handler threw into its wire form (internal details stay out unless exposed). */
export function toWireError(err: unknown): WireError {
  const e = err as { code?: unknown; message?: unknown; statusCode?: unknown; expose?: unknown };
  const statusCode = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  return {
    code: typeof e?.code === 'string' ? e.code : 'PORTCULLIS_INTERNAL',
    message: typeof e?.message === 'string' ? e.message : String(err),
    statusCode,
    expose: e?.expose === true,
  };
}

/** Rebuilds the requester-side error from its wire form. */
export function fromWireError(w: WireError, subject: string): BusRequestError {
  return new BusRequestError(w.code, `${subject}: ${w.message}`, { statusCode: w.statusCode, expose: w.expose });
}
