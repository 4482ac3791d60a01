// Tests for where a run's CPU went: main thread vs other threads, GC from the metrics text, page faults, and how the log and report show them.
import { createServer } from 'node:http';
import t from 'tap';
import { PERCENTILES, type PercentileKey, type RunResult, cpuBreakdown, describeRun, summarize } from './load.ts';
import { gcTotals, minorFaults, parseGcTotals, threadCpuSeconds } from './processes.ts';
import { renderCpuSplit } from './report.ts';

const METRICS = `# HELP nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.
# TYPE nodejs_gc_duration_seconds histogram
nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} 792
nodejs_gc_duration_seconds_bucket{le="+Inf",kind="minor"} 1295
nodejs_gc_duration_seconds_sum{kind="minor"} 1.5
nodejs_gc_duration_seconds_count{kind="minor"} 1295
nodejs_gc_duration_seconds_sum{kind="incremental"} 0.25
nodejs_gc_duration_seconds_count{kind="incremental"} 63
nodejs_gc_duration_seconds_sum{kind="major"} 0.5
nodejs_gc_duration_seconds_count{kind="major"} 2
nodejs_heap_size_used_bytes 35907760
`;

function run(extra: Partial<RunResult>): RunResult {
  const latency = Object.fromEntries(PERCENTILES.map((k) => [k, 1])) as Record<PercentileKey, number>;
  return { rps: 1000, latency, requests: 10_000, errors: 0, cpuUs: 30, ...extra };
}

t.test('GC totals add up every kind of collection from the metrics text', async (t) => {
  t.same(parseGcTotals(METRICS), { seconds: 2.25, count: 1360, fullCount: 65 }, 'full: major and incremental');
  t.equal(parseGcTotals('nodejs_heap_size_used_bytes 1\n'), null, 'no GC histogram: unknown, not zero');
  t.equal(parseGcTotals('nodejs_gc_duration_seconds_sum{kind="minor"} NaN\n'), null, 'a value that is no number: unknown');
});

t.test('GC totals are read from a live metrics listener, and a missing one is unknown', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') res.end(METRICS);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  t.teardown(() => server.close());
  t.same(await gcTotals(port), { seconds: 2.25, count: 1360, fullCount: 65 });
  server.close();
  await new Promise((r) => server.once('close', r));
  t.equal(await gcTotals(port), null);
});

t.test('this process: its threads and page faults are read from /proc', async (t) => {
  const before = threadCpuSeconds(process.pid);
  t.ok(before, 'readable');
  const faults = minorFaults(process.pid);
  t.ok(Number.isFinite(faults) && faults > 0, `minor faults so far: ${faults}`);
  // Busy the main thread until /proc charges it 0.1 s more (other threads, the test runner's loader
  // among them, may use CPU meanwhile: a fixed loop by the clock or by the process's CPU got its main
  // thread under 0.1 s on a loaded CI). Main-thread CPU read as another thread's never gets there.
  const giveUp = Date.now() + 60_000;
  let x = 0;
  let after = threadCpuSeconds(process.pid)!;
  while (after.main - before!.main < 0.1 && Date.now() < giveUp) {
    for (let i = 0; i < 100_000; i++) x += Math.sqrt(x + 1);
    after = threadCpuSeconds(process.pid)!;
  }
  t.ok(x > 0);
  t.ok(after.main - before!.main >= 0.1, `main thread gained ${(after.main - before!.main).toFixed(2)} s of CPU in a loop on it`);
  t.ok(after.helpers >= before!.helpers);
  t.equal(threadCpuSeconds(2 ** 22 + 12_345), null, 'no such process');
  t.ok(Number.isNaN(minorFaults(2 ** 22 + 12_345)));
});

t.test('a run breakdown is per answered request, and missing or backward readings leave it out', async (t) => {
  const b = cpuBreakdown(10_000, { main: 1, helpers: 0.5 }, { main: 1.3, helpers: 0.55 }, { seconds: 2, count: 100, fullCount: 4 }, { seconds: 2.02, count: 130, fullCount: 9 });
  t.equal(b.threads!.mainUs.toFixed(3), '30.000');
  t.equal(b.threads!.helpersUs.toFixed(3), '5.000');
  t.equal(b.gc!.us.toFixed(3), '2.000');
  t.equal(b.gc!.per1k, 3);
  t.equal(b.gc!.fullPer1k, 0.5);
  t.same(cpuBreakdown(10_000, null, { main: 1, helpers: 1 }, null, { seconds: 1, count: 1, fullCount: 0 }), {}, 'no reading before: nothing');
  t.same(cpuBreakdown(10_000, { main: 1, helpers: 2 }, { main: 2, helpers: 1 }, null, null), {}, 'a helper thread ended mid run: no split rather than a negative one');
  t.same(cpuBreakdown(10_000, null, null, { seconds: 5, count: 50, fullCount: 2 }, { seconds: 0.1, count: 3, fullCount: 0 }), {}, 'the process restarted mid run: no GC figure');
  t.same(cpuBreakdown(0, { main: 1, helpers: 1 }, { main: 2, helpers: 2 }, null, null), {}, 'no answered request: nothing per request');
});

t.test('the log line and the report name the split, the GC and the page faults', async (t) => {
  const line = describeRun('portcullis proxy', run({ threads: { mainUs: 41.25, helpersUs: 7 }, gc: { us: 3.04, per1k: 1.5, fullPer1k: 0.25 }, faults: 16.4, steal: 0.031 }));
  t.equal(
    line,
    'portcullis proxy: 1000 req/s, p50 1 ms, p99 1 ms, CPU 30.0 µs/req (main thread 41.3, other threads 7.0; GC pauses 3.0 µs, 1.5 per 1 000 requests, 0.3 full), 16.40 page faults/req, steal 3.1 %',
  );
  t.equal(describeRun('nginx', run({ faults: 0 })), 'nginx: 1000 req/s, p50 1 ms, p99 1 ms, CPU 30.0 µs/req, 0.00 page faults/req');
  const gateway = summarize('portcullis proxy', [
    run({ threads: { mainUs: 40, helpersUs: 6 }, gc: { us: 3, per1k: 1, fullPer1k: 0 }, faults: 16 }),
    run({ threads: { mainUs: 44, helpersUs: 8 }, gc: { us: 5, per1k: 2, fullPer1k: 1 }, faults: 18 }),
    run({ threads: { mainUs: 60, helpersUs: 9 }, gc: { us: 4, per1k: 3, fullPer1k: 2 }, faults: 20 }),
  ]);
  t.same(gateway.threads, { mainUs: 44, helpersUs: 8 }, 'medians');
  t.same(gateway.gc, { us: 4, per1k: 2, fullPer1k: 1 });
  t.equal(gateway.faults, 18);
  const partial = summarize('relay', [run({ threads: { mainUs: 1, helpersUs: 1 } }), run({})]);
  t.equal(partial.threads, undefined, 'a run without the split: no median of the others alone');
  t.same(renderCpuSplit([summarize('nginx', [run({})]), gateway]), [
    'Per request (median of runs): portcullis proxy: main thread 44.0 µs, other threads 8.0 µs, GC pauses 4.0 µs (2.0 collections per 1 000 requests, 1.0 of them full), 18.00 page faults.',
    '',
  ]);
  t.same(renderCpuSplit([summarize('nginx', [run({})])]), [], 'nothing recorded: no line');
});
