// The metrics listener's health paths: /ping always 204 (authentik's), /ready with every dependency, /ready?scope=listeners without them.
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { type Readiness, type ReadinessScope, startMetricsServer } from './metrics-server.ts';

t.test('/ready asks about everything, /ready?scope=listeners only about the process\'s own listeners; /ping answers 204 either way', async (t) => {
  const asked: ReadinessScope[] = [];
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: new Registry(),
    readiness: async (scope): Promise<Readiness> => {
      asked.push(scope);
      // Listening, but Redis is down: not ready for traffic, yet nothing a restart would fix.
      return scope === 'listeners' ? { ready: true, checks: { gateway: 'listening' } } : { ready: false, checks: { gateway: 'listening', redis: 'unreachable' } };
    },
  });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const all = await fetch(`${base}/ready`);
  t.equal(all.status, 503);
  t.same(await all.json(), { status: 'not ready', gateway: 'listening', redis: 'unreachable' });
  const listeners = await fetch(`${base}/ready?scope=listeners`);
  t.equal(listeners.status, 200);
  t.same(await listeners.json(), { status: 'ready', gateway: 'listening' });
  t.same(asked, ['all', 'listeners']);

  const unknown = await fetch(`${base}/ready?scope=everything`);
  t.equal(unknown.status, 400, 'a mistyped scope is refused, not read as "all" or "listeners"');
  t.match(await unknown.text(), /scope "everything" .* \/ready or \/ready\?scope=listeners/);

  t.equal((await fetch(`${base}/outpost.goauthentik.io/ping`)).status, 204, "authentik's ping stays 204");
});
