// The direct request path (fastify's routing skipped) puts the same bytes on the wire as the fastify path, for every kind of answer.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { startUpstream } from '@portcullis/testkit';
import t from 'tap';
import type { Answer } from './answers.ts';
import { providerYaml, startTestGateway, startTimedGateway, testConfig } from './test-support.ts';

const BOB = { sub: 'bob-sub', preferred_username: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['users'] };

/** Sends `request` (a whole HTTP/1.1 message) on a fresh connection; the raw answer, Date line removed. */
async function exchange(port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await once(socket, 'close');
  return Buffer.concat(chunks)
    .toString('latin1')
    .replace(/\r\ndate: [^\r]*/gi, '');
}

/** Per-login randomness (state, nonce, sealed cookies) differs between any two answers: mask long tokens. */
const masked = (raw: string) => raw.replace(/[A-Za-z0-9_-]{22,}/g, '<token>');

t.test('direct path and fastify path answer byte for byte alike', async (t) => {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: upstream.url, skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f', skip_path_regex: '"^/public/"' })}
`);
  // Two gateways over one log and store would need a cluster; two separate embedded ones get the same sessions by logging in on each.
  const direct = await startTestGateway(config);
  const viaFastify = await startTestGateway(config, { directPath: false });
  t.teardown(() => Promise.all([direct.close(), viaFastify.close()]));
  // Requests fastify routes on the direct gateway (it should see only the ones it must).
  const routedByFastify: string[] = [];
  direct.gateway.http.addHook('onRequest', async (req) => {
    routedByFastify.push(`${req.method} ${req.url}`);
  });
  await direct.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  await viaFastify.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  const portOf = (g: typeof direct) => (g.gateway.http.server.address() as { port: number }).port;
  // The same session id on both: the cookie carries id and sequence, both logs start at 1.
  const cookies = { direct: await direct.login('app', BOB, { sessionId: 'bob-session' }), fastify: await viaFastify.login('app', BOB, { sessionId: 'bob-session' }) };
  const fwdCookies = { direct: await direct.login('single', BOB, { sessionId: 'bob-fwd' }), fastify: await viaFastify.login('single', BOB, { sessionId: 'bob-fwd' }) };

  const cases: Array<{ name: string; request: (side: 'direct' | 'fastify') => string; expect: RegExp }> = [
    {
      name: 'forward auth (nginx) with a session: 200 and the identity headers',
      request: (s) => `GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\ncookie: ${fwdCookies[s]}\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 200 OK\r\n[\s\S]*x-authentik-username: bob\r\n/,
    },
    {
      name: 'forward auth (nginx) without a session: 401',
      request: () => 'GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\nconnection: close\r\n\r\n',
      expect: /^HTTP\/1\.1 401 /,
    },
    {
      name: 'allow-listed path',
      request: () => 'GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/public/x.css\r\nconnection: close\r\n\r\n',
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    { name: 'proxy mode without a session: redirect', request: () => 'GET /private?x=1 HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 302 / },
    {
      name: 'proxy mode with a session: the upstream answer',
      request: (s) => `GET /hello?q=1 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 200 OK\r\n[\s\S]*x-authentik-username/i,
    },
    {
      name: 'proxy mode, HEAD',
      request: (s) => `HEAD /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    {
      name: 'proxy mode, POST with a body',
      request: (s) => `POST /form HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello`,
      expect: /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello/,
    },
    { name: 'no provider for the host: authentik\'s 400 JSON', request: () => 'GET / HTTP/1.1\r\nhost: nobody.example\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 400 [\s\S]*content-type: application\/json; charset=utf-8\r\n/ },
    { name: 'ping', request: () => 'GET /outpost.goauthentik.io/ping HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 204 / },
    { name: 'sign_out with no auth service to ask: the 503 page', request: () => 'GET /outpost.goauthentik.io/sign_out HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 503 [\s\S]*text\/html[\s\S]*\r\nretry-after: 5\r\n/i },
    { name: 'a valid escape in the path (fastify routes it)', request: (s) => `GET /x%20y HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`, expect: /^HTTP\/1\.1 200 OK\r\n/ },
    { name: 'an invalid escape in the path (fastify refuses it)', request: () => 'GET /a%zz HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 400 / },
    {
      name: 'an absolute-form request line (as sent to a forward proxy)',
      request: (s) => `GET http://app.company/hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 \d{3} /,
    },
    { name: 'an HTTP/1.0 request without Host', request: () => 'GET /outpost.goauthentik.io/ping HTTP/1.0\r\n\r\n', expect: /^HTTP\/1\.1 \d{3} / },
    {
      name: 'a WebDAV method (PROPFIND) in proxy mode',
      request: (s) => `PROPFIND /dav/ HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ndepth: 1\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    {
      name: 'a method fastify does not know by default (PURGE) in proxy mode: relayed like any other',
      request: (s) => `PURGE /cache/x HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`,
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    {
      name: 'SEARCH with a body in proxy mode',
      request: (s) => `SEARCH /items HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc`,
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    { name: 'PURGE without a session: the login redirect, not a 404', request: () => 'PURGE /cache/x HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n', expect: /^HTTP\/1\.1 302 / },
    {
      name: 'a POST whose Content-Type fastify cannot parse (empty): proxied, the body untouched',
      request: (s) => `POST /form HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-type: \r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello`,
      expect: /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello/,
    },
    {
      name: 'a PUT with a type without subtype (text)',
      request: (s) => `PUT /form HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-type: text\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello`,
      expect: /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello/,
    },
    {
      name: 'QUERY without a Content-Type: the upstream judges it',
      request: (s) => `QUERY /items HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc`,
      expect: /^HTTP\/1\.1 200 OK\r\n/,
    },
    { name: 'a valid escape in the query only', request: (s) => `GET /hello?q=a%20b HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`, expect: /^HTTP\/1\.1 200 OK\r\n/ },
  ];
  for (const c of cases) {
    const viaDirect = await exchange(portOf(direct), c.request('direct'));
    const viaFramework = await exchange(portOf(viaFastify), c.request('fastify'));
    t.match(viaDirect, c.expect, `${c.name}: the expected answer`);
    t.equal(masked(viaDirect), masked(viaFramework), `${c.name}: the same bytes on both paths`);
  }
  // (fastify refuses /a%zz before any hook runs)
  t.same(routedByFastify, ['GET /x%20y'], 'fastify routed only the request with an escape in its path');
});

t.test('both paths time every request exactly once, where its answer ends: written, relayed, failed upstream, ping', async (t) => {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  // A port nothing listens on: the relay fails (502).
  const dead = createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as { port: number }).port;
  await new Promise((r) => dead.close(r));
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: upstream.url })}
${providerYaml({ name: 'gone', mode: 'proxy', external_host: 'http://gone.company', internal_host: `http://127.0.0.1:${deadPort}`, client_id: 'client-g' })}
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f' })}
`);
  for (const directPath of [true, false]) {
    const side = directPath ? 'direct' : 'fastify';
    const { gw, port, requests, upstreams } = await startTimedGateway(t, config, { directPath, label: side });
    const app = await gw.login('app', BOB);
    const gone = await gw.login('gone', BOB);
    const fwd = await gw.login('single', BOB);
    const sent = [
      `GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/p\r\ncookie: ${fwd}\r\nconnection: close\r\n\r\n`,
      `GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${app}\r\nconnection: close\r\n\r\n`,
      `GET /x HTTP/1.1\r\nhost: gone.company\r\ncookie: ${gone}\r\nconnection: close\r\n\r\n`,
      'GET /outpost.goauthentik.io/ping HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n',
    ];
    const answers = [];
    for (const raw of sent) answers.push((await exchange(port, raw)).slice(0, 12));
    t.same(answers, ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 502', 'HTTP/1.1 204'], `${side}: the answers`);
    // A relayed answer is timed when the relay ends, which may be just after the client has read it.
    for (let i = 0; i < 100 && requests.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    t.same(requests, ['GET fwd.company app', 'GET app.company app', 'GET gone.company app', 'GET unknown ping'], `${side}: each request timed once, in order`);
    t.same(upstreams, ['GET app.company ok', 'GET gone.company failed'], `${side}: each upstream exchange timed once`);
  }
});

t.test('an answer that cannot be written becomes a 500 without internals, on both paths', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f' })}
`);
  // The handler never throws and sanitizes header values; these stand in for a bug in either.
  const failures: Array<[string, () => Promise<Answer>]> = [
    ['a header value Node refuses to send', async () => ({ kind: 'respond', status: 200, headers: [['x-bad', 'a\u0000b']], body: '' })],
    ['a handler that rejects', async () => Promise.reject(new Error('boom: internal detail'))],
  ];
  for (const directPath of [true, false]) {
    const gw = await startTestGateway(config, { directPath });
    t.teardown(() => gw.close());
    await gw.gateway.http.listen({ port: 0, host: '127.0.0.1' });
    const port = (gw.gateway.http.server.address() as { port: number }).port;
    for (const [name, handle] of failures) {
      gw.gateway.handler.handle = handle;
      gw.gateway.handler.decide = handle;
      gw.warnings.length = 0;
      // The first on a kept-alive connection (the front end's on the direct gateway), the second closing it (node's server's).
      const request = 'GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/\r\n';
      const raw = await exchange(port, `${request}\r\n${request}connection: close\r\n\r\n`);
      const what = `${directPath ? 'direct' : 'fastify'} path, ${name}`;
      t.match(raw, /^HTTP\/1\.1 500 Internal Server Error\r\n[\s\S]*the gateway could not answer this request/, `${what}: 500`);
      t.equal(raw.match(/HTTP\/1\.1 500 Internal Server Error\r\n/g)?.length, 2, `${what}: 500 for the kept-alive request and for the closing one`);
      t.notMatch(raw, /boom|ERR_INVALID_CHAR|Invalid character|x-bad/, `${what}: nothing internal in the answer`);
      t.ok(gw.warnings.includes('gateway: could not write an answer'), `${what}: logged`);
    }
  }
});

t.test('a request in flight when the gateway starts closing is answered with Connection: close, so its connection cannot hold the shutdown', async (t) => {
  // An upstream that answers after 300 ms: the request is in flight (its connection busy, not idle) when close() starts.
  const upstream = createServer((req, res) => {
    req.resume();
    setTimeout(() => res.end('slow'), 300);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  await gw.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  const port = (gw.gateway.http.server.address() as { port: number }).port;
  const cookie = await gw.login('app', BOB);
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  t.teardown(() => socket.destroy());
  let received = '';
  socket.on('data', (d: Buffer) => {
    received += d.toString('latin1');
  });
  socket.write(`GET /slow HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`);
  await new Promise((r) => setTimeout(r, 100));
  const closed = gw.gateway.http.close();
  const done = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 5 s'), 5_000))]);
  if (!socket.closed) await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 5_000))]);
  t.match(received, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n[\s\S]*slow$/, 'the answer came, saying Connection: close');
  t.equal(done, 'closed', 'close() finished');
});
