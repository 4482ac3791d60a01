// Proxying over real sockets: answers relayed as sent (bodyless ones on a reusable connection), large uploads and downloads arrive whole through slow, paused and concurrent peers with bounded buffering, a truncated answer never looks complete, an early refusal of an upload leaves no client hanging, and a client leaving ends the upstream exchange while the gateway keeps serving.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { Socket, connect } from 'node:net';
import { getFreePort } from '@portcullis/testkit';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { startProxyGateway } from './test-support.ts';

/** Resolves with `promise`, or rejects naming `what` after `ms` (an event that never comes fails the test instead of hanging it). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]);
}

/** What the test upstream saw of one request. */
interface Seen {
  req: IncomingMessage;
  res: ServerResponse;
  /** Resolves when the upstream's side of the exchange is closed, with whether the response had been completed. */
  closed: Promise<{ responseFinished: boolean; requestComplete: boolean }>;
}

/** Random bytes that downloads are cut from and uploads are sent from (checked by length and SHA-256, so order matters). */
const PATTERN = randomBytes(32 * 1024 * 1024);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A response head read off a raw socket. */
interface Head {
  status: number;
  headers: Map<string, string>;
  text: string;
}

function parseHead(text: string): Head {
  const [statusLine, ...lines] = text.split('\r\n');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, text };
}

/** Decodes a chunked body as far as it goes: the data, and whether the terminating zero-length chunk arrived. */
function decodeChunked(body: Buffer): { data: Buffer; terminated: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) return { data: Buffer.concat(parts), terminated: false };
    const size = Number.parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (size === 0) return { data: Buffer.concat(parts), terminated: true };
    if (body.length < eol + 2 + size + 2) return { data: Buffer.concat([...parts, body.subarray(eol + 2)]), terminated: false };
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

t.test('proxy relay and cancellation', async (t) => {
  const seen: Seen[] = [];
  const arrivals: Array<(s: Seen) => void> = [];
  const nextArrival = () => new Promise<Seen>((resolve) => arrivals.push(resolve));
  const bodyBytes: number[] = [];
  const flooded: Array<() => void> = [];
  /** Request bodies the upstream received on /digest, in arrival order. */
  const digests: Array<{ length: number; sha256: string; pauses: number; contentLength?: string; transferEncoding?: string }> = [];
  /** How many bytes the upstream has written on /endless?id=…, by id. */
  const written = new Map<string, { written: number }>();
  const upstream = createServer((req, res) => {
    const closed = new Promise<{ responseFinished: boolean; requestComplete: boolean }>((resolve) =>
      res.once('close', () => resolve({ responseFinished: res.writableFinished, requestComplete: req.complete })),
    );
    const s: Seen = { req, res, closed };
    seen.push(s);
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname;
    if (req.url === '/slow') {
      // Headers and a first chunk, then nothing: the response stays open until someone leaves.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
    } else if (req.url === '/flood') {
      // Writes until the gateway stops reading (backpressure reached the upstream), then says so.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (res.write(chunk)) {
          /* keep writing */
        }
        flooded.shift()?.();
        res.once('drain', pump);
      };
      pump();
    } else if (req.url === '/big') {
      // 8 MiB, far more than the socket buffers between here and a paused client.
      req.resume();
      const chunk = Buffer.alloc(64 * 1024, 'y');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(128 * chunk.length) });
      let left = 128;
      const pump = (): void => {
        while (left > 0) {
          left -= 1;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (req.url === '/headers') {
      req.resume();
      res.writeHead(201, [
        'Set-Cookie',
        'a=1; Path=/',
        'X-Name',
        'caf\u00e9',
        'Set-Cookie',
        'b=2; Path=/',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Connection',
        'keep-alive',
        // A header the upstream declares hop-by-hop by naming it in Connection (RFC 9110 §7.6.1).
        'Connection',
        'keep-alive, X-Private',
        'X-Private',
        'for the next hop only',
        'Content-Type',
        'text/plain',
        'Content-Length',
        '5',
      ]);
      // A Buffer body: with a string body node would send head and body as one UTF-8 string.
      res.end(Buffer.from('hello'));
    } else if (req.url === '/chunked') {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      res.end('two');
    } else if (req.url === '/upload') {
      req.on('data', (c: Buffer) => bodyBytes.push(c.length));
      req.on('end', () => res.end('uploaded'));
    } else if (path.startsWith('/slice/')) {
      // /slice/<offset>/<size>: that part of PATTERN in one write (a 64 KiB answer reaches the gateway in one read).
      req.resume();
      const [offset, size] = path.slice('/slice/'.length).split('/').map(Number) as [number, number];
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      res.end(PATTERN.subarray(offset, offset + size));
    } else if (path.startsWith('/chunked-slice/')) {
      // /chunked-slice/<offset>/<size>: that part of PATTERN with no length (chunked), in pieces of 1 000
      // and 5 000 bytes and the rest, at once: chunks under and over the relay's 4 KiB slab threshold.
      req.resume();
      const [offset, size] = path.slice('/chunked-slice/'.length).split('/').map(Number) as [number, number];
      const part = PATTERN.subarray(offset, offset + size);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(part.subarray(0, 1000));
      res.write(part.subarray(1000, 6000));
      res.end(part.subarray(6000));
    } else if (path.startsWith('/pattern/')) {
      // The first N bytes of PATTERN with a Content-Length, written with backpressure.
      req.resume();
      const size = Number(path.slice('/pattern/'.length));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      let offset = 0;
      const pump = (): void => {
        while (offset < size) {
          const end = Math.min(offset + 64 * 1024, size);
          const more = res.write(PATTERN.subarray(offset, end));
          offset = end;
          if (!more) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/endless') {
      // An unsized stream of PATTERN bytes, written as fast as the reader takes them, up to 1 GiB; counts what was written.
      req.resume();
      const stats = { written: 0 };
      written.set(url.searchParams.get('id') ?? '', stats);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = (): void => {
        while (stats.written < 1024 * 1024 * 1024 && !res.destroyed) {
          const chunk = PATTERN.subarray(0, 256 * 1024);
          stats.written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/small-chunks') {
      // An unsized stream of 100-byte chunks (as an event stream sends), 16 MiB in all, written with backpressure.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = Buffer.alloc(100, 'e');
      let left = (16 * 1024 * 1024) / chunk.length;
      const pump = (): void => {
        while (left > 0 && !res.destroyed) {
          left -= 1;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/reject') {
      // Refuses an upload without reading it (node's server discards the rest of the body itself).
      res.writeHead(413, { 'content-type': 'text/plain', 'content-length': '9' });
      res.end('too large');
    } else if (path === '/digest') {
      // Hashes the request body as it arrives (?slow: pauses the request stream after every chunk, resumes 2 ms later).
      const slow = url.searchParams.has('slow');
      const hash = createHash('sha256');
      let length = 0;
      let pauses = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        length += c.length;
        if (slow) {
          req.pause();
          pauses += 1;
          setTimeout(() => req.resume(), 2);
        }
      });
      req.on('end', () => {
        const sha256 = hash.digest('hex');
        digests.push({ length, sha256, pauses, contentLength: req.headers['content-length'], transferEncoding: req.headers['transfer-encoding'] });
        const answer = Buffer.from(`${length} ${sha256}`);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(answer.length) });
        res.end(answer);
      });
    } else if (path === '/die/sized' || path === '/die/chunked') {
      // Part of the body, then the upstream's socket is destroyed (a crash mid answer).
      req.resume();
      const sized = path === '/die/sized';
      res.writeHead(200, sized ? { 'content-type': 'text/plain', 'content-length': String(1024 * 1024) } : { 'content-type': 'text/plain' });
      res.write(sized ? Buffer.alloc(256 * 1024, 'p') : Buffer.from('part one,'), () => setTimeout(() => res.socket?.destroy(), 50));
    } else if (path === '/sized-slow') {
      // A sized answer's first half; the test writes the second half when it has seen the first arrive.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2000' });
      res.write(Buffer.alloc(1000, 'a'));
    } else if (path === '/die/after-head') {
      // A sized answer's head, then the upstream's socket is destroyed before any body byte.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000', 'x-kind': 'doomed' });
      res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 50);
    } else if (path === '/no-content') {
      req.resume();
      res.writeHead(204, { 'x-kind': 'none' }).end();
    } else if (path === '/not-modified') {
      req.resume();
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
    } else {
      req.resume();
      res.end('ok');
    }
    arrivals.shift()?.(s);
  });
  const upstreamPort = await getFreePort();
  await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
  t.teardown(() => {
    upstream.closeAllConnections();
    upstream.close();
  });

  const { port, cookie } = await startProxyGateway(t, upstreamPort);

  /** A raw client connection that has sent `head` (and maybe part of a body). */
  const rawClient = async (head: string): Promise<Socket> => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(head);
    return socket;
  };
  const stillServes = async (t: Test) => {
    const r = await request(`http://127.0.0.1:${port}/after`, { headers: { host: 'app.company', cookie } });
    t.equal(r.statusCode, 200, 'the gateway still proxies');
    t.equal(await r.body.text(), 'ok');
  };

  /** One request on a fresh raw connection (`connection: close`); the whole response as latin1 text. */
  const rawExchange = async (head: string): Promise<string> => {
    const socket = await rawClient(head);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    await within(once(socket, 'end'), 20_000, 'the end of the response');
    socket.destroy();
    return Buffer.concat(chunks).toString('latin1');
  };

  /** A client that reads `every` bytes, then stops reading for `ms` (then reads again), over and over. */
  interface Pace {
    every: number;
    ms: number;
  }
  /** The data of a chunked body as received by a raw client (the gateway's own framing, not the upstream's). */
  const dechunk = (wire: Buffer): Buffer => {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = wire.indexOf('\r\n', at);
      const size = Number.parseInt(wire.subarray(at, eol).toString('latin1'), 16);
      if (size === 0) return Buffer.concat(parts);
      parts.push(wire.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  };
  interface Download {
    head: Head;
    /** Body bytes received (as sent on the wire: chunk framing included for a chunked answer). */
    bytes: number;
    sha256: string;
    /** The body as received, when asked for (small answers only). */
    body?: Buffer;
  }
  /**
   * GETs `path` on a fresh raw connection and reads until the gateway closes it, reading at `pace`;
   * the body is hashed as it streams. `close` asks for `connection: close`, else the client keeps
   * the connection open and only the gateway can end it.
   */
  const download = async (path: string, opts: { pace?: Pace; close?: boolean; keepBody?: boolean; ms?: number } = {}): Promise<Download> => {
    const socket = await rawClient(
      `GET ${path} HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n${opts.close === false ? '' : 'connection: close\r\n'}\r\n`,
    );
    socket.on('error', () => {});
    // (Not events.once, which rejects on a socket error: a reset is one way for the gateway to close.)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let headBuf = Buffer.alloc(0);
    let head: Head | undefined;
    let bytes = 0;
    let sinceLastPause = 0;
    const hash = createHash('sha256');
    const kept: Buffer[] = [];
    const onBody = (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
      if (opts.keepBody) kept.push(d);
      sinceLastPause += d.length;
      if (opts.pace && sinceLastPause >= opts.pace.every) {
        sinceLastPause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), opts.pace.ms);
      }
    };
    socket.on('data', (d: Buffer) => {
      if (head) return onBody(d);
      headBuf = Buffer.concat([headBuf, d]);
      const end = headBuf.indexOf('\r\n\r\n');
      if (end === -1) return;
      head = parseHead(headBuf.subarray(0, end).toString('latin1'));
      if (headBuf.length > end + 4) onBody(headBuf.subarray(end + 4));
    });
    try {
      await within(closed, opts.ms ?? 30_000, `the gateway closing the connection of GET ${path}`);
    } finally {
      socket.destroy();
    }
    if (!head) throw new Error(`no response head for GET ${path}: ${headBuf.toString('latin1')}`);
    return { head, bytes, sha256: hash.digest('hex'), ...(opts.keepBody ? { body: Buffer.concat(kept) } : {}) };
  };

  /** Sends `head`, then `body` in `chunkSize` pieces as fast as the gateway takes them (waits for 'drain'); the answer as text. */
  const upload = async (head: string, body: Buffer, chunkSize: number, frame: (piece: Buffer) => Buffer[] = (p) => [p], trailer?: string): Promise<string> => {
    const socket = await rawClient(head);
    t.teardown(() => socket.destroy());
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    const ended = once(socket, 'end');
    for (let at = 0; at < body.length; at += chunkSize) {
      let more = true;
      for (const b of frame(body.subarray(at, Math.min(at + chunkSize, body.length)))) more = socket.write(b);
      if (!more) await within(once(socket, 'drain'), 30_000, 'the gateway taking more of the upload');
    }
    if (trailer !== undefined) socket.write(trailer);
    await within(ended, 30_000, 'the answer to the upload');
    socket.destroy();
    return Buffer.concat(chunks).toString('latin1');
  };

  /** One client connection for several requests in turn: `ask` sends a request and reads exactly one response. */
  const keepAliveConnection = async () => {
    const socket = await rawClient('');
    let buf = Buffer.alloc(0);
    let wake: (() => void) | null = null;
    let ended = false;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      wake?.();
    });
    socket.on('close', () => {
      ended = true;
      wake?.();
    });
    socket.on('error', () => {});
    /** Waits until `ready(buf)` gives a length (how many bytes make the response). */
    const take = async (ready: () => number | null, what: string): Promise<Buffer> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const n = ready();
        if (n !== null) {
          const out = buf.subarray(0, n);
          buf = buf.subarray(n);
          return out;
        }
        if (ended) throw new Error(`the connection closed before ${what}; received: ${JSON.stringify(buf.toString('latin1'))}`);
        if (Date.now() > deadline) throw new Error(`no ${what} within 20 s; received: ${JSON.stringify(buf.toString('latin1'))}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
        wake = null;
      }
    };
    return {
      socket,
      /** Bytes received beyond the responses read so far. */
      extra: () => buf,
      async ask(method: string, path: string): Promise<{ head: Head; body: string }> {
        socket.write(`${method} ${path} HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`);
        const headBytes = await take(() => {
          const end = buf.indexOf('\r\n\r\n');
          return end === -1 ? null : end + 4;
        }, `the head of ${method} ${path}`);
        const head = parseHead(headBytes.toString('latin1').slice(0, -4));
        if (method === 'HEAD' || head.status === 204 || head.status === 304) return { head, body: '' };
        const length = head.headers.get('content-length');
        if (length === undefined) throw new Error(`${method} ${path}: the test expects a sized answer: ${head.text}`);
        const body = await take(() => (buf.length >= Number(length) ? Number(length) : null), `the body of ${method} ${path}`);
        return { head, body: body.toString('latin1') };
      },
    };
  };

  t.test('an upstream answer is relayed as sent: status, repeated and non-ASCII headers, body; hop-by-hop headers dropped', async (t) => {
    const text = await rawExchange(`GET /headers HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    const [head, body] = text.split('\r\n\r\n') as [string, string];
    const lines = head.split('\r\n');
    t.equal(lines[0], 'HTTP/1.1 201 Created');
    t.same(
      lines.filter((l) => l.startsWith('set-cookie: ')),
      ['set-cookie: a=1; Path=/', 'set-cookie: b=2; Path=/'],
      'both cookies, in order, names lower-cased',
    );
    t.ok(lines.includes('x-name: caf\u00e9'), 'a latin1 byte in a value passes unchanged', { lines });
    t.ok(lines.includes('content-type: text/plain'));
    t.ok(lines.includes('content-length: 5'));
    t.notOk(lines.some((l) => /^(keep-alive|proxy-connection): /i.test(l)), 'hop-by-hop headers of the upstream are not relayed');
    t.notOk(lines.some((l) => /^x-private: /i.test(l)), 'nor a header its Connection header names');
    t.ok(lines.includes('Connection: close'), "the gateway's own connection header");
    t.equal(body, 'hello');
  });

  t.test('an unsized upstream answer is relayed chunked; HEAD gets the head only', async (t) => {
    const chunked = await rawExchange(`GET /chunked HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    t.match(chunked, /\r\nTransfer-Encoding: chunked\r\n/);
    t.match(chunked.split('\r\n\r\n').slice(1).join('\r\n\r\n'), /^4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n$/);
    const head = await rawExchange(`HEAD /headers HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    t.match(head, /^HTTP\/1\.1 201 Created\r\n/);
    t.match(head, /\r\ncontent-length: 5\r\n/);
    t.ok(head.endsWith('\r\n\r\n'), 'no body after the head');
  });

  t.test('client leaves mid response → the upstream connection is closed, the response never completed', async (t) => {
    const arrived = nextArrival();
    const socket = await rawClient(`GET /slow HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`);
    t.teardown(() => socket.destroy());
    let received = '';
    await within(
      new Promise<void>((resolve) =>
        socket.on('data', (d: Buffer) => {
          received += d.toString('latin1');
          if (received.includes('first chunk')) resolve();
        }),
      ),
      20_000,
      'the first chunk through the gateway',
    );
    const s = await arrived;
    socket.destroy();
    const end = await within(s.closed, 20_000, "the upstream's connection closing");
    t.equal(end.responseFinished, false, 'the upstream response was cut, not completed');
    await stillServes(t);
  });

  t.test('a client that pauses, then reads again, gets every byte (the relay pauses and resumes the upstream)', async (t) => {
    const socket = await rawClient(`GET /big HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    t.teardown(() => socket.destroy());
    socket.pause();
    // Long enough for the relay to fill the client's buffers and pause the upstream.
    await new Promise((r) => setTimeout(r, 300));
    let bytes = 0;
    let head = '';
    socket.on('data', (d: Buffer) => {
      if (!head.includes('\r\n\r\n')) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end !== -1) bytes += Buffer.byteLength(head, 'latin1') - end - 4;
        return;
      }
      bytes += d.length;
    });
    socket.resume();
    await within(once(socket, 'end'), 20_000, 'the end of the 8 MiB answer');
    t.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    t.equal(bytes, 128 * 64 * 1024, 'every byte of the body arrived');
  });

  /** 20 answers of 64 KiB in a row, each checked whole and in order. */
  const twentyAnswersOf64KiB = async (t: Test) => {
    const expected = sha256(PATTERN.subarray(0, 64 * 1024));
    for (let i = 0; i < 20; i++) {
      const r = await request(`http://127.0.0.1:${port}/pattern/${64 * 1024}`, { headers: { host: 'app.company', cookie } });
      t.equal(sha256(Buffer.from(await r.body.arrayBuffer())), expected);
    }
  };

  t.test('a client that keeps up is no backpressure: 64 KiB answers do not stop and restart reading the upstream', async (t) => {
    // node reports a 64 KiB write as "full" (over the high-water mark, and held corked until the next
    // tick) even when the socket takes it whole; the relay pauses the upstream only for bytes still queued.
    const pause = Socket.prototype.pause;
    let pauses = 0;
    Socket.prototype.pause = function (this: Socket) {
      pauses++;
      return pause.call(this);
    };
    try {
      await twentyAnswersOf64KiB(t);
    } finally {
      Socket.prototype.pause = pause;
    }
    t.ok(pauses <= 5, `socket pauses over 20 answers of 64 KiB: ${pauses} (one per answer when a whole write counts as backpressure)`);
  });

  t.test('a 64 KiB sized answer the upstream sent at once reaches the client in one write, not one per upstream read', async (t) => {
    // Counted on the gateway's client sockets only (this process also runs the upstream and the client).
    const writeGeneric = (Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown })._writeGeneric;
    let writes = 0;
    (Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown })._writeGeneric = function (this: Socket, ...args: unknown[]) {
      if (this.localPort === port) writes++;
      return writeGeneric.apply(this, args);
    };
    try {
      await twentyAnswersOf64KiB(t);
    } finally {
      (Socket.prototype as unknown as { _writeGeneric: typeof writeGeneric })._writeGeneric = writeGeneric;
    }
    t.ok(writes <= 22, `writes to clients over 20 answers of 64 KiB: ${writes} (40 when each upstream read is written on its own)`);
  });

  t.test("a sized answer's bytes are not held back for the rest of it: what the upstream sent reaches the client while it sends more", async (t) => {
    const arrival = nextArrival();
    const socket = await rawClient(`GET /sized-slow HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    let received = Buffer.alloc(0);
    let onData: (() => void) | null = null;
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      onData?.();
    });
    const bodyBytes = () => {
      const end = received.indexOf('\r\n\r\n');
      return end === -1 ? -1 : received.length - end - 4;
    };
    const until = (n: number, what: string) =>
      within(
        new Promise<void>((resolve) => {
          onData = () => bodyBytes() >= n && resolve();
          onData();
        }),
        10_000,
        what,
      );
    const s = await arrival;
    await until(1000, 'the first half, while the upstream holds the second');
    t.equal(bodyBytes(), 1000, 'the first half arrived on its own');
    t.match(received.toString('latin1'), /^HTTP\/1\.1 200 /);
    s.res.end(Buffer.alloc(1000, 'b'));
    await until(2000, 'the second half');
    t.equal(received.subarray(received.indexOf('\r\n\r\n') + 4).toString('latin1'), `${'a'.repeat(1000)}${'b'.repeat(1000)}`);
    socket.destroy();
  });

  t.test('client stops reading, then leaves, while the upstream is paused by backpressure → upstream closed', async (t) => {
    const arrived = nextArrival();
    const backpressure = new Promise<void>((resolve) => flooded.push(resolve));
    const socket = await rawClient(`GET /flood HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`);
    t.teardown(() => socket.destroy());
    socket.pause();
    const s = await arrived;
    await within(backpressure, 20_000, 'backpressure reaching the upstream');
    socket.destroy();
    const end = await within(s.closed, 20_000, "the upstream's connection closing");
    t.equal(end.responseFinished, false);
    await stillServes(t);
  });

  t.test('an upload with Expect: 100-continue (curl sends it for larger bodies) gets 100 Continue, then the upstream answer', async (t) => {
    const before = bodyBytes.length;
    const socket = await rawClient(
      `PUT /upload HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`,
    );
    t.teardown(() => socket.destroy());
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    const continued = async () => {
      for (let i = 0; i < 500 && !received.startsWith('HTTP/1.1 100 Continue\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
    };
    await continued();
    t.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\n/, 'the client is told to send its body');
    socket.write('hello');
    await within(once(socket, 'end'), 20_000, 'the end of the answer');
    t.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nuploaded$/, 'then the upstream answer');
    t.equal(bodyBytes.slice(before).reduce((a, b) => a + b, 0), 5, 'the upstream got the body');
  });

  t.test('client leaves mid request body → the upstream request is cut before its end', async (t) => {
    const arrived = nextArrival();
    const socket = await rawClient(
      `POST /upload HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\ncontent-type: application/octet-stream\r\ncontent-length: 1000000\r\n\r\n`,
    );
    t.teardown(() => socket.destroy());
    socket.write(Buffer.alloc(1000, 'a'));
    const s = await within(arrived, 20_000, 'the upload reaching the upstream');
    const received = () => bodyBytes.reduce((a, b) => a + b, 0);
    await within(
      (async () => {
        while (received() < 1000) await new Promise((r) => setTimeout(r, 10));
      })(),
      20_000,
      'the first 1000 body bytes reaching the upstream',
    );
    socket.destroy();
    const end = await within(s.closed, 20_000, "the upstream's connection closing");
    t.equal(end.requestComplete, false, 'the upstream never saw the whole body');
    t.ok(received() < 1_000_000, 'less than the announced body arrived');
    await stillServes(t);
  });

  t.test('many clients leaving at once under load: no crash, every upstream exchange ends', async (t) => {
    const before = seen.length;
    const sockets = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        rawClient(`GET ${i % 2 === 0 ? '/slow' : '/flood'} HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`),
      ),
    );
    // Wait until all 50 reached the upstream, then drop them all.
    await within(
      (async () => {
        while (seen.length < before + 50) await new Promise((r) => setTimeout(r, 20));
      })(),
      30_000,
      'all 50 requests reaching the upstream',
    );
    t.teardown(() => {
      for (const s of sockets) s.destroy();
    });
    for (const s of sockets) s.destroy();
    const ends = await within(Promise.all(seen.slice(before).map((s) => s.closed)), 30_000, 'all 50 upstream connections closing');
    t.equal(ends.filter((e) => !e.responseFinished).length, 50, 'all 50 were cut');
    await stillServes(t);
  });

  /** Checks an upload's answer and what the upstream recorded (every byte, in order); returns that record. */
  const arrivedWhole = (t: Test, answer: string, body: Buffer, before: number) => {
    const [head, text] = answer.split('\r\n\r\n') as [string, string];
    t.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    t.equal(text, `${body.length} ${sha256(body)}`, "the upstream's answer: every byte, in order");
    const got = digests[before]!;
    t.equal(got.length, body.length, 'the upstream received every byte');
    t.equal(got.sha256, sha256(body), 'in order');
    return got;
  };

  t.test('a 16 MiB upload to an upstream that reads slowly arrives whole and in order; the client gets the answer', async (t) => {
    const size = 16 * 1024 * 1024;
    const body = PATTERN.subarray(0, size);
    const before = digests.length;
    const answer = await upload(
      `POST /digest?slow HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`,
      body,
      256 * 1024,
    );
    const got = arrivedWhole(t, answer, body, before);
    t.equal(got.contentLength, String(size), 'with the Content-Length the client sent');
    t.ok(got.pauses >= 100, 'the upstream paused the upload many times', { pauses: got.pauses });
  });

  t.test('a chunked upload (no Content-Length) of 4 MiB in uneven chunks arrives whole and in order', async (t) => {
    const size = 4 * 1024 * 1024 + 12345;
    const body = PATTERN.subarray(1000, 1000 + size);
    const before = digests.length;
    const answer = await upload(
      `POST /digest HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`,
      body,
      40_000,
      // Each piece as uneven chunks: 1 byte, 7 bytes, the rest.
      (p) => [p.subarray(0, 1), p.subarray(1, 8), p.subarray(8)].filter((c) => c.length > 0).flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]),
      '0\r\n\r\n',
    );
    const got = arrivedWhole(t, answer, body, before);
    t.equal(got.contentLength, undefined, 'no Content-Length was invented');
    t.equal(got.transferEncoding, 'chunked', 'the body went upstream chunked');
  });

  t.test('8 concurrent 8 MiB downloads by clients reading at different speeds: every client gets every byte, then the gateway still serves', async (t) => {
    const size = 8 * 1024 * 1024;
    const paces: Array<Pace | undefined> = [
      undefined,
      { every: 32 * 1024, ms: 1 },
      { every: 256 * 1024, ms: 10 },
      { every: 1024 * 1024, ms: 100 },
      undefined,
      { every: 64 * 1024, ms: 3 },
      { every: 512 * 1024, ms: 20 },
      { every: 2 * 1024 * 1024, ms: 150 },
    ];
    const results = await Promise.all(paces.map((pace) => download(`/pattern/${size}`, { ...(pace ? { pace } : {}), ms: 60_000 })));
    const expected = sha256(PATTERN.subarray(0, size));
    results.forEach((r, i) => {
      t.equal(r.head.status, 200, `client ${i}: 200`);
      t.equal(r.bytes, size, `client ${i}: every byte`);
      t.equal(r.sha256, expected, `client ${i}: in order`);
    });
    await stillServes(t);
  });

  t.test('concurrent large answers, each different, to clients reading slowly: every client gets exactly its own bytes (pooled body buffers are reused only once written)', async (t) => {
    // Sizes around the relay's 64 KiB body slabs, each answer another part of PATTERN; the slow readers
    // keep the gateway's writes queued while other answers go through, so a buffer reused too early
    // would put one answer's bytes into another.
    const sizes = [64 * 1024, 20_000, 64 * 1024 + 1, 200_000, 65_535, 131_072];
    const jobs = Array.from({ length: 24 }, (_, i) => ({ offset: i * 300_007, size: sizes[i % sizes.length]! }));
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(
        jobs.map((j, i) => download(`/slice/${j.offset}/${j.size}`, { ...(i % 3 === 0 ? {} : { pace: { every: 16 * 1024, ms: 2 + (i % 5) } }), ms: 60_000 })),
      );
      results.forEach((r, i) => {
        const j = jobs[i]!;
        t.equal(r.bytes, j.size, `round ${round}, client ${i}: every byte`);
        t.equal(r.sha256, sha256(PATTERN.subarray(j.offset, j.offset + j.size)), `round ${round}, client ${i}: its own bytes, in order`);
      });
    }
  });

  t.test('the same with chunked answers (de-chunked by the relay into slabs and small buffers): every client gets exactly its own bytes', async (t) => {
    const sizes = [64 * 1024, 20_000, 200_000, 7_000];
    const jobs = Array.from({ length: 16 }, (_, i) => ({ offset: i * 300_007, size: sizes[i % sizes.length]! }));
    const results = await Promise.all(
      jobs.map((j, i) => download(`/chunked-slice/${j.offset}/${j.size}`, { keepBody: true, ...(i % 3 === 0 ? {} : { pace: { every: 16 * 1024, ms: 2 + (i % 5) } }), ms: 60_000 })),
    );
    results.forEach((r, i) => {
      const j = jobs[i]!;
      const body = r.head.headers.get('transfer-encoding') === 'chunked' ? dechunk(r.body!) : r.body!;
      t.ok(body.equals(PATTERN.subarray(j.offset, j.offset + j.size)), `client ${i}: its own ${j.size} bytes, in order`);
    });
  });

  t.test('pipelined requests for different 64 KiB answers, read only after a pause: each answer holds its own bytes (answers queued behind others are not overwritten)', async (t) => {
    // Node queues the answers to pipelined requests in memory until the earlier ones are sent, and the
    // client not reading fills the socket: the relayed bodies wait in the gateway, where a pooled
    // buffer given back before it was written would be overwritten by a later answer.
    const n = 200;
    const offsets = Array.from({ length: n }, (_, i) => (i * 524_287) % (PATTERN.length - 65_536));
    const socket = await rawClient(offsets.map((o) => `GET /slice/${o}/65536 HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\n\r\n`).join(''));
    socket.pause();
    await sleep(300);
    const bodies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const done = new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) return;
          const length = Number(parseHead(buf.subarray(0, end).toString('latin1')).headers.get('content-length'));
          if (buf.length < end + 4 + length) return;
          bodies.push(buf.subarray(end + 4, end + 4 + length));
          buf = buf.subarray(end + 4 + length);
          if (bodies.length === n) return resolve();
        }
      });
    });
    socket.resume();
    await within(done, 30_000, `${n} pipelined answers`);
    socket.destroy();
    let own = 0;
    bodies.forEach((b, i) => {
      if (b.equals(PATTERN.subarray(offsets[i]!, offsets[i]! + 65_536))) own++;
    });
    t.equal(own, n, 'every answer holds exactly its own part of the pattern');
  });

  t.test('the upstream dies mid body of a sized answer → the client connection closes before Content-Length bytes arrived', async (t) => {
    // A keep-alive client: only the gateway can close the connection, and it must, or the client waits forever.
    const r = await download('/die/sized', { close: false, ms: 20_000 });
    t.equal(r.head.status, 200, 'the answer had started');
    t.equal(r.head.headers.get('content-length'), String(1024 * 1024));
    t.ok(r.bytes < 1024 * 1024, 'fewer bytes than announced: the truncation shows', { bytes: r.bytes });
    await stillServes(t);
  });

  t.test('the upstream dies after the head of a sized answer, before any body byte → the client gets a 502, not a cut answer', async (t) => {
    const r = await download('/die/after-head', { keepBody: true, ms: 20_000 });
    t.equal(r.head.status, 502, 'nothing of the answer had been sent: the client is told the upstream failed');
    t.equal(r.head.headers.has('x-kind'), false, "none of the failed answer's headers");
    t.match(r.body?.toString('latin1') ?? '', /Bad Gateway/);
    await stillServes(t);
  });

  t.test('the upstream dies mid body of a chunked answer → the client never gets the terminating zero-length chunk', async (t) => {
    const r = await download('/die/chunked', { close: false, keepBody: true, ms: 20_000 });
    t.equal(r.head.status, 200, 'the answer had started');
    t.equal(r.head.headers.get('transfer-encoding'), 'chunked');
    const { data, terminated } = decodeChunked(r.body!);
    t.equal(data.toString('latin1'), 'part one,', 'the part the upstream sent was relayed');
    t.equal(terminated, false, 'no terminating chunk: the truncated answer does not look complete');
    await stillServes(t);
  });

  t.test('an upstream that refuses an upload before reading it: the client gets the whole answer and is not left hanging mid upload', async (t) => {
    const size = 16 * 1024 * 1024;
    // A keep-alive client that sends its whole body (waiting for 'drain') while it reads the answer.
    const socket = await rawClient(
      `POST /reject HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\n\r\n`,
    );
    t.teardown(() => socket.destroy());
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    // (Not events.once: that rejects on the EPIPE a write into a closed connection gets.)
    const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
    const sent = (async () => {
      for (let at = 0; at < size && !socket.destroyed; at += 64 * 1024) {
        if (!socket.write(PATTERN.subarray(at, at + 64 * 1024))) await Promise.race([once(socket, 'drain'), closed]);
      }
      return 'sent' as const;
    })().catch(() => closed); // a write that fails: the connection is closing
    // Either way is fine: the gateway closes the connection (it cannot be reused with a body still on it),
    // or it takes the rest of the body so that the upload completes. Waiting forever is not.
    const how = await within(Promise.race([closed, sent]), 10_000, 'the connection closing or the upload completing');
    await within(
      (async () => {
        while (!received.endsWith('too large') && !socket.destroyed) await sleep(10);
      })(),
      10_000,
      'the whole answer',
    );
    t.comment(`the exchange ended: ${how}`);
    t.match(received, /^HTTP\/1\.1 413 Payload Too Large\r\n/, "the upstream's answer");
    t.ok(received.endsWith('\r\n\r\ntoo large'), 'its whole body', { received });
    await stillServes(t);
  });

  for (const [method, path, what] of [
    ['GET', '/no-content', 'a 204 answer'],
    ['GET', '/not-modified', 'a 304 answer'],
    ['HEAD', `/pattern/${8 * 1024 * 1024}`, 'a HEAD answer for an 8 MiB resource'],
  ] as const) {
    t.test(`${what} is relayed with its headers and no body; the same client connection then serves the next request`, async (t) => {
      const conn = await keepAliveConnection();
      t.teardown(() => conn.socket.destroy());
      const first = await conn.ask(method, path);
      if (path === '/no-content') {
        t.equal(first.head.status, 204);
        t.equal(first.head.headers.get('x-kind'), 'none');
      } else if (path === '/not-modified') {
        t.equal(first.head.status, 304);
        t.equal(first.head.headers.get('etag'), '"v1"');
        t.equal(first.head.headers.get('cache-control'), 'max-age=60');
      } else {
        t.equal(first.head.status, 200);
        t.equal(first.head.headers.get('content-length'), String(8 * 1024 * 1024), 'the size of the resource');
        t.equal(first.head.headers.get('content-type'), 'application/octet-stream');
      }
      t.notOk(first.head.headers.has('transfer-encoding'), 'no body framing for a bodyless answer', { head: first.head.text });
      t.notOk(/^connection: close$/im.test(first.head.text), 'the gateway keeps the connection', { head: first.head.text });
      // Nothing may follow the head: a stray byte would be read as the start of the next response.
      const next = await conn.ask('GET', '/headers');
      t.equal(next.head.status, 201, 'the next request on the same connection is answered', { head: next.head.text });
      t.equal(next.body, 'hello');
      await sleep(50);
      t.equal(conn.extra().length, 0, 'no stray bytes after the answers');
    });
  }

  t.test('a client that stops reading holds the upstream back: the gateway buffers a bounded amount, not the whole stream', async (t) => {
    const socket = await rawClient(`GET /endless?id=held HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    t.teardown(() => socket.destroy());
    let received = 0;
    socket.on('data', (d: Buffer) => {
      received += d.length;
      // Reads the head and the first 1 MiB, then stops.
      if (received >= 1024 * 1024) socket.pause();
    });
    // Until the upstream stops getting further (its writes wait for a drain that does not come).
    let last = -1;
    await within(
      (async () => {
        for (;;) {
          await sleep(300);
          const now = written.get('held')?.written ?? 0;
          if (received >= 1024 * 1024 && now === last) return;
          last = now;
        }
      })(),
      30_000,
      'the upstream stopping',
    );
    const inFlight = last - received;
    t.comment(`upstream wrote ${last} bytes, the client read ${received}: ${inFlight} in flight`);
    t.ok(inFlight < 64 * 1024 * 1024, 'at most socket buffers hold what the client has not read', { written: last, received });
    socket.destroy();
  });

  t.test('a client that reads 64 KiB, then pauses 5 ms, over a 32 MiB download gets every byte (hundreds of pause/resume cycles)', async (t) => {
    const size = PATTERN.length;
    const r = await download(`/pattern/${size}`, { pace: { every: 64 * 1024, ms: 5 }, ms: 90_000 });
    t.equal(r.head.status, 200);
    t.equal(r.bytes, size, 'every byte');
    t.equal(r.sha256, sha256(PATTERN), 'in order');
    await stillServes(t);
  });
  t.test('a client that stops reading a stream of small chunks: one wait for its drain, not one per chunk of the read', async (t) => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    t.teardown(() => process.off('warning', onWarning));
    const socket = await rawClient(`GET /small-chunks HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: close\r\n\r\n`);
    t.teardown(() => socket.destroy());
    // Reads nothing until the gateway's buffers towards it are full, then everything.
    socket.pause();
    await sleep(1500);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let received = 0;
    socket.on('data', (d: Buffer) => {
      received += d.length;
    });
    socket.resume();
    await within(closed, 30_000, 'the end of the stream');
    t.ok(received > 16 * 1024 * 1024, 'every chunk arrived', { received });
    await sleep(10);
    t.same(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
      'no listener pile-up on the response',
    );
  });
});
