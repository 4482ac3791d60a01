// The cached-label fast paths of the per-request metrics export exactly what prom-client's own paths export, through resets and removals.
import { Counter, Histogram, Registry } from 'prom-client';
import t from 'tap';
import { createMetrics, withCachedCounterLabels, withCachedLabels } from './metrics.ts';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Two registries with the same metrics: one plain prom-client, one with the fast paths. */
function pair() {
  const make = (fast: boolean) => {
    const registry = new Registry();
    const h = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['outpost_name', 'method', 'host', 'type'], buckets: BUCKETS, registers: [registry] });
    const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['provider', 'outcome'], registers: [registry] });
    return { registry, h: fast ? withCachedLabels(h) : h, c: fast ? withCachedCounterLabels(c) : c };
  };
  return { plain: make(false), fast: make(true) };
}

/** A deterministic pseudo-random sequence (the same for both registries). */
function* sequence(n: number, seed: number): Generator<number> {
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield x / 2 ** 31;
  }
}

const METHODS = ['GET', 'POST', 'HEAD'];
const HOSTS = ['app.company', 'fwd.company:8443', 'unknown'];

t.test('histogram and counter: same export as prom-client for the same observations', async (t) => {
  const { plain, fast } = pair();
  const feed = (n: number, seed: number) => {
    const r = sequence(n * 4, seed);
    for (let i = 0; i < n; i++) {
      const labels = {
        outpost_name: 'outpost',
        method: METHODS[Math.floor(r.next().value! * METHODS.length)]!,
        host: HOSTS[Math.floor(r.next().value! * HOSTS.length)]!,
        type: r.next().value! < 0.1 ? 'ping' : 'app',
      };
      // Values on, between, below and above the bucket bounds.
      const pick = r.next().value!;
      const value = pick < 0.2 ? BUCKETS[Math.floor(pick * 5 * BUCKETS.length)]! : pick < 0.25 ? 20 : pick < 0.3 ? 0 : pick * 0.2;
      for (const m of [plain, fast]) {
        // A fresh object each time, as the call sites build them.
        m.h.observe({ ...labels }, value);
        m.c.inc({ provider: labels.host, outcome: labels.type });
        if (i % 7 === 0) m.c.inc({ provider: labels.host, outcome: 'batch' }, 3);
      }
    }
  };
  feed(5000, 42);
  t.equal(await fast.registry.metrics(), await plain.registry.metrics(), 'after the first observations');
  t.ok((await fast.registry.metrics()).includes('h_seconds_bucket{le="0.0005",outpost_name="outpost"'), 'sanity: buckets exported');

  for (const m of [plain, fast]) m.registry.resetMetrics();
  feed(2000, 7);
  t.equal(await fast.registry.metrics(), await plain.registry.metrics(), 'after resetMetrics()');

  for (const m of [plain, fast]) {
    m.h.remove({ outpost_name: 'outpost', method: 'GET', host: 'app.company', type: 'app' });
    m.c.remove({ provider: 'unknown', outcome: 'app' });
  }
  feed(2000, 9);
  t.equal(await fast.registry.metrics(), await plain.registry.metrics(), 'after remove()');
  t.same(await fast.registry.getMetricsAsJSON(), await plain.registry.getMetricsAsJSON(), 'JSON export too');
});

t.test('invalid input still fails as prom-client does', async (t) => {
  const { fast } = pair();
  fast.h.observe({ outpost_name: 'o', method: 'GET', host: 'h', type: 'app' }, 0.1);
  t.throws(() => fast.h.observe({ outpost_name: 'o', method: 'GET', host: 'h', type: 'app' }, Number.NaN), /not a valid number/);
  t.throws(() => fast.h.observe({ nope: 'x' } as never, 0.1), /label/i);
  fast.c.inc({ provider: 'p', outcome: 'o' });
  t.throws(() => fast.c.inc({ provider: 'p', outcome: 'o' }, -1), /decrease/);
  t.throws(() => fast.c.inc({ provider: 'p', outcome: 'o' }, Number.POSITIVE_INFINITY), /not a valid number/);
});

t.test('createMetrics wires the fast paths into the per-request metrics', async (t) => {
  const m = createMetrics({ outpostName: 'o', version: 'v', collectDefaults: false });
  for (let i = 0; i < 3; i++) {
    m.requestDuration.observe({ outpost_name: 'o', method: 'GET', host: 'app', type: 'app' }, 0.002);
    m.upstreamDuration.observe({ outpost_name: 'o', method: 'GET', scheme: 'http', host: 'app', upstream_host: '127.0.0.1:1' }, 0.002);
    m.decisions.inc({ provider: 'app', outcome: 'authenticated' });
  }
  const text = await m.registry.metrics();
  t.match(text, /authentik_outpost_proxy_request_duration_seconds_count\{outpost_name="o",method="GET",host="app",type="app"\} 3/);
  t.match(text, /authentik_outpost_proxy_upstream_response_duration_seconds_bucket\{le="0.0025",outpost_name="o",method="GET",scheme="http",host="app",upstream_host="127.0.0.1:1"\} 3/);
  t.match(text, /portcullis_auth_decisions_total\{provider="app",outcome="authenticated"\} 3/);
});
