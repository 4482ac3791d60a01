// Tests for the sign-out scenario's probe: answer framing (length, chunked, none), answers split over reads, reconnects, failures.
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { RawProbe, parseAnswer } from './raw-probe.ts';

const listen = (server: net.Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

t.test('parseAnswer: sized, chunked and bodiless answers; incomplete ones wait', async (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  t.same(parseAnswer(b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc'), 0), { status: 200, end: 41, close: false });
  t.equal(parseAnswer(b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab'), 0), null, 'body incomplete');
  t.equal(parseAnswer(b('HTTP/1.1 200 OK\r\nContent-Len'), 0), null, 'head incomplete');
  const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
  t.same(parseAnswer(b(chunked), 0), { status: 200, end: chunked.length, close: false });
  t.equal(parseAnswer(b(chunked.slice(0, -2)), 0), null, 'last chunk incomplete');
  const notModified = 'HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n';
  t.same(parseAnswer(b(notModified), 0)?.end, notModified.length, '304 has no body whatever its length says');
  t.same(parseAnswer(b('HTTP/1.1 302 Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'), 0)?.close, true);
  const first = 'HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n';
  const two = b(`${first}HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx`);
  t.same(parseAnswer(two, 0), { status: 401, end: first.length, close: false });
  t.same(parseAnswer(two, first.length), { status: 200, end: two.length, close: false }, 'parses from an offset');
  t.throws(() => parseAnswer(b('HTTP/1.1 200 OK\r\nX: y\r\n\r\n'), 0), /no usable Content-Length/);
  t.throws(() => parseAnswer(b('SSH-2.0-OpenSSH\r\n\r\n'), 0), /not an HTTP\/1.1 answer/);
});

t.test('a node server: statuses in order on one connection, then a reconnect after Connection: close', async (t) => {
  let connections = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200);
      res.write('a');
      res.end('b');
    } else if (req.url === '/close') {
      res.writeHead(302, { connection: 'close', 'content-length': 0 });
      res.end();
    } else {
      t.equal(req.headers.cookie, 'c=1', 'headers are sent');
      res.writeHead(Number(req.url!.slice(1)), { 'content-length': 5 });
      res.end('hello');
    }
  });
  server.on('connection', () => connections++);
  const port = await listen(server);
  t.teardown(() => server.close());
  const probe = new RawProbe(port);
  t.teardown(() => probe.close());
  const h = { host: 'a', cookie: 'c=1' };
  const before = performance.now();
  const first = await probe.get('/200', h);
  t.equal(first.status, 200);
  t.ok(first.at >= before, 'the answer time is read on the same clock');
  t.equal((await probe.get('/401', h)).status, 401);
  t.equal((await probe.get('/chunked', h)).status, 200);
  t.equal(connections, 1, 'one kept-alive connection');
  t.equal((await probe.get('/close', h)).status, 302);
  t.equal((await probe.get('/403', h)).status, 403);
  t.equal(connections, 2, 'a new connection after Connection: close');
  await t.rejects(Promise.all([probe.get('/200', h), probe.get('/200', h)]), /one request at a time/);
});

t.test('an answer split over many reads, and a connection lost before the answer', async (t) => {
  const answer = 'HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 4\r\n\r\nbody';
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let requests = 0;
    // The first request of a connection is answered in pieces, the next one (or a /drop) closes it.
    socket.on('data', async (d) => {
      if (++requests > 1 || d.toString('latin1').startsWith('GET /drop')) {
        socket.destroy();
        return;
      }
      for (let i = 0; i < answer.length; i += 7) {
        socket.write(answer.slice(i, i + 7));
        await new Promise((r) => setTimeout(r, 2));
      }
    });
  });
  const port = await listen(server);
  t.teardown(() => server.close());
  const probe = new RawProbe(port);
  t.teardown(() => probe.close());
  t.equal((await probe.get('/', { host: 'a' })).status, 302);
  await t.rejects(probe.get('/again', { host: 'a' }), /connection closed before the answer/);
  await t.rejects(probe.get('/drop', { host: 'a' }), /connection closed before the answer/, 'a new connection, lost too');
});
