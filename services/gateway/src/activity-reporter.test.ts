// Session activity reports: batching, merging, retry after a failed report, the bound, and which requests count as a use.
import { createMemoryBus } from '@portcullis/bus';
import { AUTH_SUBJECTS, type ActivityReport, type HeaderAuthRequest, SESSION_SUBJECTS, createEvent } from '@portcullis/events';
import { headerAuthSessionId, sessionCookieName, signSessionCookie } from '@portcullis/protocol';
import { createSessionService } from '@portcullis/session';
import { createMemoryStore } from '@portcullis/store';
import t from 'tap';
import { activityIntervalMs } from '@portcullis/config';
import { ActivityReporter } from './activity-reporter.ts';
import { GatewayHandler } from './gateway-handler.ts';
import type { IncomingRequest } from './request-context.ts';
import { SECRET, providerYaml, testConfig } from './test-support.ts';

type Entry = ActivityReport['entries'][number];

/** A memory bus whose activity subject records every report; `fail` makes the next n reports fail. */
function activityServer(t: import('tap').Test, opts: { serve?: boolean } = {}) {
  const bus = createMemoryBus();
  const reports: Entry[][] = [];
  const state = { fail: 0 };
  const serve = () =>
    bus.rpc.serve(SESSION_SUBJECTS.activity, async (payload) => {
      if (state.fail > 0) {
        state.fail -= 1;
        throw new Error('session service briefly away');
      }
      reports.push((payload as ActivityReport).entries);
      return { recorded: (payload as ActivityReport).entries.length };
    });
  if (opts.serve !== false) serve();
  t.teardown(() => bus.close());
  return { bus, reports, state, serve };
}

function logs() {
  const warnings: Array<{ obj: object; msg: string }> = [];
  return { warnings, log: { warn: (obj: object, msg: string) => warnings.push({ obj, msg }) } };
}

const sorted = (entries: Entry[]) => [...entries].sort((a, b) => a.sessionId.localeCompare(b.sessionId));

t.test('activityIntervalMs: min(15 s, smallest idle_timeout / 5); null without idle timeouts', async (t) => {
  t.equal(activityIntervalMs([]), null);
  t.equal(activityIntervalMs([{ idle_timeout: null }]), null);
  t.equal(activityIntervalMs([{ idle_timeout: null }, { idle_timeout: 3600 }]), 15_000);
  t.equal(activityIntervalMs([{ idle_timeout: 600 }, { idle_timeout: 20 }]), 4_000);
  t.equal(activityIntervalMs([{ idle_timeout: 10 }]), 2_000);
});

t.test('a flush sends one batch with each session once, at its latest use', async (t) => {
  const { bus, reports } = activityServer(t);
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }] });
  r.touch({ sessionId: 'a', provider: 'app' }, 1000);
  r.touch({ sessionId: 'b', provider: 'other' }, 1100);
  r.touch({ sessionId: 'a', provider: 'app' }, 1500);
  r.touch({ sessionId: 'a', provider: 'app' }, 1200);
  t.equal(r.pending, 2);
  await r.flush();
  t.equal(reports.length, 1);
  t.same(sorted(reports[0]!), [
    { sessionId: 'a', provider: 'app', at: 1500 },
    { sessionId: 'b', provider: 'other', at: 1100 },
  ]);
  t.equal(r.pending, 0);
  await r.flush();
  t.equal(reports.length, 1, 'nothing pending → no request');
});

t.test('large batches are split into requests of batchSize entries', async (t) => {
  const { bus, reports } = activityServer(t);
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], batchSize: 2 });
  for (const id of ['a', 'b', 'c', 'd', 'e']) r.touch({ sessionId: id, provider: 'app' }, 1000);
  await r.flush();
  t.same(
    reports.map((e) => e.length),
    [2, 2, 1],
  );
});

t.test('a failed report keeps its entries, merged with later uses (latest wins), and sends them next time', async (t) => {
  const { bus, reports, state } = activityServer(t);
  const { warnings, log } = logs();
  const flushes: Array<[number, boolean]> = [];
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], log, onFlush: (n, ok) => flushes.push([n, ok]) });
  r.touch({ sessionId: 'a', provider: 'app' }, 1000);
  r.touch({ sessionId: 'b', provider: 'app' }, 1000);
  state.fail = 1;
  await r.flush();
  t.equal(reports.length, 0);
  t.equal(r.pending, 2, 'kept');
  t.match(warnings[0]?.msg, /activity report failed; kept/);
  r.touch({ sessionId: 'a', provider: 'app' }, 3000);
  r.touch({ sessionId: 'c', provider: 'app' }, 2000);
  await r.flush();
  t.equal(reports.length, 1);
  t.same(sorted(reports[0]!), [
    { sessionId: 'a', provider: 'app', at: 3000 },
    { sessionId: 'b', provider: 'app', at: 1000 },
    { sessionId: 'c', provider: 'app', at: 2000 },
  ]);
  t.same(flushes, [
    [0, false],
    [3, true],
  ]);
});

t.test('an older use touched after a failed report does not overwrite the newer kept one', async (t) => {
  const { bus, reports, state } = activityServer(t);
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }] });
  r.touch({ sessionId: 'a', provider: 'app' }, 5000);
  state.fail = 1;
  await r.flush();
  r.touch({ sessionId: 'a', provider: 'app' }, 4000);
  await r.flush();
  t.same(reports, [[{ sessionId: 'a', provider: 'app', at: 5000 }]]);
});

t.test('with no session service at all, reports wait until one serves', async (t) => {
  const { bus, reports, serve } = activityServer(t, { serve: false });
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], batchSize: 1 });
  r.touch({ sessionId: 'a', provider: 'app' }, 1000);
  r.touch({ sessionId: 'b', provider: 'app' }, 1000);
  await r.flush();
  t.equal(r.pending, 2, 'the failed chunk and the ones not tried are kept');
  serve();
  await r.flush();
  t.same(
    reports.flat().map((e) => e.sessionId),
    ['a', 'b'],
  );
});

t.test('the pending map is bounded: while the service fails, the oldest entries are dropped with a warning', async (t) => {
  const { bus, reports, state } = activityServer(t);
  const { warnings, log } = logs();
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], maxPending: 3, log });
  for (const id of ['a', 'b', 'c']) r.touch({ sessionId: id, provider: 'app' }, 1000);
  state.fail = 1;
  await r.flush();
  t.equal(r.pending, 3);
  r.touch({ sessionId: 'd', provider: 'app' }, 2000);
  r.touch({ sessionId: 'e', provider: 'app' }, 2000);
  t.equal(r.pending, 3, 'still bounded');
  await r.flush();
  t.same(
    reports.flat().map((e) => e.sessionId),
    ['c', 'd', 'e'],
    'the two oldest were dropped',
  );
  t.ok(warnings.some((w) => /activity dropped/.test(w.msg) && (w.obj as { dropped: number }).dropped === 2));
});

t.test('the pending map is bounded: a full map is reported early when the service answers', async (t) => {
  const { bus, reports } = activityServer(t);
  const { warnings, log } = logs();
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], maxPending: 2, log });
  for (const id of ['a', 'b', 'c']) r.touch({ sessionId: id, provider: 'app' }, 1000);
  await r.flush();
  t.same(
    reports.map((e) => e.map((x) => x.sessionId)),
    [['a', 'b'], ['c']],
  );
  t.equal(warnings.length, 0, 'nothing dropped');
});

t.test('started, it reports on its interval; stop sends what is left once', async (t) => {
  const { bus, reports } = activityServer(t);
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 60 }], flushMs: 20 });
  r.start();
  r.touch({ sessionId: 'a', provider: 'app' }, 1000);
  const until = Date.now() + 10_000;
  while (reports.length === 0 && Date.now() < until) await new Promise((res) => setTimeout(res, 10));
  t.same(reports, [[{ sessionId: 'a', provider: 'app', at: 1000 }]], 'sent without an explicit flush');
  r.touch({ sessionId: 'b', provider: 'app' }, 2000);
  await r.stop();
  t.same(reports.at(-1), [{ sessionId: 'b', provider: 'app', at: 2000 }]);
  t.equal(r.pending, 0);
});

t.test('configure recomputes the interval from the new providers', async (t) => {
  const { bus } = activityServer(t);
  const r = new ActivityReporter({ rpc: bus.rpc, providers: [{ idle_timeout: 3600 }] });
  t.equal(r.flushMs, 15_000);
  r.start();
  t.teardown(() => r.stop());
  r.configure([{ idle_timeout: 3600 }, { idle_timeout: 30 }]);
  t.equal(r.flushMs, 6_000);
  r.configure([{ idle_timeout: null }]);
  t.equal(r.flushMs, 15_000);
});

// ---- the gateway touches the reporter where it accepts a request with a session ------------------

t.test('the gateway reports every use of a session, cookie or header, whatever its provider\'s idle timeout, and nothing else', async (t) => {
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'idle', mode: 'forward_single', external_host: 'https://idle.company', idle_timeout: '60' })}
${providerYaml({ name: 'plain', mode: 'forward_single', external_host: 'https://plain.company', client_id: 'client-p' })}
${providerYaml({ name: 'proxied', mode: 'proxy', external_host: 'https://proxied.company', internal_host: 'http://127.0.0.1:1', client_id: 'client-x', idle_timeout: '120' })}
`);
  const bus = createMemoryBus();
  const store = createMemoryStore();
  const session = createSessionService({ log: bus.log, store });
  await session.start();
  const reports: Entry[][] = [];
  bus.rpc.serve(SESSION_SUBJECTS.activity, async (payload) => {
    reports.push((payload as ActivityReport).entries);
    return {};
  });
  const begin = async (sessionId: string, provider: string) => {
    const now = Date.now();
    return bus.log.append(
      createEvent('SessionStarted', {
        sessionId,
        provider,
        issuer: 'http://127.0.0.1:1/',
        sub: `${sessionId}-sub`,
        sid: null,
        claims: { sub: `${sessionId}-sub` },
        accessToken: 'at',
        idToken: null,
        jwksUri: '',
        createdAt: now,
        expiresAt: now + 3_600_000,
      }),
    );
  };
  // The auth service's header check, reduced to "every Bearer token is valid": it records the session like the real one.
  bus.rpc.serve(AUTH_SUBJECTS.headerAuth, async (payload) => {
    const req = payload as HeaderAuthRequest;
    return { ok: true, seq: await begin(req.sessionId, req.provider) };
  });
  const reporter = new ActivityReporter({ rpc: bus.rpc, providers: config.providers });
  const handler = new GatewayHandler({
    config,
    rpc: bus.rpc,
    store,
    version: 'portcullis/test',
    waitForRevocation: async () => 'propagated',
    log: { warn: () => {}, error: () => {} },
    activity: reporter,
  });
  t.teardown(async () => {
    await reporter.stop();
    await session.stop();
    await store.close();
  });
  t.equal(reporter.flushMs, 12_000, 'configured by the handler from its config (120 s / 5 vs 60 s / 5 → 12 s)');
  const cookieFor = async (sessionId: string, provider: string, clientId: string) => {
    const seq = await begin(sessionId, provider);
    await store.waitForApplied(seq, 1000);
    return `${sessionCookieName(clientId)}=${signSessionCookie(SECRET, { sessionId, seq })}`;
  };
  const nginx = (host: string, headers: Record<string, string> = {}): IncomingRequest => ({
    method: 'GET',
    url: '/outpost.goauthentik.io/auth/nginx',
    headers: { host, 'x-original-uri': '/page', ...headers },
    peer: '127.0.0.1',
    encrypted: false,
  });

  const idleCookie = await cookieFor('s-idle', 'idle', 'client-a');
  const plainCookie = await cookieFor('s-plain', 'plain', 'client-p');
  const before = Date.now();
  t.equal(((await handler.handle(nginx('idle.company', { cookie: idleCookie }))) as { status: number }).status, 200);
  t.equal(((await handler.handle(nginx('plain.company', { cookie: plainCookie }))) as { status: number }).status, 200);
  t.equal(((await handler.handle(nginx('idle.company'))) as { status: number }).status, 401, 'no session: not a use');
  const bearer = await handler.handle(nginx('idle.company', { authorization: 'Bearer machine-token' }));
  t.equal((bearer as { status: number }).status, 200, 'header authentication');
  const proxiedCookie = await cookieFor('s-proxied', 'proxied', 'client-x');
  const proxied = await handler.handle({ method: 'GET', url: '/x', headers: { host: 'proxied.company', cookie: proxiedCookie }, peer: '127.0.0.1', encrypted: false });
  t.equal(proxied.kind, 'proxy', 'proxy mode');

  t.equal(reporter.pending, 4);
  await reporter.flush();
  const headerSession = headerAuthSessionId('idle', config.providers[0]!.issuer, 'Bearer machine-token');
  const got = sorted(reports.flat());
  t.same(
    got.map((e) => [e.sessionId, e.provider]),
    sorted([
      { sessionId: 's-idle', provider: 'idle', at: 0 },
      { sessionId: 's-plain', provider: 'plain', at: 0 },
      { sessionId: headerSession, provider: 'idle', at: 0 },
      { sessionId: 's-proxied', provider: 'proxied', at: 0 },
    ]).map((e) => [e.sessionId, e.provider]),
    'the plain provider (no idle_timeout yet: a reload may set one) is reported too; the unauthenticated request is not',
  );
  for (const e of got) t.ok(e.at >= before && e.at <= Date.now(), 'stamped with the request time');
});
