// A request body that stops coming ends the exchange (a 502) after the stall bound, on both upstream clients (native relay and undici); a slow but steady one goes through.
import { once } from 'node:events';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import type { ProxyAnswer } from './answers.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import { UpstreamPools, proxyHttp } from './upstream.ts';

const STALL_MS = 300;
const provider = { config: { internal_host_ssl_validation: true } } as ProviderRuntime;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listen(t: Test, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** An upstream that answers with the length of the body it read; records how each request ended. */
async function upstream(t: Test): Promise<{ origin: string; ended: string[] }> {
  const ended: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let length = 0;
    req.on('data', (c: Buffer) => {
      length += c.length;
    });
    req.on('end', () => {
      ended.push('complete');
      res.end(`got ${length}`);
    });
    req.on('aborted', () => ended.push('aborted'));
  });
  return { origin: `http://127.0.0.1:${await listen(t, server)}`, ended };
}

/** Sends a POST of `length` bytes, written as `parts` with `gapMs` between them (the rest never comes); resolves with the raw answer. */
async function post(port: number, length: number, parts: string[], gapMs: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = once(socket, 'close');
  socket.write(`POST /upload HTTP/1.1\r\nhost: app.test\r\ncontent-length: ${length}\r\nconnection: close\r\n\r\n`);
  for (const part of parts) {
    socket.write(part);
    await sleep(gapMs);
  }
  await closed;
  return Buffer.concat(chunks).toString('latin1');
}

for (const client of ['native', 'undici'] as const) {
  t.test(`${client}: a body that stops coming ends with a 502 after the stall bound; a steady slow one goes through`, async (t) => {
    const up = await upstream(t);
    const pools = new UpstreamPools({ plainHttp: client, native: { headersTimeoutMs: STALL_MS }, bodyStallMs: STALL_MS });
    t.teardown(() => pools.close());
    const proxy = createServer((req, res) => {
      const answer: ProxyAnswer = { kind: 'proxy', provider, origin: up.origin, path: req.url ?? '/', headers: { host: 'app.test', 'content-length': req.headers['content-length'] ?? '0' } };
      proxyHttp(pools, answer, req, res);
    });
    const port = await listen(t, proxy);

    const started = performance.now();
    const stalled = await post(port, 10, ['ab'], 0);
    t.match(stalled, /^HTTP\/1\.1 502 /, 'the client gets a 502');
    t.ok(performance.now() - started < 5_000, 'soon after the stall bound, not never');
    await sleep(100);
    t.same(up.ended, ['aborted'], 'the upstream request was cut, not completed');

    // 12 bytes, one every 100 ms: 1.2 s in all, 4 times the stall bound, never a gap as long as it.
    const steady = await post(port, 12, Array.from({ length: 12 }, () => 'x'), 100);
    t.match(steady, /^HTTP\/1\.1 200 /);
    t.match(steady, /got 12$/, 'the whole body arrived');
  });
}
