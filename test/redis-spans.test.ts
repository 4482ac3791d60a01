// Redis client spans (ioredis instrumentation) never carry the tokens a projected session holds.
import type { RedisConfig } from '@portcullis/config';
import { createEvent } from '@portcullis/events';
import { startOtlpReceiver, startRedisServer } from '@portcullis/testkit';
import { startTracing, withSpan } from '@portcullis/telemetry';
import t from 'tap';

t.test('projecting a session into Redis puts none of its tokens in a span attribute', async (t) => {
  const rx = await startOtlpReceiver();
  t.teardown(() => rx.close());
  const server = await startRedisServer();
  t.teardown(() => server.stop());
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = rx.url;
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  const tracing = await startTracing('portcullis-test', '0.0.0');
  t.teardown(() => tracing.shutdown());
  // Imported after the SDK started, as in the real processes (the instrumentation patches ioredis on load).
  const { createRedisStore } = await import('@portcullis/store');
  const redis: RedisConfig = { url: server.url, key_prefix: 'spans:', tls: null, sentinels: null, sentinel_name: null, cluster_nodes: null, password: null };
  const store = await createRedisStore({ redis });
  t.teardown(() => store.close());

  const secrets = { accessToken: 'secret-access-token-a1b2', idToken: 'secret-id-token-c3d4', refreshToken: 'secret-sealed-refresh-e5f6' };
  const event = createEvent('SessionStarted', {
    sessionId: 'session-id-0001',
    provider: 'app',
    issuer: 'https://idp.test/',
    sub: 'alice',
    sid: null,
    claims: { email: 'alice@example.test' },
    ...secrets,
    jwksUri: 'https://idp.test/jwks',
    createdAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    keyId: 'k1',
    refreshAt: null,
  });
  // The session service applies each event inside its jetstream.deliver span.
  await withSpan('jetstream.deliver', {}, () => store.apply({ seq: 1, event }));
  await withSpan('read', {}, () => store.getLiveSession('session-id-0001'));
  await tracing.shutdown();

  const redisSpans = rx.spans.filter((s) => s.attributes['db.system.name'] === 'redis' || s.attributes['db.system'] === 'redis');
  t.ok(redisSpans.length >= 2, `Redis commands are traced (${redisSpans.map((s) => s.name).join(', ')})`);
  for (const s of redisSpans) {
    for (const [k, v] of Object.entries(s.attributes)) {
      if (typeof v === 'string') t.notMatch(v, /secret-|session-id-0001/, `no token or session id in ${s.name} ${k}`);
    }
  }
});
