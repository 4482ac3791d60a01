// Real listeners: WebSocket upgrades through proxy mode, the HTTPS listener's default certificate, and the shutdown grace.
import { getFreePort, startUpstream } from '@portcullis/testkit';
import t, { type Test } from 'tap';
import { Agent, WebSocket, request } from 'undici';
import { providerYaml, startTestGateway, testConfig } from './test-support.ts';

/** A proxy-mode gateway for `upstream` on free HTTP and HTTPS ports (`outpost` adds settings), logged in as alice. */
async function startProxyGateway(t: Test, upstreamUrl: string, outpost = '') {
  const [http, https] = [await getFreePort(), await getFreePort()];
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:${http}", https: "127.0.0.1:${https}", metrics: null }${outpost} }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: `http://app.localhost:${http}`, internal_host: upstreamUrl })}
`);
  const gw = await startTestGateway(config, { https: true });
  t.teardown(() => gw.close());
  await gw.gateway.start();
  const cookie = await gw.login('app', { sub: 'alice', preferred_username: 'alice' });
  return { gw, http, https, cookie };
}

t.test('listeners', async (t) => {
  const upstream = await startUpstream({ name: 'ws-echo' });
  t.teardown(() => upstream.close());
  const { http, https, cookie } = await startProxyGateway(t, upstream.url);

  const open = (headers: Record<string, string>) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${http}/socket`, { headers: { host: `app.localhost:${http}`, ...headers } } as never);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error('websocket refused'));
    });
  const next = (ws: WebSocket) => new Promise<string>((resolve) => ws.addEventListener('message', (e) => resolve(String(e.data)), { once: true }));

  t.test('an authenticated WebSocket is proxied, with identity headers on the upgrade request', async (t) => {
    const ws = await open({ cookie });
    t.teardown(() => ws.close());
    const echoed = next(ws);
    ws.send('hello');
    t.equal(await echoed, 'hello');
    const described = next(ws);
    ws.send('__request');
    const req = JSON.parse(await described) as { headers: Record<string, string> };
    t.equal(req.headers['x-authentik-username'], 'alice');
  });

  t.test('an unauthenticated WebSocket upgrade is refused (no handshake)', async (t) => {
    await t.rejects(open({}), /refused/);
  });

  t.test('the HTTPS listener serves a generated certificate and the same routes', async (t) => {
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    t.teardown(() => dispatcher.close());
    const ping = await request(`https://127.0.0.1:${https}/outpost.goauthentik.io/ping`, { dispatcher });
    t.equal(ping.statusCode, 204);
    const page = await request(`https://127.0.0.1:${https}/x`, { dispatcher, headers: { host: `app.localhost:${http}`, cookie } });
    t.equal(page.statusCode, 200);
    t.equal(((await page.body.json()) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
  });
});

t.test('stop() ends within shutdown_grace_seconds: a never-ending stream and an open WebSocket are closed', async (t) => {
  const upstream = await startUpstream({ name: 'ws-echo' });
  t.teardown(() => upstream.close());
  const http = await getFreePort();
  // One provider: undici's WebSocket sends its own Host, which only a lone provider accepts.
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:${http}", https: null, metrics: null }, shutdown_grace_seconds: 1 }
providers:
${providerYaml({ name: 'app', mode: 'proxy', external_host: `http://app.localhost:${http}`, internal_host: upstream.url })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  await gw.gateway.start();
  const cookie = await gw.login('app', { sub: 'alice', preferred_username: 'alice' });

  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const s = new WebSocket(`ws://127.0.0.1:${http}/socket`, { headers: { host: `app.localhost:${http}`, cookie } } as never);
    s.onopen = () => resolve(s);
    s.onerror = () => reject(new Error('websocket refused'));
  });
  const wsClosed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve(), { once: true }));
  // A stream of one line a second for a day: open for as long as anyone waits.
  const stream = await request(`http://127.0.0.1:${http}/__stream?chunks=86400&delay=1000`, { headers: { host: `app.localhost:${http}`, cookie } });
  t.equal(stream.statusCode, 200, 'the stream is open');
  const streamEnded = stream.body.text().then(
    () => 'ended',
    () => 'cut',
  );

  const started = Date.now();
  const stopped = await Promise.race([gw.gateway.stop().then(() => 'stopped'), new Promise((r) => setTimeout(() => r('still running after 8 s'), 8_000))]);
  const took = Date.now() - started;
  t.equal(stopped, 'stopped', `stop() returned (after ${took} ms)`);
  t.ok(took >= 900, 'the open connections got their grace first');
  await wsClosed;
  t.pass('the WebSocket was closed');
  t.equal(await streamEnded, 'cut', 'the stream was cut, not ended as if complete');
  t.ok(gw.warnings.includes('shutdown grace over: closing the connections still open'), 'logged');
});

t.test('stop() closes a keep-alive connection once its in-flight answer ends, without waiting out the grace', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const { gw, http, https, cookie } = await startProxyGateway(t, upstream.url, ', shutdown_grace_seconds: 6');
  // Keep-alive clients (as browsers and front proxies are): each answer's head went out before the stop began.
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 60_000 });
  t.teardown(() => dispatcher.close());
  const downloads = await Promise.all(
    [`http://127.0.0.1:${http}`, `https://127.0.0.1:${https}`].map((base) =>
      request(`${base}/__stream?chunks=3&delay=300`, { dispatcher, headers: { host: `app.localhost:${http}`, cookie } }),
    ),
  );
  for (const d of downloads) t.equal(d.statusCode, 200, 'the download started');
  const started = Date.now();
  const stopped = gw.gateway.stop();
  for (const d of downloads) t.equal((await d.body.text()).split('\n').filter(Boolean).length, 3, 'the download finished whole');
  await stopped;
  t.notOk(
    gw.warnings.includes('shutdown grace over: closing the connections still open'),
    `no connection was left to the grace (stop() took ${Date.now() - started} ms; the grace is 6 s)`,
  );
});
