// Tests for the shared PortcullisError class.
import t from 'tap';
import { PortcullisError } from './errors.ts';

t.test('PortcullisError defaults to a hidden 500', async (t) => {
  const error = new PortcullisError('PORTCULLIS_TEST_BROKEN', 'internal detail');
  t.ok(error instanceof Error);
  t.equal(error.name, 'PortcullisError');
  t.equal(error.code, 'PORTCULLIS_TEST_BROKEN');
  t.equal(error.message, 'internal detail');
  t.equal(error.statusCode, 500);
  t.equal(error.expose, false);
  t.equal(error.cause, undefined);
});

t.test('PortcullisError exposes client errors by default and keeps the cause', async (t) => {
  const cause = new TypeError('low level');
  const error = new PortcullisError('PORTCULLIS_TEST_BAD_INPUT', 'fix the input', { statusCode: 400, cause });
  t.equal(error.statusCode, 400);
  t.equal(error.expose, true);
  t.equal(error.cause, cause);
  t.equal(new PortcullisError('X', 'm', { statusCode: 400, expose: false }).expose, false);
  t.equal(new PortcullisError('X', 'm', { statusCode: 502, expose: true }).expose, true);
});
