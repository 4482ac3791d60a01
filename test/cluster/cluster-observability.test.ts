// Observability of a real cluster: one login is one trace across gateway, auth and session processes;
// a sign-out shows the revocation applied on every gateway; metrics move with the traffic.
import { type ReceivedSpan, loginThroughIdp, startOtlpReceiver } from '@portcullis/testkit';
import t from 'tap';
import { ALICE, startCluster } from './cluster-harness.ts';

async function eventually<T>(read: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = read();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Value of a counter/histogram-count sample summed over label sets, from Prometheus text. */
function sample(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith('{') || rest.startsWith(' '))) continue;
    if (labelFilter && !line.includes(labelFilter)) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

t.test('cluster observability', async (t) => {
  const rx = await startOtlpReceiver();
  t.teardown(() => rx.close());
  const c = await startCluster({
    gateway: 3,
    auth: 1,
    session: 1,
    env: (m) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      // Half the processes export protobuf (the default), half JSON: both protocols must work.
      OTEL_EXPORTER_OTLP_PROTOCOL: m.index % 2 === 0 ? 'http/protobuf' : 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    }),
  });
  t.teardown(() => c.close());
  const scrape = async (i: number) => (await fetch(`http://127.0.0.1:${c.members[i]!.metrics}/metrics`)).text();
  const gatewayIdx = c.members.findIndex((m) => m.role === 'gateway');
  const authIdx = c.members.findIndex((m) => m.role === 'auth');
  const sessionIdx = c.members.findIndex((m) => m.role === 'session');
  const before = { gw: await scrape(gatewayIdx), auth: await scrape(authIdx), session: await scrape(sessionIdx) };

  const jar = c.newJar();
  await loginThroughIdp(c.browserOn(0, jar), `${c.app}/traced`, ALICE);

  t.test('one login is one trace through gateway → auth → IdP → JetStream → session', async (t) => {
    const callback = await eventually(() => rx.spans.find((s) => s.name === 'auth.callback'), 'the auth.callback span');
    const trace = await eventually(() => {
      const spans = rx.spans.filter((s) => s.traceId === callback.traceId);
      return spans.some((s) => s.service === 'portcullis-session' && s.name === 'jetstream.deliver') ? spans : undefined;
    }, "the session service's projection in the login trace");
    const services = new Set(trace.map((s) => s.service));
    t.same([...services].sort(), ['portcullis-auth', 'portcullis-gateway', 'portcullis-session'], 'spans from all three services');
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const roots = trace.filter((s) => !s.parentSpanId);
    t.equal(roots.length, 1, 'exactly one root');
    t.equal(roots[0]?.service, 'portcullis-gateway', "the root is the gateway's server span");
    t.same(
      trace.filter((s) => s.parentSpanId && !byId.has(s.parentSpanId)).map((s) => `${s.service}:${s.name}`),
      [],
      'every parent link points inside the trace',
    );
    const ancestors = (s: ReceivedSpan): string[] => {
      const out: string[] = [];
      for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) out.push(p.name);
      return out;
    };
    const append = trace.find((s) => s.name === 'jetstream.append');
    t.ok(append && ancestors(append).includes('auth.callback'), 'the JetStream append happens inside auth.callback');
    const projection = trace.find((s) => s.service === 'portcullis-session' && s.name === 'jetstream.deliver')!;
    t.equal(projection.parentSpanId, append?.spanId, "the session service's delivery is a child of the append");
    const idpCalls = trace.filter((s) => s.service === 'portcullis-auth' && s.kind === 3 /* client */ && ancestors(s).includes('auth.callback'));
    t.ok(idpCalls.length >= 2, `token exchange and userinfo are client spans under auth.callback (${idpCalls.map((s) => s.name).join(', ')})`);
    for (const s of trace) {
      for (const [k, v] of Object.entries(s.attributes)) {
        if (typeof v === 'string') t.notMatch(v, /authentik_proxy_|access-token|Bearer |[?&](code|state)=(?!REDACTED)/, `no secret in ${s.name} ${k}`);
      }
    }
  });

  t.test('a sign-out trace shows the revocation applied on every gateway replica', async (t) => {
    const out = await c.browserOn(1, jar).request(`${c.app}/outpost.goauthentik.io/sign_out`);
    t.equal(out.status, 302);
    const signOut = await eventually(() => rx.spans.find((s) => s.name === 'auth.sign_out'), 'the auth.sign_out span');
    const applied = await eventually(() => {
      const pids = new Set(
        rx.spans
          .filter((s) => s.traceId === signOut.traceId && s.service === 'portcullis-gateway' && s.name === 'gateway.apply_event')
          .map((s) => s.resource['process.pid']),
      );
      return pids.size >= 3 ? pids : undefined;
    }, 'apply spans from all three gateways');
    t.equal(applied.size, 3, 'three gateway processes applied the UserSignedOut in the sign-out trace');
    const barrier = rx.spans.filter((s) => s.traceId === signOut.traceId && s.name === 'nats.serve portcullis.gateway.barrier');
    t.ok(barrier.length >= 3, `every gateway answered the barrier inside the trace (${barrier.length})`);
  });

  t.test('both OTLP protocols reached the receiver', async (t) => {
    t.ok(rx.contentTypes.some((ct) => ct.includes('protobuf')), 'http/protobuf');
    t.ok(rx.contentTypes.some((ct) => ct.includes('json')), 'http/json');
  });

  t.test('log lines carry trace_id and span_id', async (t) => {
    const authLines = c.members[authIdx]!.output().split('\n').filter((l) => l.includes('auth request answered'));
    t.ok(authLines.length > 0);
    t.ok(
      authLines.some((l) => /"trace_id":"[0-9a-f]{32}"/.test(l) && /"span_id":"[0-9a-f]{16}"/.test(l)),
      'auth logs name the trace',
    );
  });

  t.test('metrics move with the traffic', async (t) => {
    const after = { gw: await scrape(gatewayIdx), auth: await scrape(authIdx), session: await scrape(sessionIdx) };
    const grew = (which: keyof typeof before, name: string, filter = '') => sample(after[which], name, filter) > sample(before[which], name, filter);
    t.ok(grew('auth', 'portcullis_events_appended_total', 'SessionStarted'), 'auth appended a SessionStarted');
    t.ok(grew('session', 'portcullis_events_projected_total', 'SessionStarted'), 'the session service projected it');
    t.ok(grew('gw', 'authentik_outpost_proxy_request_duration_seconds_count'), 'gateway requests were timed');
    t.ok(grew('gw', 'portcullis_auth_decisions_total'), 'gateway decisions counted');
    t.equal(sample(after.gw, 'portcullis_nats_connected'), 1, 'the gateway reports NATS connected');
    t.equal(sample(after.gw, 'portcullis_session_cache_trusted'), 1, 'the cache is trusted');
    const signOuts = await Promise.all(c.members.map((m, i) => (m.role === 'gateway' ? scrape(i) : Promise.resolve(''))));
    t.ok(
      signOuts.some((text) => sample(text, 'portcullis_signout_propagation_seconds_count') > 0),
      'the sign-out propagation was observed on the gateway that served it',
    );
  });

  t.test('readiness: ready while NATS and Redis answer; not ready, naming Redis, once it is gone', async (t) => {
    for (const m of c.members) {
      const r = await fetch(`http://127.0.0.1:${m.metrics}/ready`);
      t.equal(r.status, 200, `${m.role}[${m.index}] ready`);
      t.match(await r.json(), { status: 'ready', nats: 'connected', redis: 'ok' });
    }
    const g = await fetch(`http://127.0.0.1:${c.members[gatewayIdx]!.metrics}/ready`);
    t.match(await g.json(), { session_cache: 'trusted' }, 'the gateway reports its cache state');
    await c.redis.stop();
    const r = await fetch(`http://127.0.0.1:${c.members[gatewayIdx]!.metrics}/ready`);
    t.equal(r.status, 503);
    t.match(await r.json(), { status: 'not ready', redis: 'unreachable' });
    const live = await fetch(`http://127.0.0.1:${c.members[gatewayIdx]!.metrics}/outpost.goauthentik.io/ping`);
    t.equal(live.status, 204, 'liveness stays up: the process is fine, a dependency is not');
  });
});
