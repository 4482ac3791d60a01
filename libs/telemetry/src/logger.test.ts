// The process logger's redaction: secrets never reach a log line; error codes an operator needs do.
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from './logger.ts';

/** Logs `objects` (one line each) through a logger writing to a file; returns the parsed lines. */
async function logLines(objects: object[]): Promise<Array<Record<string, unknown>>> {
  const file = join(mkdtempSync(join(tmpdir(), 'logger-test-')), 'log');
  const fd = openSync(file, 'w');
  const logger = createLogger({ service: 'test', destination: fd });
  for (const o of objects) logger.info(o, 'line');
  logger.flush();
  // The destination writes asynchronously: wait for every line before closing it.
  const lines = () => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  for (let i = 0; i < 200 && lines().length < objects.length; i++) await new Promise((r) => setTimeout(r, 10));
  closeSync(fd);
  return lines().map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('tokens, secrets, cookies and OAuth codes are redacted', async (t) => {
  const [line] = await logLines([
    {
      tokens: { accessToken: 'at-secret', idToken: 'it-secret', refresh_token: 'rt-secret' },
      provider: { client_secret: 'cs-secret', cookie_secret: 'ck-secret' },
      query: { code: 'oauth-code-secret', state: 'kept' },
      req: { headers: { authorization: 'Bearer x', cookie: 'a=b' } },
    },
  ]);
  const text = JSON.stringify(line);
  for (const secret of ['at-secret', 'it-secret', 'rt-secret', 'cs-secret', 'ck-secret', 'oauth-code-secret', 'Bearer x', 'a=b']) {
    t.notOk(text.includes(secret), `${secret} is not in the line`);
  }
  t.match(line, { query: { code: '[redacted]', state: 'kept' } });
});

t.test("an error's code (EADDRINUSE, ours) is kept; anything else under a code is not", async (t) => {
  const bind = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:9443'), { code: 'EADDRINUSE' });
  const ours = Object.assign(new Error('store down'), { code: 'PORTCULLIS_STORE_UNAVAILABLE' });
  const odd = Object.assign(new Error('odd'), { code: 'q0Zx-some-oauth-code' });
  const [a, b, c] = await logLines([{ err: bind }, { err: ours }, { err: odd }]);
  t.match(a, { err: { code: 'EADDRINUSE' } });
  t.match(b, { err: { code: 'PORTCULLIS_STORE_UNAVAILABLE' } });
  t.match(c, { err: { code: '[redacted]' } }, 'a value that is not an error code stays hidden, even on an error');
});
