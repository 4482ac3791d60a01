// The plain-HTTP front end (front-h1.ts) answers keep-alive requests with the bytes node's server sends, hands every other request (and its connection) to node's server, and keeps node's timeouts and shutdown.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { type Socket, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { getFreePort, startUpstream } from '@portcullis/testkit';
import t from 'tap';
import { frontEndAvailable } from './front-h1.ts';
import { providerYaml, startTestGateway, startTimedGateway, testConfig } from './test-support.ts';

const BOB = { sub: 'bob-sub', preferred_username: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['users'] };
const PING_CLOSE = 'GET /outpost.goauthentik.io/ping HTTP/1.1\r\nhost: app.company\r\nconnection: close\r\n\r\n';

/** Writes `pieces` on a fresh connection (a pause between them), reads until the server closes; the raw answers, Date lines removed. */
async function exchange(port: number, pieces: string[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = once(socket, 'close');
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await sleep(30);
    socket.write(pieces[i]!);
  }
  // An answer that never ends fails the comparison (with what came) rather than the test's timeout.
  await Promise.race([closed, sleep(10_000)]);
  socket.destroy();
  return Buffer.concat(chunks)
    .toString('latin1')
    .replace(/\r\ndate: [^\r]*/gi, '');
}

/** Per-login randomness (state, nonce, sealed cookies) differs between any two answers: mask long tokens. */
const masked = (raw: string) => raw.replace(/[A-Za-z0-9_-]{22,}/g, '<token>');
/** The number of HTTP answers in a byte stream. */
const answers = (raw: string) => raw.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0;

async function twoGateways(t: import('tap').Test, extraProviders = '') {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  // A port nothing listens on: the relay fails (502).
  const deadPort = await getFreePort();
  // Sized answers whose bodies come in two parts, 5 ms apart: the relay holds, then writes them with the end.
  const parts = createServer((req, res) => {
    const body = Buffer.alloc(req.url === '/big' ? 64 * 1024 : 300, 'p');
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.write(body.subarray(0, 100));
    setTimeout(() => res.end(body.subarray(100)), 5);
  });
  await new Promise<void>((resolve) => parts.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((r) => parts.close(r)));
  const partsUrl = `http://127.0.0.1:${(parts.address() as { port: number }).port}`;
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: upstream.url, skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f', skip_path_regex: '"^/public/"' })}
${providerYaml({ name: 'gone', mode: 'proxy', external_host: 'http://gone.company', internal_host: `http://127.0.0.1:${deadPort}`, client_id: 'client-g' })}
${providerYaml({ name: 'parts', mode: 'proxy', external_host: 'http://parts.company', internal_host: partsUrl, client_id: 'client-p' })}
${extraProviders}`);
  const front = await startTestGateway(config);
  const node = await startTestGateway(config, { frontEnd: false });
  t.teardown(() => Promise.all([front.close(), node.close()]));
  await front.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  await node.gateway.http.listen({ port: 0, host: '127.0.0.1' });
  const portOf = (g: typeof front) => (g.gateway.http.server.address() as { port: number }).port;
  const cookies = {
    front: await front.login('app', BOB, { sessionId: 'bob-session' }),
    node: await node.login('app', BOB, { sessionId: 'bob-session' }),
  };
  const fwd = { front: await front.login('single', BOB, { sessionId: 'bob-fwd' }), node: await node.login('single', BOB, { sessionId: 'bob-fwd' }) };
  const gone = { front: await front.login('gone', BOB, { sessionId: 'bob-gone' }), node: await node.login('gone', BOB, { sessionId: 'bob-gone' }) };
  const inParts = { front: await front.login('parts', BOB, { sessionId: 'bob-parts' }), node: await node.login('parts', BOB, { sessionId: 'bob-parts' }) };
  return { front, node, ports: { front: portOf(front), node: portOf(node) }, cookies, fwd, gone, inParts, upstream };
}

t.test('the front end is available on this node (else node serves everything and these tests prove nothing)', async (t) => {
  t.ok(frontEndAvailable);
  const { front, node } = await twoGateways(t);
  // Its listener is the server's only one once listening: another would get every connection too.
  t.equal(front.gateway.http.server.listenerCount('connection'), 1, 'one connection listener (the front end) on its gateway');
  t.equal(node.gateway.http.server.listenerCount('connection'), 1, "one (node's own) on the other");
  t.equal(node.gateway.http.server.listeners('connection')[0]?.name, 'connectionListener', "node's own listener without the front end");
  t.not(front.gateway.http.server.listeners('connection')[0]?.name, 'connectionListener', 'the front end in its place');
});

t.test('front end and node server: the same bytes for the same requests on one keep-alive connection', async (t) => {
  const { front, ports, cookies, fwd, gone, inParts } = await twoGateways(t);
  // Requests node's server handled on the front-end gateway (each hand-off is counted by node's 'request').
  const byNode: string[] = [];
  front.gateway.http.server.on('request', (req) => byNode.push(`${req.method} ${req.url}`));
  type Side = 'front' | 'node';
  const many = Array.from({ length: 40 }, (_, i) => `x-extra-${i}: v${i}\r\n`).join('');
  const cases: Array<{ name: string; pieces: (s: Side) => string[]; viaNode: string[] }> = [
    {
      name: 'forward auth with a session, twice, then a ping that closes',
      pieces: (s) => [`GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\ncookie: ${fwd[s]}\r\n\r\n`.repeat(2) + PING_CLOSE],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'forward auth without a session (401), the allow-listed path, a redirect',
      pieces: () => [
        'GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\n\r\n' +
          'GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/public/x.css\r\n\r\n' +
          'GET /private?x=1 HTTP/1.1\r\nhost: app.company\r\n\r\n' +
          PING_CLOSE,
      ],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'proxied GET and HEAD, a chunked stream, 204 and 304 from the upstream, a failed upstream (502)',
      pieces: (s) => [
        `GET /hello?q=1 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `HEAD /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `GET /__stream?chunks=3&delay=5 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `HEAD /__stream?chunks=2&delay=5 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `GET /__status/204 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `GET /__status/304 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `GET /x HTTP/1.1\r\nhost: gone.company\r\ncookie: ${gone[s]}\r\n\r\n` +
          PING_CLOSE,
      ],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'sized answers whose bodies come in parts (300 B, 64 KiB twice)',
      pieces: (s) => [
        `GET /small HTTP/1.1\r\nhost: parts.company\r\ncookie: ${inParts[s]}\r\n\r\n` +
          `GET /big HTTP/1.1\r\nhost: parts.company\r\ncookie: ${inParts[s]}\r\n\r\n`.repeat(2) +
          PING_CLOSE,
      ],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'more header lines than the parser hands over at once, a repeated Host (the first counts), a Cookie header split in two',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\nhost: fwd.company\r\n${many}cookie: a=1\r\ncookie: ${cookies[s]}\r\n\r\n${PING_CLOSE}`],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'a request with a body, then a GET: node serves both, and the rest of the connection',
      pieces: (s) => [
        `GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n` +
          `POST /form HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello` +
          `GET /after HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n${PING_CLOSE}`,
      ],
      viaNode: ['POST /form', 'GET /after', 'GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'a GET announcing a body',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\ncontent-length: 3\r\n\r\nabc${PING_CLOSE}`],
      viaNode: ['GET /hello', 'GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'a head split over two reads',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.co`, `mpany\r\ncookie: ${cookies[s]}\r\n\r\n${PING_CLOSE}`],
      viaNode: ['GET /hello', 'GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'an Expect: 100-continue',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nexpect: 100-continue\r\n\r\n${PING_CLOSE}`],
      viaNode: ['GET /hello', 'GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'an HTTP/1.0 request after a front-end one',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\nGET /outpost.goauthentik.io/ping HTTP/1.0\r\n\r\n`],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'an escape in the path (fastify routes it) and a method the front end leaves to node (PURGE)',
      pieces: (s) => [
        `GET /x%20y HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\nPURGE /cache HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n${PING_CLOSE}`,
      ],
      viaNode: ['GET /x%20y', 'PURGE /cache', 'GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'a malformed request after a good one: node refuses it (400) and closes',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n`, 'GET / HTTP/1.1\r\nbad header line\r\n\r\n'],
      viaNode: [],
    },
    {
      name: 'a head over the size limit after a good one: node answers 431',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n`, `GET / HTTP/1.1\r\nhost: app.company\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`],
      viaNode: [],
    },
    {
      name: 'no Host header (node refuses it) after a good request',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\nGET /outpost.goauthentik.io/ping HTTP/1.1\r\n\r\n`],
      viaNode: [],
    },
    {
      name: 'an absolute-form request line',
      pieces: (s) => [`GET http://app.company/hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\n\r\n${PING_CLOSE}`],
      viaNode: ['GET /outpost.goauthentik.io/ping'],
    },
    {
      name: 'a request that asks to close',
      pieces: (s) => [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies[s]}\r\nconnection: close\r\n\r\n`],
      viaNode: ['GET /hello'],
    },
  ];
  for (const c of cases) {
    byNode.length = 0;
    const viaFront = await exchange(ports.front, c.pieces('front'));
    const viaNode = await exchange(ports.node, c.pieces('node'));
    t.ok(answers(viaFront) > 0, `${c.name}: answered`);
    t.equal(masked(viaFront), masked(viaNode), `${c.name}: the same bytes`);
    t.same(byNode, c.viaNode, `${c.name}: node's server saw only the requests it must`);
  }
});

t.test('pipelined requests are answered in order, one at a time, however many come in one read', async (t) => {
  const { ports, cookies, fwd } = await twoGateways(t);
  const auth = `GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\ncookie: ${fwd.front}\r\n\r\n`;
  const proxied = (i: number) => `GET /n${i} HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies.front}\r\n\r\n`;
  // 2 000 answered synchronously (a recursion per request would overflow the stack), with proxied ones between.
  let sent = '';
  for (let i = 0; i < 2000; i++) sent += i % 500 === 250 ? proxied(i) : auth;
  const raw = await exchange(ports.front, [sent + PING_CLOSE]);
  t.equal(answers(raw), 2001, 'every request answered');
  const paths = [...raw.matchAll(/"url":"\/n(\d+)"/g)].map((m) => Number(m[1]));
  t.same(paths, [250, 750, 1250, 1750], 'the proxied answers in their places');
  const statuses = new Set(raw.match(/HTTP\/1\.1 \d{3}/g));
  t.same([...statuses].sort(), ['HTTP/1.1 200', 'HTTP/1.1 204'], 'all 200 but the closing ping');
});

t.test('a client that goes away mid answer cancels the upstream request; the gateway serves on', async (t) => {
  // An upstream that starts an answer and never ends it: only the relay giving up closes its side.
  let upstreamClosed = false;
  const endless = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part');
    res.on('close', () => {
      upstreamClosed = true;
    });
  });
  await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((r) => endless.close(r)));
  const endlessUrl = `http://127.0.0.1:${(endless.address() as { port: number }).port}`;
  const { front, ports, cookies } = await twoGateways(
    t,
    providerYaml({ name: 'endless', mode: 'proxy', external_host: 'http://endless.company', internal_host: endlessUrl, client_id: 'client-e' }),
  );
  const cookie = await front.login('endless', BOB);
  const socket = connect(ports.front, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`GET /forever HTTP/1.1\r\nhost: endless.company\r\ncookie: ${cookie}\r\n\r\n`);
  await once(socket, 'data');
  t.notOk(upstreamClosed, 'the upstream answer is under way');
  socket.destroy();
  for (let i = 0; i < 200 && !upstreamClosed; i++) await sleep(10);
  t.ok(upstreamClosed, 'the upstream request was cancelled');
  const again = await exchange(ports.front, [`GET /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies.front}\r\nconnection: close\r\n\r\n`]);
  t.match(again, /^HTTP\/1\.1 200 OK/, 'the next client is served');
});

t.test("an idle front-end connection is closed after the server's keep-alive timeout", async (t) => {
  const { front, ports, fwd } = await twoGateways(t);
  front.gateway.http.server.keepAliveTimeout = 300;
  const socket: Socket = connect(ports.front, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = once(socket, 'close');
  const started = performance.now();
  socket.write(`GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\ncookie: ${fwd.front}\r\n\r\n`);
  await closed;
  const text = Buffer.concat(chunks).toString('latin1');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: keep-alive\r\nKeep-Alive: timeout=0\r\n/, 'answered keep-alive, with the timeout node states');
  t.ok(performance.now() - started >= 300, 'not before the timeout');
});

t.test('stop: idle front-end connections are closed; an answer under way is sent to its end, then its connection closes', async (t) => {
  const { front, ports, cookies, fwd } = await twoGateways(t);
  const idle = connect(ports.front, '127.0.0.1');
  await once(idle, 'connect');
  idle.write(`GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/page\r\ncookie: ${fwd.front}\r\n\r\n`);
  await once(idle, 'data');
  const idleClosed = once(idle, 'close');
  const busy = connect(ports.front, '127.0.0.1');
  await once(busy, 'connect');
  const busyChunks: Buffer[] = [];
  busy.on('data', (d: Buffer) => busyChunks.push(d));
  const busyClosed = once(busy, 'close');
  // A stream that takes ~300 ms: under way when the stop begins.
  busy.write(`GET /__stream?chunks=6&delay=50 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookies.front}\r\n\r\n`);
  await once(busy, 'data');
  await front.gateway.stop();
  await idleClosed;
  await busyClosed;
  const text = Buffer.concat(busyChunks).toString('latin1');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'the answer under way was sent');
  t.match(text, /0\r\n\r\n$/, 'to its end');
});

t.test('front-end requests are timed once each, where their answers end, as on node\'s server', async (t) => {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: 'http://app.company', internal_host: upstream.url })}
${providerYaml({ name: 'single', mode: 'forward_single', external_host: 'http://fwd.company', client_id: 'client-f' })}
`);
  const { gw, port, requests, upstreams } = await startTimedGateway(t, config);
  const app = await gw.login('app', BOB);
  const fwd = await gw.login('single', BOB);
  const raw = await exchange(port, [
    `GET /outpost.goauthentik.io/auth/nginx HTTP/1.1\r\nhost: fwd.company\r\nx-original-url: http://fwd.company/p\r\ncookie: ${fwd}\r\n\r\n`,
    `HEAD /hello HTTP/1.1\r\nhost: app.company\r\ncookie: ${app}\r\n\r\n`,
    'GET /outpost.goauthentik.io/ping HTTP/1.1\r\nhost: app.company\r\n\r\n',
    PING_CLOSE,
  ]);
  t.same(raw.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 204', 'HTTP/1.1 204'], 'the answers');
  t.same(requests, ['GET fwd.company app', 'HEAD app.company app', 'GET unknown ping', 'GET unknown ping'], 'each request timed once, in order');
  t.same(upstreams, ['HEAD app.company ok'], 'the upstream exchange timed once');
});

t.test('a sized answer whose body came in parts is sent whole on a connection that stays open', async (t) => {
  // (A connection that closes flushes whatever its socket still held: only an open one shows an answer stuck in it.)
  const { ports, inParts } = await twoGateways(t);
  const socket = connect(ports.front, '127.0.0.1');
  await once(socket, 'connect');
  t.teardown(() => socket.destroy());
  let received = Buffer.alloc(0);
  const complete = (): boolean => {
    const text = received.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(text.slice(0, end))?.[1];
    return end !== -1 && length !== undefined && received.length >= end + 4 + Number(length);
  };
  for (const path of ['/small', '/big', '/big']) {
    received = Buffer.alloc(0);
    const whole = new Promise<boolean>((resolve) => {
      const onData = (d: Buffer) => {
        received = Buffer.concat([received, d]);
        if (complete()) {
          socket.off('data', onData);
          resolve(true);
        }
      };
      socket.on('data', onData);
      setTimeout(() => {
        socket.off('data', onData);
        resolve(false);
      }, 5_000);
    });
    socket.write(`GET ${path} HTTP/1.1\r\nhost: parts.company\r\ncookie: ${inParts.front}\r\n\r\n`);
    t.ok(await whole, `${path}: the whole answer came (${received.length} bytes)`);
  }
});
