// The raw answer writer (hot path) puts the same bytes on the wire as fastify's send path, for GET and HEAD.
import { once } from 'node:events';
import { connect } from 'node:net';
import Fastify from 'fastify';
import t from 'tap';
import { type RespondAnswer, noProviderAnswer, pageAnswer, redirectAnswer, textAnswer } from './answers.ts';
import { sendAnswer, writeAnswer } from './server.ts';

const IDENTITY: Array<[string, string]> = [
  ['X-authentik-username', 'bob'],
  ['X-authentik-groups', 'users|admins'],
  ['X-authentik-entitlements', ''],
  ['X-authentik-email', 'bob@example.com'],
  ['X-authentik-name', 'Ren\u00e9 B'],
  ['X-authentik-uid', 'bob-sub'],
  ['X-authentik-jwt', 'token'],
  ['X-authentik-meta-jwks', 'http://idp/jwks'],
  ['X-authentik-meta-outpost', 'Portcullis Outpost'],
  ['X-authentik-meta-provider', 'app'],
  ['X-authentik-meta-app', 'app'],
  ['X-authentik-meta-version', 'portcullis/test'],
];

const REPEATED: Array<[string, string]> = [
  ['X-Team', 'a'],
  ['set-cookie', 'n=2'],
  ['Set-Cookie', 'm=1'],
  ['x-team', 'b'],
  ['SET-COOKIE', 'o=3'],
  ['Location', '/x'],
];

/** Answers as the handler builds them; `fast` says whether the raw writer must take them (false: it hands them to fastify). */
const CASES: Array<{ name: string; answer: RespondAnswer; fast: boolean }> = [
  { name: 'forward auth 200 with identity headers', answer: { kind: 'respond', status: 200, headers: IDENTITY, body: '' }, fast: true },
  {
    name: 'allow-listed 200 with a deletion cookie',
    answer: { kind: 'respond', status: 200, headers: [...IDENTITY, ['set-cookie', 'authentik_proxy_x=; Path=/; Max-Age=0']], body: '' },
    fast: true,
  },
  { name: 'redirect with two cookies', answer: redirectAnswer('https://app.company/outpost.goauthentik.io/start?rd=x', ['a=1; Path=/', 'b=2; Path=/']), fast: true },
  { name: 'nginx 401 text with a cookie', answer: textAnswer(401, 'unauthorized request', [['set-cookie', 'a=; Max-Age=0']]), fast: true },
  { name: 'HTML page 503', answer: pageAnswer(503, 'Sessions unavailable', 'Try again.'), fast: true },
  { name: 'ping 204', answer: { kind: 'respond', status: 204, headers: [], body: '' }, fast: true },
  { name: 'non-ASCII body', answer: textAnswer(400, 'bad request: "\u00e9\u20ac"'), fast: true },
  {
    name: 'repeated names in several spellings',
    answer: {
      kind: 'respond',
      status: 200,
      headers: REPEATED,
      body: 'body',
    },
    fast: true,
  },
  // A shared header list (a session's forward-auth answer) has its head kept between writes: the
  // same bytes again (GET then HEAD reuse it), and a new body gets its own Content-Length.
  { name: 'forward auth 200, shared header list', answer: { kind: 'respond', status: 200, headers: IDENTITY, body: '', sharedHeaders: true }, fast: true },
  { name: 'shared list with repeated names', answer: { kind: 'respond', status: 200, headers: REPEATED, body: 'body', sharedHeaders: true }, fast: true },
  { name: 'the same shared list, another body', answer: { kind: 'respond', status: 200, headers: REPEATED, body: 'a longer body', sharedHeaders: true }, fast: true },
  { name: 'the same shared list, another status', answer: { kind: 'respond', status: 404, headers: REPEATED, body: 'a longer body', sharedHeaders: true }, fast: true },
  {
    name: 'a shared list with a Content-Type fastify would not keep',
    answer: { kind: 'respond', status: 200, headers: [['content-type', 'not a type']], body: 'x', sharedHeaders: true },
    fast: false,
  },
  { name: 'JSON as answers.ts spells it (with the charset)', answer: noProviderAnswer('nope.example'), fast: true },
  { name: 'JSON without a charset (fastify adds one)', answer: { kind: 'respond', status: 400, headers: [['content-type', 'application/json']], body: '{}' }, fast: false },
  { name: 'JSON with cache-control and cookie', answer: { kind: 'respond', status: 400, headers: [['content-type', 'application/json'], ['cache-control', 'no-store'], ['set-cookie', 'c=1']], body: '{"error":"x"}' }, fast: false },
  { name: 'a Content-Type fastify would not keep', answer: { kind: 'respond', status: 200, headers: [['content-type', 'not a type']], body: 'x' }, fast: false },
];

/** One request on a fresh connection; the raw response bytes with the Date line removed. */
async function rawExchange(port: number, method: string, path: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await once(socket, 'end');
  socket.destroy();
  return Buffer.concat(chunks)
    .toString('latin1')
    .replace(/\r\ndate: [^\r]*/i, '');
}

t.test('raw answers are byte-identical to fastify answers', async (t) => {
  const taken: boolean[] = [];
  // As the gateway registers its route: HEAD named explicitly (no auto-generated HEAD route, whose onSend differs).
  const app = Fastify({ logger: false, requestIdHeader: false });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/fastify/:i',
    handler: async (request, reply) => sendAnswer(reply, CASES[Number((request.params as { i: string }).i)]!.answer),
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/raw/:i',
    handler: async (request, reply) => {
      const i = Number((request.params as { i: string }).i);
      taken[i] = writeAnswer(reply, CASES[i]!.answer);
      return taken[i] ? reply : sendAnswer(reply, CASES[i]!.answer);
    },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;

  for (const [i, c] of CASES.entries()) {
    for (const method of ['GET', 'HEAD']) {
      const viaFastify = await rawExchange(port, method, `/fastify/${i}`);
      const viaRaw = await rawExchange(port, method, `/raw/${i}`);
      t.equal(viaRaw, viaFastify, `${c.name} (${method})`);
      t.equal(taken[i], c.fast, `${c.name}: ${c.fast ? 'written raw' : 'left to fastify'}`);
    }
  }
  t.match(await rawExchange(port, 'GET', '/raw/0'), /^HTTP\/1\.1 200 OK\r\n/, 'sanity: a real answer was compared');
});
