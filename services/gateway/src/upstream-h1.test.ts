// The native plain-HTTP relay's connections against scripted raw upstreams: framing edge cases, keep-alive reuse and its races, out-of-step upstreams, limits, timeouts and shutdown.
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { type Server, type Socket, createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { H1Pools, type H1Options, HeaderBlock, type RelayHandler, UpstreamError, bodySlabsAllocated, nativeRelayAvailable } from './upstream-h1.ts';

const OPTIONS: H1Options = { maxConnections: 16, idleMs: 30_000, headersTimeoutMs: 60_000, connectTimeoutMs: 10_000, maxHeaderBytes: 1024 * 1024 };

/** What a relay handler was told about one request. */
interface Outcome {
  status?: number;
  headers?: string[];
  body: string;
  complete: boolean;
  error?: Error;
}

/** Sends one request (with `body`, if any) through `pools` and resolves when it completes or fails. */
function send(
  pools: H1Pools,
  origin: string,
  method = 'GET',
  path = '/',
  headers: Record<string, string | string[]> = { host: 'app.test' },
  body: IncomingMessage | null = null,
  block?: HeaderBlock,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '', complete: false };
    const handler: RelayHandler = {
      onConnect() {},
      onHeaders(status, raw) {
        out.status = status;
        out.headers = raw.map(String);
        return true;
      },
      onData(chunk) {
        out.body += chunk.toString('latin1');
        return true;
      },
      onComplete() {
        out.complete = true;
        resolve(out);
      },
      onError(err) {
        out.error = err;
        resolve(out);
      },
    };
    pools.get(origin).dispatch(method, path, headers, body, handler, block);
  });
}

/** Sends GET /gone for a client that has already left (it aborts when given a connection); errors go to `errors`. */
function sendGone(pools: H1Pools, origin: string, errors: Error[]): void {
  pools.get(origin).dispatch('GET', '/gone', {}, null, {
    onConnect: (abort) => abort(new Error('client gone')),
    onHeaders: () => true,
    onData: () => true,
    onComplete() {},
    onError: (e) => errors.push(e),
  });
}

/** A raw TCP upstream: `answer` gets each request head (as text) and the socket it came on; counts connections. */
async function rawUpstream(t: Test, answer: (head: string, socket: Socket, index: number) => void): Promise<{ origin: string; connections: () => number; heads: string[]; server: Server }> {
  let connections = 0;
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        heads.push(head);
        answer(head, socket, heads.length - 1);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const address = server.address() as { port: number };
  return { origin: `http://127.0.0.1:${address.port}`, connections: () => connections, heads, server };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GETs / with a handler that asks for a pause (false) on its first three chunks, resuming 20 ms later each time; the whole body. */
function readWithPauses(pools: H1Pools, origin: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let resume: () => void = () => {};
    let pauses = 0;
    pools.get(origin).dispatch('GET', '/', { host: 'app.test' }, null, {
      onConnect() {},
      onHeaders(_s, _h, r) {
        resume = r;
        return true;
      },
      onData(chunk, release) {
        parts.push(Buffer.from(chunk));
        release?.();
        if (pauses < 3) {
          pauses++;
          setTimeout(resume, 20);
          return false;
        }
        return true;
      },
      onComplete: () => resolve(Buffer.concat(parts)),
      onError: reject,
    });
  });
}
const ok = (body: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;

t.test('native upstream relay', async (t) => {
  // On a node whose parser internals changed shape the relay is off (undici carries everything); on this one it must be on.
  t.equal(nativeRelayAvailable, true, "node's HTTP parser passed the load-time check");
  t.test('a head split across reads with more than 32 header lines arrives whole and in order', async (t) => {
    const names = Array.from({ length: 40 }, (_, i) => `x-h${i}`);
    const up = await rawUpstream(t, (_head, socket) => {
      const text = `HTTP/1.1 200 OK\r\n${names.map((n) => `${n}: v-${n}\r\n`).join('')}content-length: 2\r\n\r\nhi`;
      socket.write(text.slice(0, 150));
      setTimeout(() => socket.write(text.slice(150)), 20);
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin);
    t.equal(r.status, 200);
    t.same(r.headers?.filter((_, i) => i % 2 === 0).slice(0, 40), names, 'all 40 names, in order');
    t.equal(r.headers?.[1], 'v-x-h0');
    t.equal(r.body, 'hi');
  });

  t.test("an answer's trailers are dropped: they never become headers of the next answer on that connection", async (t) => {
    const names = Array.from({ length: 40 }, (_, i) => `x-h${i}`);
    const up = await rawUpstream(t, (_head, socket, index) => {
      if (index === 0) {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-evil\r\n\r\n2\r\nhi\r\n0\r\nx-evil: from-the-first-answer\r\n\r\n');
      } else {
        // More than 32 header lines: node's parser hands this head over in parts (kOnHeaders), as it did the trailers.
        socket.write(`HTTP/1.1 200 OK\r\n${names.map((n) => `${n}: v\r\n`).join('')}content-length: 2\r\n\r\nok`);
      }
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const first = await send(pools, up.origin);
    t.equal(first.body, 'hi');
    const second = await send(pools, up.origin);
    t.equal(up.connections(), 1, 'both on one connection');
    t.equal(second.body, 'ok');
    t.notOk(second.headers?.includes('x-evil'), 'no trailer of the first answer among the second answer\'s headers');
    t.equal(second.headers?.[0], 'x-h0', 'the second head starts with its own first line');
    t.equal(second.headers?.length, 82);
  });

  t.test('interim 100 and 103 answers are skipped; the final answer is relayed', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
      socket.write(ok('final'));
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin);
    t.equal(r.status, 200);
    t.equal(r.body, 'final');
  });

  t.test('HEAD: the announced length is not waited for, and the connection is reused', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      socket.write(head.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n' : ok('after'));
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin, 'HEAD');
    t.equal(r.status, 200);
    t.equal(r.body, '');
    t.ok(r.complete);
    const next = await send(pools, up.origin);
    t.equal(next.body, 'after', 'the next answer is its own');
    t.equal(up.connections(), 1, 'one connection served both');
  });

  t.test('204 and 304 have no body; a close-delimited body ends at the close, and that connection is not reused', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      if (head.startsWith('GET /204')) socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (head.startsWith('GET /304')) socket.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n');
      else socket.end('HTTP/1.1 200 OK\r\n\r\nuntil the end');
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    t.same([(await send(pools, up.origin, 'GET', '/204')).status, (await send(pools, up.origin, 'GET', '/304')).status], [204, 304]);
    t.equal(up.connections(), 1);
    const r = await send(pools, up.origin, 'GET', '/close');
    t.equal(r.body, 'until the end');
    t.ok(r.complete, 'complete at the close');
    await send(pools, up.origin, 'GET', '/204');
    t.equal(up.connections(), 2, 'a new connection after the close-delimited answer');
  });

  t.test('an answer cut short of its Content-Length is an error after the head, never a complete answer', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this'));
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin);
    t.equal(r.status, 200);
    t.notOk(r.complete);
    t.ok(r.error, 'failed');
  });

  t.test('an answer with both Content-Length and Transfer-Encoding is refused before any of it is relayed', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'));
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin);
    t.equal(r.status, undefined, 'no head was relayed');
    t.match(r.error, { code: 'UND_ERR_PARSE' });
  });

  t.test('an upstream out of step (two answers to one request) never hands the extra answer to the next request', async (t) => {
    const up = await rawUpstream(t, (head, socket, index) => {
      // One write: a whole answer plus the start of another, so the extra bytes arrive in the same read.
      if (index === 0) socket.write(`${ok('first')}HTTP/1.1 200 OK\r\nx-stray: 1\r\n`);
      else socket.write(ok(head.split(' ')[1]!));
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    t.equal((await send(pools, up.origin, 'GET', '/one')).body, 'first');
    const second = await send(pools, up.origin, 'GET', '/two');
    t.equal(second.body, '/two', 'the second request gets its own answer');
    t.equal(up.connections(), 2, 'on a new connection');

    const late = await rawUpstream(t, (head, socket, index) => {
      socket.write(ok(head.split(' ')[1]!));
      if (index === 0) setTimeout(() => socket.write(ok('LATE')), 30);
    });
    t.equal((await send(pools, late.origin, 'GET', '/a')).body, '/a');
    await sleep(80);
    t.equal((await send(pools, late.origin, 'GET', '/b')).body, '/b', 'bytes that came while idle closed that connection');
    t.equal(late.connections(), 2);
  });

  t.test('a reused connection the upstream closes without answering: GET is sent again on a new one, POST fails', async (t) => {
    // Every connection answers its first request and closes silently on the second (an idle timeout racing the request).
    const up = await rawUpstream(t, (head, socket) => {
      const n = (socket as Socket & { served?: number }).served ?? 0;
      (socket as Socket & { served?: number }).served = n + 1;
      if (n === 0) socket.write(ok(head.split(' ')[1]!));
      else socket.destroy();
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    t.equal((await send(pools, up.origin, 'GET', '/warm')).body, '/warm');
    const again = await send(pools, up.origin, 'GET', '/again');
    t.equal(again.body, '/again', 'retried once, answered');
    t.equal(up.connections(), 2);
    const post = await send(pools, up.origin, 'POST', '/post');
    t.ok(post.error, 'a POST is never sent twice');
    t.equal(up.heads.filter((h) => h.startsWith('POST')).length, 1);
    t.match(up.heads.find((h) => h.startsWith('POST')), /content-length: 0/i, 'a bodyless POST says Content-Length: 0');
  });

  t.test('Keep-Alive: timeout=1 from the upstream: the connection is not kept (it would be closed within a second)', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write(ok('k', 'keep-alive: timeout=1\r\n')));
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    await send(pools, up.origin);
    await send(pools, up.origin);
    t.equal(up.connections(), 2);
    t.equal(pools.get(up.origin).size, 0, 'nothing idle');
  });

  t.test('idle connections are dropped after idleMs', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write(ok('x')));
    const pools = new H1Pools({ ...OPTIONS, idleMs: 200 });
    t.teardown(() => pools.close());
    await send(pools, up.origin);
    t.equal(pools.get(up.origin).size, 1);
    await sleep(1400);
    t.equal(pools.get(up.origin).size, 0, 'the sweep closed it');
  });

  t.test('an upstream that never answers: headers timeout error; refused and unresolvable origins: connect errors', async (t) => {
    const up = await rawUpstream(t, () => {});
    const pools = new H1Pools({ ...OPTIONS, headersTimeoutMs: 300 });
    t.teardown(() => pools.close());
    const r = await send(pools, up.origin);
    t.match(r.error, { code: 'UND_ERR_HEADERS_TIMEOUT' });
    const closed = await rawUpstream(t, () => {});
    const port = (closed.server.address() as { port: number }).port;
    closed.server.close();
    await once(closed.server, 'close');
    t.match((await send(pools, `http://127.0.0.1:${port}`)).error, { code: 'ECONNREFUSED' });
    t.ok((await send(pools, 'http://no-such-host.invalid:81')).error, 'DNS failure is an error');
  });

  t.test('a header value with CR/LF (a claim, an expression) or a bad name is never written', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write(ok('x')));
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const injected = await send(pools, up.origin, 'GET', '/', { host: 'app.test', 'x-authentik-name': 'Eve\r\nx-authentik-groups: admins' });
    t.match(injected.error, { code: 'UND_ERR_INVALID_ARG' });
    t.ok(injected.error instanceof UpstreamError);
    t.match((await send(pools, up.origin, 'GET', '/', { 'bad name': 'x' })).error, { code: 'UND_ERR_INVALID_ARG' });
    t.match((await send(pools, up.origin, 'GET', '/a b')).error, { code: 'UND_ERR_INVALID_ARG' });
    t.equal(up.connections(), 0, 'nothing reached the upstream');
    const fine = await send(pools, up.origin, 'GET', '/', { 'x-list': ['a', 'b'] });
    t.equal(fine.status, 200);
    t.match(up.heads[0], /\r\nx-list: a\r\nx-list: b\r\n/, 'repeated values are repeated lines');
    t.match(up.heads[0], /\r\nhost: 127\.0\.0\.1:\d+/, 'no Host given: the origin is the Host');
  });

  t.test("a prepared header block goes after the request's own headers; a block with a bad value is never written", async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write(ok('x')));
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const block = new HeaderBlock([
      ['x-authentik-username', 'alice'],
      ['x-authentik-groups', 'a|b'],
    ]);
    const sent = await send(pools, up.origin, 'GET', '/', { 'x-first': '1', host: 'app.test' }, null, block);
    t.equal(sent.status, 200);
    t.equal(up.heads[0], 'GET / HTTP/1.1\r\nx-first: 1\r\nhost: app.test\r\nx-authentik-username: alice\r\nx-authentik-groups: a|b', 'each line once, in order');
    const withoutHost = await send(pools, up.origin, 'GET', '/', {}, null, block);
    t.equal(withoutHost.status, 200);
    t.match(up.heads[1], /\r\nx-authentik-groups: a\|b\r\nhost: 127\.0\.0\.1:\d+$/, 'no Host given: the origin is the Host, after the block');

    const injected = new HeaderBlock([
      ['x-authentik-username', 'alice'],
      ['x-authentik-name', 'Eve\r\nx-authentik-groups: admins'],
    ]);
    t.equal(injected.invalid, 'invalid value of header x-authentik-name');
    t.equal(injected.lines, undefined);
    const refused = await send(pools, up.origin, 'GET', '/', { host: 'app.test' }, null, injected);
    t.match(refused.error, { code: 'UND_ERR_INVALID_ARG', message: 'invalid value of header x-authentik-name' });
    t.equal(new HeaderBlock([['bad name', 'x']]).invalid, 'invalid header name "bad name"');
    t.equal(up.heads.length, 2, 'the refused request never reached the upstream');
  });

  t.test("a header block merged into a header object (undici, upgrades): the block's names replace the object's", async (t) => {
    const block = new HeaderBlock([['x-team', 'platform']]);
    const object = { host: 'app.test', 'x-team': 'spoofed', 'x-other': ['a', 'b'] };
    t.same(block.mergeInto(object), { host: 'app.test', 'x-other': ['a', 'b'], 'x-team': 'platform' });
    t.same(object, { host: 'app.test', 'x-team': 'spoofed', 'x-other': ['a', 'b'] }, 'the object itself is not changed');
  });

  t.test('beyond maxConnections requests wait their turn; all are answered', async (t) => {
    let open = 0;
    let most = 0;
    const up = await rawUpstream(t, (head, socket) => {
      setTimeout(() => socket.write(ok(head.split(' ')[1]!)), 20);
    });
    up.server.on('connection', (s: Socket) => {
      open++;
      most = Math.max(most, open);
      s.on('close', () => open--);
    });
    const pools = new H1Pools({ ...OPTIONS, maxConnections: 2 });
    t.teardown(() => pools.close());
    const answers = await Promise.all(Array.from({ length: 7 }, (_, i) => send(pools, up.origin, 'GET', `/${i}`)));
    t.same(
      answers.map((a) => a.body),
      Array.from({ length: 7 }, (_, i) => `/${i}`),
    );
    t.ok(most <= 2, `at most 2 connections at once (saw ${most})`);
  });

  t.test('a request whose client left while it waited for a connection is dropped; the connection stays in use', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      setTimeout(() => socket.write(ok(head.split(' ')[1]!)), 30);
    });
    const pools = new H1Pools({ ...OPTIONS, maxConnections: 1 });
    t.teardown(() => pools.close());
    const first = send(pools, up.origin, 'GET', '/first');
    const errors: Error[] = [];
    // Queued behind /first; its client is gone by the time the connection frees up.
    sendGone(pools, up.origin, errors);
    const third = send(pools, up.origin, 'GET', '/third');
    t.equal((await first).body, '/first');
    t.equal((await third).body, '/third');
    t.same(
      errors.map((e) => e.message),
      ['client gone'],
    );
    t.notOk(up.heads.some((h) => h.includes('/gone')), 'never sent');
    t.equal(up.connections(), 1, 'the one connection served both others');
  });

  t.test('body chunks a handler keeps are its own: later reads on other connections (one shared read buffer) do not change them', async (t) => {
    // Two requests on two connections; their bodies arrive in interleaved reads, and the handlers only
    // look at the chunks they kept once both answers are complete.
    const sockets: Socket[] = [];
    const up = await rawUpstream(t, (_head, socket) => {
      sockets.push(socket);
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n');
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const keep = () => {
      const chunks: Buffer[] = [];
      const done = new Promise<Buffer[]>((resolve, reject) => {
        const handler: RelayHandler = {
          onConnect() {},
          onHeaders: () => true,
          onData(chunk) {
            chunks.push(chunk);
            return true;
          },
          onComplete: () => resolve(chunks),
          onError: reject,
        };
        pools.get(up.origin).dispatch('GET', '/', { host: 'app.test' }, null, handler);
      });
      return done;
    };
    const a = keep();
    const b = keep();
    while (sockets.length < 2) await sleep(5);
    for (const part of ['1111', '2222', '3333']) {
      sockets[0]!.write(`a${part.slice(1)}`);
      await sleep(10);
      sockets[1]!.write(`b${part.slice(1)}`);
      await sleep(10);
    }
    const [chunksA, chunksB] = await Promise.all([a, b]);
    t.ok(chunksA.length >= 2 && chunksB.length >= 2, 'each body came in several reads');
    t.equal(Buffer.concat(chunksA).toString(), 'a111a222a333');
    t.equal(Buffer.concat(chunksB).toString(), 'b111b222b333');
  });

  t.test('close: idle connections close, it resolves, later requests fail', async (t) => {
    const up = await rawUpstream(t, (_head, socket) => socket.write(ok('x')));
    const pools = new H1Pools(OPTIONS);
    await send(pools, up.origin);
    const origin = pools.get(up.origin);
    await pools.close();
    t.equal(origin.size, 0);
    const after = await new Promise<Error>((resolve) =>
      origin.dispatch('GET', '/', {}, null, { onConnect() {}, onHeaders: () => true, onData: () => true, onComplete() {}, onError: resolve }),
    );
    t.match(after, { code: 'UND_ERR_DESTROYED' });
  });

  t.test('abort: the upstream connection is closed and the handler is told once', async (t) => {
    let upstreamClosed = false;
    const up = await rawUpstream(t, (_head, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart');
      socket.on('close', () => {
        upstreamClosed = true;
      });
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const errors: Error[] = [];
    let abort: ((err?: Error) => void) | undefined;
    await new Promise<void>((resolve) => {
      pools.get(up.origin).dispatch('GET', '/', {}, null, {
        onConnect(a) {
          abort = a;
        },
        onHeaders: () => true,
        onData() {
          setImmediate(() => {
            abort?.(new Error('client gone'));
            abort?.(new Error('again'));
            resolve();
          });
          return true;
        },
        onComplete() {},
        onError: (e) => errors.push(e),
      });
    });
    await sleep(50);
    t.same(
      errors.map((e) => e.message),
      ['client gone'],
    );
    t.ok(upstreamClosed, 'the upstream connection was closed');
  });
  t.test('an upload that streams for longer than the headers timeout is not cut: the wait for the answer starts once the body is sent', async (t) => {
    const up = await rawUpstream(t, (head, socket, index) => {
      // Index 1 is the chunked body up to its terminating zero-length chunk (the test upstream splits at blank lines).
      if (index === 1) socket.write(ok(`${head.split('\r\n').filter((l) => l === 'x').length}`));
    });
    const pools = new H1Pools({ ...OPTIONS, headersTimeoutMs: 200 });
    t.teardown(() => pools.close());
    // A client body arriving slowly (a large file over a slow link): 25 bytes over 2.5 s, past the sweep of each second.
    const body = Object.assign(new PassThrough(), { complete: false });
    body.on('end', () => {
      body.complete = true;
    });
    const done = send(pools, up.origin, 'POST', '/upload', { host: 'app.test' }, body as unknown as IncomingMessage);
    for (let i = 0; i < 25; i++) {
      body.write('x');
      await sleep(100);
    }
    body.end();
    const r = await done;
    t.equal(r.error, undefined, 'no headers timeout while the body was still being sent');
    t.equal(r.status, 200);
    t.equal(r.body, '25', 'the upstream got the whole body');
  });
  t.test('an upload that stops coming is cut after the headers timeout: it does not hold the upstream connection for ever', async (t) => {
    const up = await rawUpstream(t, () => {});
    const pools = new H1Pools({ ...OPTIONS, headersTimeoutMs: 200 });
    t.teardown(() => pools.close());
    const body = Object.assign(new PassThrough(), { complete: false });
    const started = performance.now();
    const done = new Promise<Error | undefined>((resolve) => {
      pools.get(up.origin).dispatch('POST', '/upload', { host: 'app.test' }, body as unknown as IncomingMessage, {
        onConnect() {},
        onHeaders: () => true,
        onData: () => true,
        onComplete: () => resolve(undefined),
        onError: resolve,
      });
    });
    body.write('x');
    const err = await done;
    t.match(err, { code: 'UND_ERR_REQ_BODY_TIMEOUT' }, 'the request ends with a body timeout');
    t.match(err?.message ?? '', /no part of its request body/);
    t.ok(performance.now() - started < 5_000, 'within the timeout and a sweep or two');
    body.destroy();
  });
  t.test('a request whose client left before it was sent does not extend the keep-alive of the idle connection it was given', async (t) => {
    // The upstream forgets a connection 1.4 s after its last answer: a request on it after that is dropped
    // unanswered (its idle timeout racing the request). The pool keeps idle connections for 1 s.
    const up = await rawUpstream(t, (head, socket) => {
      const s = socket as Socket & { answeredAt?: number };
      if (s.answeredAt !== undefined && performance.now() - s.answeredAt > 1400) {
        socket.destroy();
        return;
      }
      s.answeredAt = performance.now();
      socket.write(ok(head.split(' ')[1]!));
    });
    const pools = new H1Pools({ ...OPTIONS, idleMs: 1000 });
    t.teardown(() => pools.close());
    t.equal((await send(pools, up.origin, 'GET', '/first')).body, '/first');
    await sleep(800);
    const errors: Error[] = [];
    sendGone(pools, up.origin, errors);
    t.equal(errors.length, 1, 'the request whose client left was dropped');
    await sleep(800);
    // 1.6 s after the last answer: the idle connection expired at 1 s, so this goes on a new one.
    const post = await send(pools, up.origin, 'POST', '/post');
    t.equal(post.error, undefined, 'the POST was not sent on a connection kept past its keep-alive');
    t.equal(post.body, '/post');
    t.equal(up.connections(), 2);
  });

  t.test('sized bodies (relayed from the read buffer in pooled small buffers or slabs, not by the parser)', async (t) => {
    /** A body of `size` bytes that differs per answer (`tag`) and per position, so a mixed-up or overwritten byte shows. */
    const bodyOf = (tag: number, size: number) => {
      const b = Buffer.allocUnsafe(size);
      for (let i = 0; i < size; i++) b[i] = (tag * 31 + i * 7 + (i >> 11)) & 0xff;
      return b;
    };
    const head = (size: number, extra = '') => `HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n${extra}\r\n`;
    /** Upstream: GET /<tag>/<size>[/split] answers that body; `split` sends it in four writes 5 ms apart. */
    const bodiesUpstream = () =>
      rawUpstream(t, async (h, socket) => {
        const [, tag, size, split] = h.split(' ')[1]!.split('/');
        const body = bodyOf(Number(tag), Number(size));
        if (split !== 'split') {
          socket.write(Buffer.concat([Buffer.from(head(body.length), 'latin1'), body]));
          return;
        }
        socket.write(head(body.length));
        const quarter = Math.ceil(body.length / 4);
        for (let at = 0; at < body.length; at += quarter) {
          await sleep(5);
          socket.write(body.subarray(at, at + quarter));
        }
      });
    /** Sends GET `path`; the handler keeps a copy of each chunk, then gives the lent chunk back (as the gateway's write callback does). */
    const fetchBody = (pools: H1Pools, origin: string, path: string, opts: { release?: boolean; keepChunks?: Buffer[]; releaseTwice?: boolean } = {}) =>
      new Promise<{ body: Buffer; lent: number; chunks: number }>((resolve, reject) => {
        const parts: Buffer[] = [];
        let lent = 0;
        const handler: RelayHandler = {
          onConnect() {},
          onHeaders: () => true,
          onData(chunk, release) {
            parts.push(Buffer.from(chunk));
            opts.keepChunks?.push(chunk);
            if (release) {
              lent++;
              if (opts.release !== false) {
                // Given back a moment later, as node's write callback would be.
                setImmediate(() => {
                  release();
                  if (opts.releaseTwice) release();
                });
              }
            }
            return true;
          },
          onComplete: () => resolve({ body: Buffer.concat(parts), lent, chunks: parts.length }),
          onError: reject,
        };
        pools.get(origin).dispatch('GET', path, { host: 'app.test' }, null, handler);
      });

    t.test('every byte arrives, in order, for sizes around the small-run limit and the slab size, at once or in pieces; slabs come back', async (t) => {
      const up = await bodiesUpstream();
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const before = bodySlabsAllocated();
      let tag = 0;
      for (const size of [1, 11, 4095, 4096, 16 * 1024 - 1, 16 * 1024, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 200_000, 1_000_000]) {
        for (const split of ['', '/split']) {
          for (let i = 0; i < 3; i++) {
            tag++;
            const r = await fetchBody(pools, up.origin, `/${tag}/${size}${split}`);
            t.ok(r.body.equals(bodyOf(tag, size)), `${size} bytes${split}: every byte as sent (answer ${tag})`);
            if (size >= 4096 && tag % 6 === 1) t.ok(r.lent > 0, `${size} bytes: lent from the pool`);
            if (size < 4096) t.equal(r.lent, 0, `${size} bytes: in node's pooled small buffers, nothing lent`);
          }
        }
      }
      t.equal(up.connections(), 1, 'one kept-alive connection served them all');
      const grew = bodySlabsAllocated() - before;
      t.ok(grew <= 20, `slabs given back are reused: ${grew} allocated for ${tag} answers (one of 1 MB alone spans 16)`);
    });

    t.test('concurrent answers on several connections, read in interleaved pieces: each gets exactly its own bytes', async (t) => {
      const up = await bodiesUpstream();
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const sizes = [70_000, 20_000, 131_072, 65_536, 300_000, 40_000, 64 * 1024 + 17, 99_999];
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all(sizes.map((size, i) => fetchBody(pools, up.origin, `/${round * 10 + i}/${size}${i % 2 ? '/split' : ''}`)));
        results.forEach((r, i) => {
          t.ok(r.body.equals(bodyOf(round * 10 + i, sizes[i]!)), `round ${round}, answer ${i} (${sizes[i]} bytes): its own bytes`);
        });
      }
    });

    t.test('a lent chunk the handler keeps without giving it back is never reused; one given back twice is handed out once', async (t) => {
      const up = await bodiesUpstream();
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const kept: Buffer[] = [];
      const first = await fetchBody(pools, up.origin, '/1/65536', { release: false, keepChunks: kept });
      t.ok(first.lent > 0);
      const twice = await fetchBody(pools, up.origin, '/2/65536', { releaseTwice: true });
      t.ok(twice.body.equals(bodyOf(2, 65_536)));
      await sleep(5);
      // Two answers at once after a slab came back twice: if it were handed out twice, one would overwrite the other.
      const keptA: Buffer[] = [];
      const keptB: Buffer[] = [];
      await Promise.all([fetchBody(pools, up.origin, '/3/65536', { release: false, keepChunks: keptA }), fetchBody(pools, up.origin, '/4/65536', { release: false, keepChunks: keptB })]);
      for (let i = 0; i < 20; i++) await fetchBody(pools, up.origin, `/${10 + i}/65536`);
      t.ok(Buffer.concat(kept).equals(bodyOf(1, 65_536)), 'the kept chunks still hold the first answer after 23 more');
      t.ok(Buffer.concat(keptA).equals(bodyOf(3, 65_536)), 'answer 3 intact');
      t.ok(Buffer.concat(keptB).equals(bodyOf(4, 65_536)), 'answer 4 intact');
    });

    t.test('bytes after a large body in the same read: the answer is whole, and that connection is not reused', async (t) => {
      const body = bodyOf(7, 40_000);
      const up = await rawUpstream(t, (h, socket, index) => {
        if (index === 0) socket.write(Buffer.concat([Buffer.from(head(body.length), 'latin1'), body, Buffer.from('HTTP/1.1 200 OK\r\nx-stray: 1\r\n')]));
        else socket.write(ok(h.split(' ')[1]!));
      });
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const r = await fetchBody(pools, up.origin, '/big');
      t.ok(r.body.equals(body), 'the answer is relayed whole');
      t.equal((await send(pools, up.origin, 'GET', '/next')).body, '/next', 'the next request gets its own answer');
      t.equal(up.connections(), 2, 'on a new connection');
    });

    t.test('the upstream closes mid body: an error after the head, never a complete answer; Connection: close keeps the parser path', async (t) => {
      const body = bodyOf(9, 100_000);
      const up = await rawUpstream(t, (h, socket) => {
        if (h.startsWith('GET /cut')) socket.end(Buffer.concat([Buffer.from(head(body.length), 'latin1'), body.subarray(0, 70_000)]));
        else socket.end(Buffer.concat([Buffer.from(head(body.length, 'connection: close\r\n'), 'latin1'), body]));
      });
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const cut = await send(pools, up.origin, 'GET', '/cut');
      t.equal(cut.status, 200);
      t.notOk(cut.complete);
      t.match(cut.error, { code: 'UND_ERR_SOCKET' });
      t.equal(cut.body.length, 70_000, 'what came was relayed');
      const closing = await fetchBody(pools, up.origin, '/close');
      t.ok(closing.body.equals(body), 'an answer without keep-alive arrives whole');
      t.equal(closing.lent, 0, 'through the parser');
    });

    t.test('a handler that pauses a large body (false) gets the rest once it resumes', async (t) => {
      const body = bodyOf(11, 500_000);
      const up = await rawUpstream(t, (_h, socket) => socket.write(Buffer.concat([Buffer.from(head(body.length), 'latin1'), body])));
      const pools = new H1Pools(OPTIONS);
      t.teardown(() => pools.close());
      const got = await readWithPauses(pools, up.origin);
      t.ok(got.equals(body), 'every byte, in order, across three pauses');
    });
  });
});

t.test('chunked bodies (framing decoded by the relay, not by the parser)', async (t) => {
  const pattern = (tag: number, size: number) => {
    const b = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) b[i] = (tag * 29 + i * 13 + (i >> 10)) & 0xff;
    return b;
  };
  /** A chunked answer of these chunks (extensions on every other size line) and trailers, as raw bytes. */
  const chunkedAnswer = (chunks: Buffer[], trailers = '') =>
    Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', 'latin1'),
      ...chunks.flatMap((c, i) => [Buffer.from(`${c.length.toString(16)}${i % 2 ? ';ext="v"' : ''}\r\n`, 'latin1'), c, Buffer.from('\r\n', 'latin1')]),
      Buffer.from(`0\r\n${trailers}\r\n`, 'latin1'),
    ]);
  /** Sends GET `path`; counts lent chunks and gives each back a moment later (as the gateway's write callback does). */
  const fetchChunked = (pools: H1Pools, origin: string, path = '/') =>
    new Promise<{ body: Buffer; lent: number; headers: string[]; error?: Error }>((resolve) => {
      const parts: Buffer[] = [];
      let lent = 0;
      let headers: string[] = [];
      pools.get(origin).dispatch('GET', path, { host: 'app.test' }, null, {
        onConnect() {},
        onHeaders(_s, raw) {
          headers = raw.map(String);
          return true;
        },
        onData(chunk, release) {
          parts.push(Buffer.from(chunk));
          if (release) {
            lent++;
            setImmediate(release);
          }
          return true;
        },
        onComplete: () => resolve({ body: Buffer.concat(parts), lent, headers }),
        onError: (error) => resolve({ body: Buffer.concat(parts), lent, headers, error }),
      });
    });

  t.test('every byte arrives in order, the answer cut at every point of its framing; the connection is then reused', async (t) => {
    const chunks = [1, 100, 4095, 4096, 70_000, 3].map((size, i) => pattern(i, size));
    const whole = chunkedAnswer(chunks, 'x-checksum: abc\r\n');
    const expected = Buffer.concat(chunks);
    // Cut points: every byte of each size line, CRLF and trailer, and a few inside the data.
    const cuts: number[] = [];
    for (let i = 1; i < whole.length; i++) {
      const inData = chunks.some((c) => c.length > 8 && whole.indexOf(c) + 4 < i && i < whole.indexOf(c) + c.length - 4);
      if (!inData || i % 9973 === 0) cuts.push(i);
    }
    let served = 0;
    const up = await rawUpstream(t, (_head, socket) => {
      const cut = cuts[served++ % cuts.length]!;
      socket.write(whole.subarray(0, cut));
      setImmediate(() => socket.write(whole.subarray(cut)));
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    let wrong = 0;
    for (let i = 0; i < cuts.length; i++) {
      const got = await fetchChunked(pools, up.origin);
      if (got.error || !got.body.equals(expected)) wrong++;
    }
    t.equal(wrong, 0, `all ${cuts.length} answers whole and exact`);
    t.equal(up.connections(), 1, 'one connection for all: each answer ended exactly at its last CRLF');
  });

  t.test('large runs come in slabs lent to the handler, small ones in plain buffers; trailers never become headers', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      const small = head.startsWith('GET /small');
      socket.write(chunkedAnswer(small ? [pattern(1, 100), pattern(2, 4095)] : [pattern(3, 200_000)], 'x-evil: yes\r\n'));
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const small = await fetchChunked(pools, up.origin, '/small');
    t.equal(small.lent, 0, 'runs under 4 KiB are not given slabs');
    t.ok(small.body.equals(Buffer.concat([pattern(1, 100), pattern(2, 4095)])));
    const large = await fetchChunked(pools, up.origin, '/large');
    t.ok(large.lent >= 4, `200 000 bytes in slabs (${large.lent} lent)`);
    t.ok(large.body.equals(pattern(3, 200_000)));
    t.notOk(large.headers.some((h) => h.toLowerCase() === 'x-evil'));
    const after = await fetchChunked(pools, up.origin, '/small');
    t.notOk(after.headers.some((h) => h.toLowerCase() === 'x-evil'), 'nor of the next answer');
    t.equal(up.connections(), 1);
  });

  t.test('framing that is not strictly HTTP/1.1 is an error, never a complete answer, and the connection is not reused', async (t) => {
    const bad: Array<[string, string]> = [
      ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
      ['whitespace before the extension', '5 ;x\r\nhello\r\n0\r\n\r\n'],
      ['no size', '\r\nhello\r\n0\r\n\r\n'],
      ['a size that is not hex', '5g\r\nhello\r\n0\r\n\r\n'],
      ['data longer than its size', '5\r\nhelloX\r\n0\r\n\r\n'],
      // Taking any byte after the CR would read "0" as the last chunk and end the answer early.
      ['a CR after the data without its LF', '5\r\nhello\r10\r\n0123456789abcdef\r\n0\r\n\r\n'],
      ['more than 12 hex digits', '0000000000005\r\nhello\r\n0\r\n\r\n'],
      ['a size line longer than 4 KiB', `5;${'x'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`],
      ['a control character in an extension', '5;a\x01b\r\nhello\r\n0\r\n\r\n'],
      ['a trailer ended by a bare LF', '5\r\nhello\r\n0\r\nx-t: 1\n\r\n'],
      ['trailers beyond the head limit', `5\r\nhello\r\n0\r\nx-t: ${'y'.repeat(2000)}\r\n\r\n`],
    ];
    for (const [what, body] of bad) {
      const up = await rawUpstream(t, (_head, socket) => socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body}`));
      const pools = new H1Pools({ ...OPTIONS, maxHeaderBytes: 1024 });
      const got = await fetchChunked(pools, up.origin);
      t.match(got.error, { code: 'UND_ERR_PARSE' }, what);
      const next = await fetchChunked(pools, up.origin);
      t.ok(next.error, `${what}: the next request gets no bytes of it`);
      t.equal(up.connections(), 2, `${what}: that connection was not reused`);
      await pools.close();
    }
  });

  t.test('the upstream closing mid body is an error after the head; bytes after the last CRLF mean no reuse', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      if (head.startsWith('GET /cut')) {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel');
        setTimeout(() => socket.end(), 20);
      } else {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra');
      }
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const cut = await fetchChunked(pools, up.origin, '/cut');
    t.match(cut.error, { code: 'UND_ERR_SOCKET' });
    t.equal(cut.body.toString(), 'hel', 'what came before the cut was relayed, the answer never completed');
    const stray = await fetchChunked(pools, up.origin, '/stray');
    t.equal(stray.body.toString(), 'ok');
    t.equal(stray.error, undefined);
    const next = await fetchChunked(pools, up.origin, '/stray');
    t.equal(next.body.toString(), 'ok', 'the next request got its own answer, not the stray one');
    t.equal(up.connections(), 3, 'neither connection was reused');
  });

  t.test('other codings, Connection: close and HEAD keep the parser path (and still arrive whole)', async (t) => {
    const up = await rawUpstream(t, (head, socket) => {
      if (head.startsWith('GET /coded')) socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
      else if (head.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      else socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nxyz\r\n0\r\n\r\n');
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    t.equal((await fetchChunked(pools, up.origin, '/coded')).body.toString(), 'abc');
    t.equal((await fetchChunked(pools, up.origin, '/close')).body.toString(), 'xyz');
    const head = await send(pools, up.origin, 'HEAD', '/');
    t.equal(head.complete, true);
    t.equal(head.body, '');
  });

  t.test('a handler that pauses (false) gets the rest of the chunks once it resumes', async (t) => {
    const chunks = Array.from({ length: 6 }, (_, i) => pattern(10 + i, 30_000));
    const whole = chunkedAnswer(chunks);
    const up = await rawUpstream(t, async (_head, socket) => {
      for (let at = 0; at < whole.length; at += 50_000) {
        socket.write(whole.subarray(at, at + 50_000));
        await sleep(5);
      }
    });
    const pools = new H1Pools(OPTIONS);
    t.teardown(() => pools.close());
    const got = await readWithPauses(pools, up.origin);
    t.ok(got.equals(Buffer.concat(chunks)), 'every byte, in order, across three pauses');
  });
});
