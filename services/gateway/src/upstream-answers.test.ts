// Heads beyond node's 16 KiB default both ways (large app cookies), and upgrade requests the upstream does not switch.
import { once } from 'node:events';
import { type Server, createServer } from 'node:http';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { getFreePort } from '@portcullis/testkit';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { startProxyGateway } from './test-support.ts';
import { HALF_OPEN_MS } from './upstream.ts';

/** Listens on 127.0.0.1:`port` until the test ends (open connections closed with it). */
async function listenUntilTeardown(t: Test, server: Server, port: number): Promise<void> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
}

/** The target of a /proc fd link, or '' when it is gone meanwhile. */
function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** The body of a raw HTTP/1.1 answer: decoded when chunked (null when its last chunk is missing), as sent otherwise. */
function bodyOf(text: string): string | null {
  const end = text.indexOf('\r\n\r\n');
  let rest = text.slice(end + 4);
  if (!/\r\ntransfer-encoding: chunked\r\n/i.test(text.slice(0, end + 2))) return rest;
  let body = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol === -1) return null;
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (size === 0) return rest.slice(eol) === '\r\n\r\n' ? body : null;
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

t.test('upstream answers', async (t) => {
  const upstreamPort = await getFreePort();
  // A plain HTTP app: no 'upgrade' listener, so node serves upgrade requests as ordinary requests.
  const upstream = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    if (req.url === '/echo-body') {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} body=${Buffer.concat(chunks).toString()}`));
      return;
    }
    req.resume();
    if (req.url === '/dies-mid-stream') {
      // An unsized (chunked) answer whose upstream dies before its end.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('the first part');
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    if (req.url === '/big-headers') {
      // ASP.NET-style chunked auth cookies: 6 × 4000 bytes, 24 KB of head.
      const cookies = Array.from({ length: 6 }, (_, i) => `.AspNetCore.CookiesC${i + 1}=${'x'.repeat(4000)}; path=/; httponly`);
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': cookies }).end('big');
    } else if (req.url === '/no-ws') {
      res
        .writeHead(403, { 'content-type': 'text/plain', 'x-reason': 'origin', 'x-seen-user': String(req.headers['x-authentik-username']) })
        .end('websocket refused by the app');
    } else if (req.url === '/cookie-size') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(String(req.headers.cookie?.length));
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`plain ${req.method} ${req.url}`);
    }
  });
  await listenUntilTeardown(t, upstream, upstreamPort);

  const { port, cookie } = await startProxyGateway(t, upstreamPort);

  /** One request on a fresh raw connection; the whole response as latin1 text once the gateway or the test ends it. */
  const rawExchange = async (head: string): Promise<string> => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(head);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    await Promise.race([once(socket, 'end'), new Promise((r) => setTimeout(r, 5000))]);
    socket.destroy();
    return Buffer.concat(chunks).toString('latin1');
  };

  t.test('an upstream answer with 24 KB of Set-Cookie headers is relayed, not a 502', async (t) => {
    // A client that, like a browser, takes more than node's 16 KiB of head.
    const dispatcher = new Agent({ maxHeaderSize: 256 * 1024 });
    t.teardown(() => dispatcher.close());
    const r = await request(`http://127.0.0.1:${port}/big-headers`, { dispatcher, headers: { host: 'app.company', cookie } });
    t.equal(r.statusCode, 200);
    t.equal((r.headers['set-cookie'] as string[]).length, 6);
    t.equal(await r.body.text(), 'big');
  });

  t.test('the next request, carrying those cookies back (24 KB of Cookie header), is proxied, not refused with a 431', async (t) => {
    const appCookies = Array.from({ length: 6 }, (_, i) => `.AspNetCore.CookiesC${i + 1}=${'x'.repeat(4000)}`).join('; ');
    const r = await request(`http://127.0.0.1:${port}/cookie-size`, { headers: { host: 'app.company', cookie: `${cookie}; ${appCookies}` } });
    t.equal(r.statusCode, 200);
    t.equal(await r.body.text(), String(`${cookie}; ${appCookies}`.length));
  });

  t.test('a WebSocket upgrade the upstream refuses gets the upstream answer, not a 502', async (t) => {
    const text = await rawExchange(
      `GET /no-ws HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    t.match(text, /^HTTP\/1\.1 403 /);
    t.match(text, /\r\nx-reason: origin\r\n/i);
    t.match(text, /\r\nx-seen-user: alice\r\n/i, "the upgrade request carried the session's identity headers");
    t.equal(bodyOf(text), 'websocket refused by the app', 'the body as sent', { text });
  });

  t.test('an Upgrade: h2c request (curl --http2 on http://) to an app without h2c gets the ordinary answer', async (t) => {
    const text = await rawExchange(
      `GET /page HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`,
    );
    t.match(text, /^HTTP\/1\.1 200 /);
    t.equal(bodyOf(text), 'plain GET /page', 'the body as sent', { text });
  });

  t.test('an upgrade request with a body (curl --http2 -d on http://) that the upstream answers normally: the body reaches it', async (t) => {
    const head = `POST /echo-body HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 11\r\n\r\n`;
    const together = await rawExchange(`${head}hello=world`);
    t.match(together, /^HTTP\/1\.1 200 /);
    t.equal(bodyOf(together), 'POST body=hello=world', 'a body sent with the head arrived whole', { together });
    // The body in pieces after the head: the gateway reads it off the socket.
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.write(`${head}hel`);
    await new Promise((r) => setTimeout(r, 50));
    socket.write('lo=wo');
    await new Promise((r) => setTimeout(r, 50));
    socket.write('rld');
    await Promise.race([once(socket, 'end'), new Promise((r) => setTimeout(r, 5000))]);
    socket.destroy();
    const later = Buffer.concat(chunks).toString('latin1');
    t.equal(bodyOf(later), 'POST body=hello=world', 'a body sent after the head, in pieces, arrived whole', { later });
  });

  t.test('an upgrade request with a chunked body is refused with a 411, not sent on without its body', async (t) => {
    const text = await rawExchange(
      `PUT /echo-body HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade\r\nupgrade: h2c\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    t.match(text, /^HTTP\/1\.1 411 Length Required\r\n/);
  });

  t.test('an upgrade the upstream answers normally but unsized, then dies mid body: the client can tell the answer is incomplete', async (t) => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let reset = false;
    socket.on('error', () => {
      reset = true;
    });
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.write(`GET /dies-mid-stream HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
    await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 5000))]);
    socket.destroy();
    const text = Buffer.concat(chunks).toString('latin1');
    t.match(text, /^HTTP\/1\.1 200 /);
    t.match(text, /the first part/);
    // A body delimited by the end of the connection would look complete: it must be chunked without its last chunk, or the connection reset.
    t.ok(reset || bodyOf(text) === null, 'the truncation is visible', { text, reset });
  });

  t.test('an unauthenticated upgrade still never reaches the upstream', async (t) => {
    const text = await rawExchange(`GET /no-ws HTTP/1.1\r\nhost: app.company\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
    t.match(text, /^HTTP\/1\.1 302 /);
  });
});

t.test('a switched upgrade: the client is told the protocol the upstream chose, not the list it offered', async (t) => {
  const upstreamPort = await getFreePort();
  const upstream = createServer();
  upstream.on('upgrade', (req, socket) => {
    // Offered "h2c, websocket": the app picks one and says which.
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-offered: ${req.headers.upgrade}\r\n\r\n`);
    socket.end();
  });
  await listenUntilTeardown(t, upstream, upstreamPort);
  const { port, cookie } = await startProxyGateway(t, upstreamPort);
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(`GET /switch HTTP/1.1\r\nhost: app.company\r\ncookie: ${cookie}\r\nconnection: Upgrade\r\nupgrade: h2c, websocket\r\n\r\n`);
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 5000))]);
  socket.destroy();
  const head = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')[0]!;
  t.match(head, /^HTTP\/1\.1 101 /);
  t.match(head, /x-offered: h2c, websocket/i, 'the upstream saw the whole offer');
  const upgrade = head.split('\r\n').filter((l) => /^upgrade:/i.test(l));
  t.same(upgrade, ['Upgrade: websocket'], 'one Upgrade header: the chosen protocol');
});

t.test('a refused upgrade whose client never closes its side: the gateway closes its socket once idle', async (t) => {
  const { port } = await startProxyGateway(t, await getFreePort());
  // Open sockets of this process (the gateway runs in it): file descriptors that are sockets.
  const tcp = () => readdirSync('/proc/self/fd').filter((fd) => readlinkSafe(`/proc/self/fd/${fd}`).startsWith('socket:')).length;
  const before = tcp();
  // allowHalfOpen: the client does not answer the gateway's end with its own (a misbehaving or hostile
  // client; no session needed, the refusal itself is such an answer).
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write('GET /ws HTTP/1.1\r\nhost: app.company\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
  await once(socket, 'end');
  t.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 302 /);
  t.equal(tcp(), before + 2, `both ends open: the client and the gateway half of it (${before} before, ${tcp()} now)`);
  await new Promise((r) => setTimeout(r, HALF_OPEN_MS + 1_000));
  t.equal(tcp(), before + 1, `only the client end is left: the gateway closed its socket (${before} before, ${tcp()} now)`);
});
