// The image's HEALTHCHECK command run against real `portcullis run` processes: it follows the gateway's own listeners, not the metrics port's ping.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Upstream, getFreePort, startNatsServer, startRedisServer, startUpstream } from '@portcullis/testkit';
import t, { type Test } from 'tap';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');

/** The HEALTHCHECK's exec form from infra/docker/Dockerfile. */
const HEALTHCHECK = ((): string[] => {
  const text = readFileSync(join(ROOT, 'infra/docker/Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const line = text.split('\n').find((l) => l.startsWith('HEALTHCHECK'));
  if (!line) throw new Error('no HEALTHCHECK in the Dockerfile');
  return JSON.parse(line.slice(line.indexOf('CMD') + 3).trim()) as string[];
})();

/** Runs the image's health check against a metrics listener on `port`, placed as in a container (the variable): exit 0 healthy, 1 unhealthy. */
function healthCheck(port: number): Promise<number | null> {
  const [cmd, ...args] = HEALTHCHECK;
  const env = { ...process.env, PORTCULLIS_OUTPOST__LISTEN__METRICS: `127.0.0.1:${port}` };
  return new Promise((resolve) => {
    execFile(cmd!, args, { timeout: 20_000, env }).on('exit', (code) => resolve(code));
  });
}

const config = (http: number, metrics: number, upstream: Upstream, extra = '') => `
outpost:
  listen: { http: "127.0.0.1:${http}", https: null, metrics: "127.0.0.1:${metrics}" }
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:${http}
    internal_host: ${upstream.url}
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: health-test-cookie-secret-0123456789abcdef
    skip_path_regex: "^/__stream"
${extra}`;

async function run(t: Test, text: string, services = 'all'): Promise<{ child: ChildProcess; exit: Promise<number | null> }> {
  const dir = t.testdir({});
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, text);
  const child = spawn(BIN, ['run', '--config', file, '--services', services], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('the image health check: healthy once the gateway serves; unhealthy from SIGTERM on, when its listeners refuse while /ping still answers 204', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const [http, metrics] = [await getFreePort(), await getFreePort()];
  const p = await run(t, config(http, metrics, upstream));
  await until(async () => (await fetch(`http://127.0.0.1:${http}/outpost.goauthentik.io/ping`)).status === 204, 'the gateway listener');
  t.equal(await healthCheck(metrics), 0, 'healthy while the gateway listener serves');

  // A download in flight keeps the process in its graceful stop for about 2 s.
  const download = fetch(`http://127.0.0.1:${http}/__stream?chunks=4&delay=500`, { headers: { host: `app.localhost:${http}` } }).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 300));
  p.child.kill('SIGTERM');
  await until(
    () =>
      fetch(`http://127.0.0.1:${http}/outpost.goauthentik.io/ping`).then(
        () => false,
        () => true,
      ),
    'the gateway listener to refuse',
  );
  t.equal((await fetch(`http://127.0.0.1:${metrics}/outpost.goauthentik.io/ping`)).status, 204, "authentik's ping on the metrics port still answers 204 (it only says the process runs)");
  t.equal(await healthCheck(metrics), 1, 'the health check says unhealthy: this container no longer takes connections');
  await download;
  t.equal(await p.exit, 0);
});

t.test('cluster mode: with Redis down /ready is 503 (out of rotation) but the health check stays healthy, so an orchestrator that restarts unhealthy containers does not restart every replica during the outage', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const [http, metrics] = [await getFreePort(), await getFreePort()];
  const cluster = `cluster:\n  nats: { servers: ["${nats.url}"] }\n  redis: { url: "${redis.url}" }\n`;
  const p = await run(t, config(http, metrics, upstream, cluster));
  await until(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  t.equal(await healthCheck(metrics), 0, 'healthy');

  await redis.stop();
  await until(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 503, '/ready to say 503');
  t.match(await (await fetch(`http://127.0.0.1:${metrics}/ready`)).json(), { status: 'not ready', redis: 'unreachable' });
  t.equal(await healthCheck(metrics), 0, 'still healthy: the listeners serve (cached sessions, pings), and a restart would not bring Redis back');

  p.child.kill('SIGTERM');
  t.equal(await p.exit, 0);
});
