// Tests of the demo/test upstream: JSON and HTML echo, chunked streaming, status codes, WebSocket echo, TLS.
import { once } from 'node:events';
import t from 'tap';
import { Agent, request, WebSocket } from 'undici';
import { startUpstream } from './upstream.ts';

t.test('the upstream echoes method, raw target, raw headers (duplicates as arrays) and body as JSON', async (t) => {
  const upstream = await startUpstream({ name: 'echo' });
  t.teardown(() => upstream.close());
  const res = await request(`${upstream.url}/some/path?a=1&b=%20`, {
    method: 'POST',
    headers: ['X-Authentik-Username', 'alice', 'x-authentik-username', 'mallory', 'content-type', 'text/plain'],
    body: 'payload',
  });
  const echo = (await res.body.json()) as Record<string, unknown> & { headers: Record<string, unknown> };
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['x-upstream-name'], 'echo');
  t.equal(echo['name'], 'echo');
  t.equal(echo['method'], 'POST');
  t.equal(echo['url'], '/some/path?a=1&b=%20');
  t.same(echo.headers['x-authentik-username'], ['alice', 'mallory'], 'a repeated header shows every value');
  t.equal(echo.headers['content-type'], 'text/plain');
  t.equal(echo['body'], 'payload');
  t.equal(upstream.requests, 1);
});

t.test('with Accept: text/html the upstream renders a page that highlights X-authentik-* headers', async (t) => {
  const upstream = await startUpstream({ name: 'demo app' });
  t.teardown(() => upstream.close());
  const res = await request(`${upstream.url}/`, {
    headers: { accept: 'text/html,application/xhtml+xml', 'x-authentik-email': 'a@example.com<script>' },
  });
  const html = await res.body.text();
  t.match(res.headers['content-type'], /^text\/html/);
  t.match(html, '<h1>demo app</h1>');
  t.match(html, '<tr class="ak"><th>x-authentik-email</th><td>a@example.com&lt;script&gt;</td></tr>', 'highlighted and escaped');
  t.match(html, '<tr><th>accept</th>', 'other headers are not highlighted');
});

t.test('/__stream sends N chunks over time with chunked encoding', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const started = Date.now();
  const res = await request(`${upstream.url}/__stream?chunks=3&delay=100`);
  const headersAt = Date.now() - started;
  const chunks: string[] = [];
  for await (const chunk of res.body) chunks.push(String(chunk));
  const doneAt = Date.now() - started;
  t.equal(res.headers['transfer-encoding'], 'chunked');
  t.equal(chunks.join(''), 'chunk 0\nchunk 1\nchunk 2\n');
  t.ok(chunks.length >= 2, `the body arrived in pieces (${chunks.length})`);
  t.ok(doneAt - headersAt >= 250, `the headers came before the chunks (${headersAt} ms vs ${doneAt} ms)`);
});

t.test('/__status/<code> answers that status; invalid codes get 400', async (t) => {
  const upstream = await startUpstream({ name: 's' });
  t.teardown(() => upstream.close());
  const teapot = await request(`${upstream.url}/__status/418`);
  t.equal(teapot.statusCode, 418);
  t.same(await teapot.body.json(), { name: 's', status: 418 });
  const empty = await request(`${upstream.url}/__status/204`);
  t.equal(empty.statusCode, 204);
  t.equal(await empty.body.text(), '');
  const invalid = await request(`${upstream.url}/__status/999`);
  t.equal(invalid.statusCode, 400);
  await invalid.body.text();
});

t.test('a WebSocket upgrade echoes text frames, large ones too, and describes the upgrade request', async (t) => {
  const upstream = await startUpstream({ name: 'ws' });
  t.teardown(() => upstream.close());
  const ws = new WebSocket(`${upstream.url.replace('http', 'ws')}/socket?x=1`, { headers: { 'x-authentik-uid': 'u1' } });
  const messages: string[] = [];
  ws.addEventListener('message', (ev) => messages.push(String(ev.data)));
  await once(ws as unknown as EventTarget, 'open');
  const next = async (n: number) => {
    while (messages.length < n) await new Promise((r) => setTimeout(r, 5));
    return messages[n - 1] ?? '';
  };

  ws.send('hello');
  t.equal(await next(1), 'hello');
  const big = 'x'.repeat(70_000); // needs the 64-bit length form
  ws.send(big);
  t.equal((await next(2)).length, big.length);
  ws.send('__request');
  const described = JSON.parse(await next(3));
  t.equal(described.url, '/socket?x=1');
  t.equal(described.headers['x-authentik-uid'], 'u1');
  t.equal(described.headers.upgrade, 'websocket');

  ws.close(1000, 'done');
  const closed = (await once(ws as unknown as EventTarget, 'close')) as [{ code: number }];
  t.equal(closed[0].code, 1000, 'the close handshake completes with the client code');
  t.equal(upstream.requests, 1, 'the upgrade counts as a request');
});

t.test('tls: true serves https with a self-signed certificate clients can pin', async (t) => {
  const upstream = await startUpstream({ tls: true, name: 'secure' });
  t.teardown(() => upstream.close());
  t.match(upstream.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const agent = new Agent({ connect: { ca: upstream.certificate ?? '' } });
  t.teardown(() => agent.close());
  const res = await request(`${upstream.url}/x`, { dispatcher: agent });
  const echo = (await res.body.json()) as { name: string };
  t.equal(echo.name, 'secure', 'the certificate verifies against itself for 127.0.0.1');
  const strict = new Agent();
  t.teardown(() => strict.close());
  await t.rejects(request(`${upstream.url}/x`, { dispatcher: strict }), 'an unpinned client refuses it');
});
