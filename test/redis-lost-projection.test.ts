// Redis restarted without persistence under a running session service: the projection is rebuilt from the log, reads fail closed meanwhile.
import { createNatsBus } from '@portcullis/bus';
import { startPortcullis } from '@portcullis/cli';
import { loadConfig } from '@portcullis/config';
import { createEvent, type SessionStartedData } from '@portcullis/events';
import { type SessionRecord, createRedisStore } from '@portcullis/store';
import { createLogger } from '@portcullis/telemetry';
import { getFreePort, startNatsServer, startRedisServer } from '@portcullis/testkit';
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

async function clusterConfig(natsUrl: string, redisUrl: string) {
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
    internal_host: http://127.0.0.1:1
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: lost-projection-cookie-secret-0123456789
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
