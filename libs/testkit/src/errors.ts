// Errors thrown by the test kit: one class, a stable code per failure, the lower-level error kept as `cause`.

/** Stable codes of every failure the test kit reports. */
export const TestkitErrorCode = {
  ProcessStartFailed: 'PORTCULLIS_TESTKIT_PROCESS_START_FAILED',
  ProcessStopTimeout: 'PORTCULLIS_TESTKIT_PROCESS_STOP_TIMEOUT',
  FormNotFound: 'PORTCULLIS_TESTKIT_FORM_NOT_FOUND',
  LoginFailed: 'PORTCULLIS_TESTKIT_LOGIN_FAILED',
  TooManyRedirects: 'PORTCULLIS_TESTKIT_TOO_MANY_REDIRECTS',
  InvalidOption: 'PORTCULLIS_TESTKIT_INVALID_OPTION',
} as const;

/** One of the {@link TestkitErrorCode} values. */
export type TestkitErrorCode = (typeof TestkitErrorCode)[keyof typeof TestkitErrorCode];

/**
 * The error every test-kit function throws. `statusCode` and `expose` follow the house error shape even
 * though nothing here serves clients: a test helper failure is always an internal (500) problem.
 */
export class TestkitError extends Error {
  override readonly name = 'TestkitError';
  readonly code: TestkitErrorCode;
  readonly statusCode = 500;
  readonly expose = false;

  constructor(code: TestkitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
