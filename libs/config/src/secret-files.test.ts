// Tests of `*_file` secrets: reading, trimming, env-set paths, conflicts and unreadable files.
import { join } from 'node:path';
import t from 'tap';
import { loadObject, minimalProvider, problemsOf } from './test-fixtures.ts';

const COOKIE = 'abcdefghijklmnopqrstuvwxyz012345';

function providerWithoutSecrets(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { client_secret: _c, cookie_secret: _k, ...rest } = minimalProvider();
  return { ...rest, ...overrides };
}

t.test('client_secret_file and cookie_secret_file supply the values, trailing newline trimmed', async (t) => {
  const dir = t.testdir({ client: 'from-file\n', cookie: `${COOKIE}\r\n` });
  const result = loadObject({
    providers: [providerWithoutSecrets({ client_secret_file: join(dir, 'client'), cookie_secret_file: join(dir, 'cookie') })],
  });
  t.same(problemsOf(result), []);
  t.equal(result.ok && result.config.providers[0]?.client_secret, 'from-file');
  t.equal(result.ok && result.config.providers[0]?.cookie_secret, COOKIE);
  t.notOk(result.ok && 'client_secret_file' in (result.config.providers[0] ?? {}), 'the _file key is not part of the config');
});

t.test('a secret file keeps inner newlines and spaces; only trailing newlines go', async (t) => {
  const dir = t.testdir({ client: ' two\nlines \n\n' });
  const result = loadObject({ providers: [minimalProvider({ client_secret: null, client_secret_file: join(dir, 'client') })] });
  t.equal(result.ok && result.config.providers[0]?.client_secret, ' two\nlines ');
});

t.test('cluster secrets come from files: nats password and token, redis password', async (t) => {
  const dir = t.testdir({ natspw: 'np\n', redispw: 'rp\n' });
  const result = loadObject({
    providers: [minimalProvider()],
    cluster: {
      nats: { user: 'portcullis', password_file: join(dir, 'natspw') },
      redis: { password_file: join(dir, 'redispw') },
    },
  });
  t.same(problemsOf(result), []);
  t.equal(result.ok && result.config.cluster?.nats.password, 'np');
  t.equal(result.ok && result.config.cluster?.redis.password, 'rp');

  const tokenDir = t.testdir({ token: 'tok\n' });
  const withToken = loadObject({ providers: [minimalProvider()], cluster: { nats: { token_file: join(tokenDir, 'token') } } });
  t.equal(withToken.ok && withToken.config.cluster?.nats.token, 'tok');
});

t.test('a _file path can be set by env', async (t) => {
  const dir = t.testdir({ cookie: `${COOKIE}\n` });
  const result = loadObject(
    { providers: [minimalProvider({ cookie_secret: null })] },
    { PORTCULLIS_PROVIDERS__0__COOKIE_SECRET_FILE: join(dir, 'cookie') },
  );
  t.same(problemsOf(result), []);
  t.equal(result.ok && result.config.providers[0]?.cookie_secret, COOKIE);
});

t.test('env setting the inline secret wins over a _file in the file, and the reverse', async (t) => {
  const dir = t.testdir({ client: 'from-file\n' });
  const inlineWins = loadObject(
    { providers: [providerWithoutSecrets({ cookie_secret: COOKIE, client_secret_file: join(dir, 'nope') })] },
    { PORTCULLIS_PROVIDERS__0__CLIENT_SECRET: 'from-env' },
  );
  t.equal(inlineWins.ok && inlineWins.config.providers[0]?.client_secret, 'from-env');
  const fileWins = loadObject({ providers: [minimalProvider()] }, { PORTCULLIS_PROVIDERS__0__CLIENT_SECRET_FILE: join(dir, 'client') });
  t.equal(fileWins.ok && fileWins.config.providers[0]?.client_secret, 'from-file');
});

t.test('both the secret and its _file set is a problem', async (t) => {
  const dir = t.testdir({ client: 'x\n' });
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ client_secret_file: join(dir, 'client') })] }));
  t.strictSame(
    problems.map((p) => [p.path, p.reason]),
    [['providers[0].client_secret', 'both client_secret and client_secret_file are set']],
  );
});

t.test('both set by env is a problem too', async (t) => {
  const dir = t.testdir({ client: 'x\n' });
  const problems = problemsOf(
    loadObject(
      { providers: [minimalProvider()] },
      { PORTCULLIS_PROVIDERS__0__CLIENT_SECRET: 'a', PORTCULLIS_PROVIDERS__0__CLIENT_SECRET_FILE: join(dir, 'client') },
    ),
  );
  t.equal(problems[0]?.path, 'providers[0].client_secret');
});

t.test('an unreadable _file is a problem naming the file and the OS error', async (t) => {
  const missing = join(t.testdir({}), 'missing');
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ cookie_secret: null, cookie_secret_file: missing })] }));
  t.equal(problems.length, 1);
  t.equal(problems[0]?.path, 'providers[0].cookie_secret_file');
  t.match(problems[0]?.reason, `cannot read ${missing}: ENOENT`);
});

t.test('a directory as a _file is a problem', async (t) => {
  const dir = t.testdir({});
  const problems = problemsOf(loadObject({ cluster: { redis: { password_file: dir } }, providers: [minimalProvider()] }));
  t.equal(problems[0]?.path, 'cluster.redis.password_file');
  t.match(problems[0]?.reason, /EISDIR/);
});

t.test('an empty file for a required secret is a problem (only whitespace too, as for an inline value)', async (t) => {
  const dir = t.testdir({ empty: '\n', blank: '   \t \n' });
  for (const name of ['empty', 'blank']) {
    const problems = problemsOf(loadObject({ providers: [minimalProvider({ client_secret: null, client_secret_file: join(dir, name) })] }));
    t.strictSame(
      problems.map((p) => p.path),
      ['providers[0].client_secret_file'],
      name,
    );
    t.match(problems[0]?.reason, /is empty/, name);
  }
});

t.test('a _file that is not a path string is a problem', async (t) => {
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ client_secret: null, client_secret_file: 42 })] }));
  t.equal(problems[0]?.path, 'providers[0].client_secret_file');
  t.match(problems[0]?.reason, /expected a file path, got number 42/);
});

t.test('a cookie secret from a file is still checked for length', async (t) => {
  const dir = t.testdir({ cookie: 'short\n' });
  const problems = problemsOf(loadObject({ providers: [minimalProvider({ cookie_secret: null, cookie_secret_file: join(dir, 'cookie') })] }));
  t.equal(problems[0]?.path, 'providers[0].cookie_secret');
  t.match(problems[0]?.reason, /is 5 characters long/);
});
