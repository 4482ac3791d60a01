// Redis restarted without persistence or flushed: the projection is rebuilt from the log, reads fail closed meanwhile and cookies are kept.
import { request } from 'node:http';
import { createNatsBus } from '@portcullis/bus';
import { startPortcullis } from '@portcullis/cli';
import { loadConfig } from '@portcullis/config';
import { createEvent, type SessionStartedData } from '@portcullis/events';
import { sessionCookieName, signSessionCookie } from '@portcullis/protocol';
import { type SessionRecord, createRedisStore } from '@portcullis/store';
import { createLogger } from '@portcullis/telemetry';
import { getFreePort, startNatsServer, startRedisServer, startUpstream } from '@portcullis/testkit';
import { Redis } from 'ioredis';
import t from 'tap';

const started = (sessionId: string, sub: string): SessionStartedData => ({
  sessionId,
  provider: 'app',
  issuer: 'http://127.0.0.1:1/',
  sub,
  sid: null,
  claims: {},
  accessToken: 'access-token-value',
  idToken: null,
  jwksUri: '',
  createdAt: Date.now(),
  expiresAt: Date.now() + 3_600_000,
});

const COOKIE_SECRET = 'lost-projection-cookie-secret-0123456789';

async function clusterConfig(natsUrl: string, redisUrl: string, upstreamUrl = 'http://127.0.0.1:1') {
  const loaded = loadConfig({
    env: {},
    text: `
log_level: silent
outpost:
  listen: { http: "127.0.0.1:${await getFreePort()}", https: null, metrics: null }
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:9000
    internal_host: ${upstreamUrl}
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: ${COOKIE_SECRET}
  - name: fwd
    mode: forward_single
    external_host: http://fwd.localhost:9000
    issuer: http://127.0.0.1:1/
    client_id: fwd
    client_secret: secret
    cookie_secret: ${COOKIE_SECRET}
cluster:
  nats: { servers: ["${natsUrl}"] }
  redis: { url: "${redisUrl}" }
`,
  });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  return loaded.config;
}

const quietLogger = () => createLogger({ level: 'silent', service: 'test' });

t.test('Redis restarted empty: session reads are refused (never "no such session"), the session service rebuilds the projection, signed-out sessions stay dead', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  let redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const config = await clusterConfig(nats.url, redis.url);
  const portcullis = await startPortcullis({ config, roles: new Set(['session'] as const), logger: quietLogger() });
  t.teardown(() => portcullis.stop());
  const bus = await createNatsBus({ nats: config.cluster!.nats, name: 'test-appender', streamMaxAgeSeconds: null });
  t.teardown(() => bus.close());
  // What a gateway reads through.
  const reader = await createRedisStore({ redis: config.cluster!.redis });
  t.teardown(() => reader.close());

  await bus.log.append(createEvent('SessionStarted', started('signed-out', 'alice')));
  await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }));
  await bus.log.append(createEvent('SessionStarted', started('alice-again', 'alice')));
  const last = await bus.log.append(createEvent('SessionStarted', started('bob', 'bob')));
  t.ok(await reader.waitForApplied(last, 10_000), 'projected');
  t.ok(await reader.getLiveSession('alice-again'));
  t.equal(await reader.getLiveSession('signed-out'), null);

  await redis.stop();
  redis = await startRedisServer({ port: redis.port });

  // Until the projection is back, a read either fails (the gateway answers 503 and keeps the cookie) or
  // finds the session: a "no such session" would make the gateway delete a live user's cookie.
  const refusals = new Set<string>();
  let found: SessionRecord | null = null;
  for (const deadline = Date.now() + 30_000; found === null; ) {
    if (Date.now() > deadline) break;
    try {
      found = await reader.getLiveSession('alice-again');
      if (found === null) {
        refusals.add('answered: no such session');
        break;
      }
    } catch (err) {
      refusals.add((err as { code?: string }).code ?? String(err));
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.notOk(refusals.has('answered: no such session'), `never "no such session" for a live session (saw: ${[...refusals].join(', ')})`);
  t.ok(found, 'the session is back once the projection is rebuilt');
  t.ok(
    [...refusals].every((c) => ['PORTCULLIS_STORE_PROJECTION_LOST', 'PORTCULLIS_STORE_REBUILDING', 'PORTCULLIS_STORE_UNAVAILABLE'].includes(c)),
    `refusals were the lost projection, the rebuild or the restart itself (${[...refusals].join(', ')})`,
  );
  t.ok(await reader.getLiveSession('bob'), 'every other session is back');
  t.equal(await reader.getLiveSession('signed-out'), null, 'the sign-out was rebuilt too: the signed-out session stays dead');
  t.equal(await reader.appliedSeq(), last);

  const next = await bus.log.append(createEvent('SessionStarted', started('carol', 'carol')));
  t.ok(await reader.waitForApplied(next, 10_000), 'projection goes on after the rebuild');
  t.ok(await reader.getLiveSession('carol'));
});

t.test('a session service started on an empty Redis while the log holds events builds the projection under the rebuild marker, never half-replayed in the open', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const config = await clusterConfig(nats.url, redis.url);
  const bus = await createNatsBus({ nats: config.cluster!.nats, name: 'test-appender', streamMaxAgeSeconds: 3600 });
  t.teardown(() => bus.close());
  await bus.log.append(createEvent('SessionStarted', started('signed-out', 'alice')));
  const last = await bus.log.append(createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }));
  // Every write of the rebuild marker, as Redis itself reports it.
  const watcher = new Redis(redis.url);
  t.teardown(() => watcher.disconnect());
  await watcher.config('SET', 'notify-keyspace-events', 'K$g');
  const markerEvents: string[] = [];
  const listener = new Redis(redis.url);
  t.teardown(() => listener.disconnect());
  listener.on('pmessage', (_p: string, channel: string, op: string) => {
    if (channel.endsWith(':rebuilding')) markerEvents.push(op);
  });
  await listener.psubscribe('__keyspace@0__:*');

  const portcullis = await startPortcullis({ config, roles: new Set(['session'] as const), logger: quietLogger() });
  t.teardown(() => portcullis.stop());
  const reader = await createRedisStore({ redis: config.cluster!.redis });
  t.teardown(() => reader.close());
  t.ok(await reader.waitForApplied(last, 10_000), 'projected');
  t.equal(await reader.getLiveSession('signed-out'), null);
  await watcher.ping();
  t.ok(markerEvents.includes('set'), `the replay held the rebuild marker (marker events: ${markerEvents.join(', ') || 'none'})`);
});

/** A GET to the gateway on `port` with these headers: status, Retry-After, Set-Cookie. */
function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; retryAfter?: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ...(res.headers['retry-after'] === undefined ? {} : { retryAfter: res.headers['retry-after'] }),
          setCookie: res.headers['set-cookie'] ?? [],
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a gateway started after Redis was flushed, before the session service rebuilt it: 503 with Retry-After and the cookie kept (proxy and forward auth), the same cookie accepted once rebuilt', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const config = await clusterConfig(nats.url, redis.url, upstream.url);
  const port = Number(config.outpost.listen.http!.split(':').pop());
  const running: Array<{ stop(): Promise<void> }> = [];
  t.teardown(async () => {
    for (const p of running.reverse()) await p.stop();
  });
  const start = async (role: 'session' | 'gateway') => {
    const p = await startPortcullis({ config, roles: new Set([role]), logger: quietLogger() });
    running.push(p);
    return p;
  };
  const bus = await createNatsBus({ nats: config.cluster!.nats, name: 'test-appender', streamMaxAgeSeconds: null });
  t.teardown(() => bus.close());
  const reader = await createRedisStore({ redis: config.cluster!.redis });
  t.teardown(() => reader.close());

  const firstSession = await start('session');
  const cookies: Record<string, string> = {};
  let last = 0;
  for (const provider of ['app', 'fwd']) {
    const sessionId = `${provider}-alice`;
    last = await bus.log.append(createEvent('SessionStarted', { ...started(sessionId, 'alice'), provider }));
    cookies[provider] = `${sessionCookieName(provider)}=${signSessionCookie(COOKIE_SECRET, { sessionId, seq: last })}`;
  }
  t.ok(await reader.waitForApplied(last, 10_000), 'projected');
  // The session service is held back (down), and Redis loses everything; a gateway starts only now,
  // so it never saw the projection and cannot tell it was lost.
  await firstSession.stop();
  running.splice(running.indexOf(firstSession), 1);
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  await admin.flushall();
  await start('gateway');

  const asProxy = () => get(port, '/page', { host: 'app.localhost:9000', cookie: cookies.app! });
  const asForward = () => get(port, '/outpost.goauthentik.io/auth/nginx', { host: 'fwd.localhost:9000', 'x-original-url': 'http://fwd.localhost:9000/page', cookie: cookies.fwd! });
  for (const [mode, ask] of [['proxy mode', asProxy], ['forward auth', asForward]] as const) {
    const r = await ask();
    t.equal(r.status, 503, `${mode}: 503, not a login (the projection is empty, the log holds the session)`);
    t.equal(r.retryAfter, '5', `${mode}: Retry-After`);
    t.same(r.setCookie, [], `${mode}: the cookie is kept`);
  }

  // The session service comes back and rebuilds the projection from the log (503 while it does).
  await start('session');
  let proxied = await asProxy();
  for (const deadline = Date.now() + 30_000; proxied.status === 503 && Date.now() < deadline; proxied = await asProxy()) {
    t.same(proxied.setCookie, [], 'a 503 meanwhile keeps the cookie');
    await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(proxied.status, 200, 'proxy mode: the same cookie is accepted (the upstream answered)');
  t.same(proxied.setCookie, [], 'and kept');
  t.equal((await asForward()).status, 200, 'forward auth: the same cookie is accepted');
});
