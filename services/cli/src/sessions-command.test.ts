// `portcullis sessions ...` argument handling, exit codes without a cluster or with unreachable servers, and the list formats.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startNatsServer } from '@portcullis/testkit';
import t from 'tap';
import { runSessionsCommand } from './sessions-command.ts';
import { formatSessionsJson, formatSessionsTable, summarizeSession } from './sessions-list.ts';

const PROVIDERS = `
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:9000
    internal_host: http://127.0.0.1:1
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: cli-test-cookie-secret-0123456789abcdef
`;

function capture(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

function configFile(t: import('tap').Test, text: string): string {
  const dir = t.testdir({});
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, text);
  return file;
}

t.test('every sessions command without a cluster: block exits 2 and says it needs one', async (t) => {
  const file = configFile(t, PROVIDERS);
  for (const args of [['list'], ['list', '--json'], ['revoke', '--user', 'x'], ['rebuild']]) {
    const c = capture();
    t.equal(await runSessionsCommand([...args, '--config', file], c.io), 2, args.join(' '));
    t.match(c.err(), /needs a cluster: block/);
    t.equal(c.out(), '', 'nothing on stdout');
  }
});

t.test('bad usage exits 2 with the usage', async (t) => {
  for (const args of [[], ['purge'], ['revoke'], ['revoke', '--user', 'a', '--session', 'b'], ['list', '--session', 'x'], ['rebuild', '--json'], ['list', '--nope']]) {
    const c = capture();
    t.equal(await runSessionsCommand(args, c.io), 2, args.join(' ') || '(none)');
    t.match(c.err(), /portcullis sessions list/);
  }
});

t.test('a session id or subject starting with "-" is taken as the value (ids are base64url; `sessions list` prints them)', async (t) => {
  const file = configFile(t, PROVIDERS);
  for (const args of [
    ['revoke', '--session', '-U-t45LGQYB9037exUp2h6Zawqdvo9GBnWWn6kwaBB0', '--config', file],
    ['revoke', '--user', '-odd-subject', '--config', file],
    ['list', '--user', '--', '--config', file],
  ]) {
    const c = capture();
    // Past argument parsing, the missing cluster: block is the only problem left.
    t.equal(await runSessionsCommand(args, c.io), 2, args.join(' '));
    t.match(c.err(), /needs a cluster: block/, args.join(' '));
  }
  // A value option followed by another of our options is a forgotten value, still a usage error.
  for (const args of [['revoke', '--session', '--config', file], ['list', '--user', '--json']]) {
    const c = capture();
    t.equal(await runSessionsCommand(args, c.io), 2, args.join(' '));
    t.match(c.err(), /portcullis sessions list/, args.join(' '));
  }
});

t.test('an invalid configuration exits 2', async (t) => {
  const c = capture();
  t.equal(await runSessionsCommand(['list', '--config', configFile(t, 'outpost: {}\n')], c.io), 2);
});

t.test('NATS unreachable: exit 1 with the bus error naming the server', async (t) => {
  const file = configFile(t, `${PROVIDERS}cluster:\n  nats: { servers: ["nats://127.0.0.1:1"] }\n  redis: { url: "redis://127.0.0.1:1" }\n`);
  const c = capture();
  t.equal(await runSessionsCommand(['list', '--config', file], c.io), 1);
  t.match(c.err(), /127\.0\.0\.1:1/);
  t.equal(c.out(), '');
});

t.test('summaries carry ISO-8601 times and the username; JSON is one line, the table aligns its columns', async (t) => {
  const record = {
    sessionId: 's-1',
    seq: 7,
    provider: 'app',
    issuer: 'http://idp',
    sub: 'abc',
    sid: null,
    claims: { preferred_username: 'alice' },
    accessToken: 'secret-token',
    idToken: null,
    jwksUri: 'http://idp/jwks',
    createdAt: Date.UTC(2030, 0, 2, 3, 4, 5),
    expiresAt: Date.UTC(2030, 0, 3, 3, 4, 5),
  };
  const s = summarizeSession(record);
  t.same(s, {
    session_id: 's-1',
    sub: 'abc',
    username: 'alice',
    provider: 'app',
    created_at: '2030-01-02T03:04:05.000Z',
    expires_at: '2030-01-03T03:04:05.000Z',
    seq: 7,
  });
  t.notMatch(formatSessionsJson([s]), /secret-token/, 'tokens are never printed');
  t.same(JSON.parse(formatSessionsJson([s])), [s]);
  t.equal(formatSessionsJson([s]).split('\n').length, 2, 'one line and its newline');
  const table = formatSessionsTable([s, { ...s, session_id: 's-22', username: null }]).split('\n');
  t.match(table[0], /^SESSION\s+USER\s+PROVIDER\s+CREATED\s+EXPIRES\s+SEQ\s+SUB$/);
  t.equal(table[1]!.indexOf('alice'), table[0]!.indexOf('USER'), 'columns line up');
  t.equal(table[3], '2 live sessions');
  t.equal(formatSessionsTable([], { sub: 'x' }), 'no live sessions for sub x\n');
});

t.test('Redis unreachable (NATS up): exit 1 with the store error naming Redis', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const file = configFile(t, `${PROVIDERS}cluster:\n  nats: { servers: ["${nats.url}"] }\n  redis: { url: "redis://127.0.0.1:1" }\n`);
  const c = capture();
  t.equal(await runSessionsCommand(['list', '--config', file], c.io), 1);
  t.match(c.err(), /cannot connect to Redis redis:\/\/127\.0\.0\.1:1/);
  t.equal(c.out(), '');
});
