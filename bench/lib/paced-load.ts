// Open-loop load at a fixed rate over N keep-alive connections, latency counted from each request's scheduled time (autocannon's rate sends each second's quota in one burst).
import { performance } from 'node:perf_hooks';
import { Client } from 'undici';
import { type LoadTarget, PERCENTILES, type PercentileKey, type RunResult } from './load.ts';
import { cpuSeconds, processTree } from './processes.ts';

/** The quantile of each percentile key (max is the largest sample). */
const QUANTILES: Record<PercentileKey, number> = { p1: 0.01, p10: 0.1, p25: 0.25, p50: 0.5, p75: 0.75, p90: 0.9, p97_5: 0.975, p99: 0.99, p99_9: 0.999, max: 1 };

/**
 * Sends `rate` requests per second to `t` for `seconds`, each at its own scheduled instant (checked
 * every millisecond), over `connections` keep-alive connections with one request in flight each. A
 * request due while every connection is busy waits for the next free one, and that wait counts in its
 * latency: the percentiles are what a client of a server with this offered load would see, queueing
 * included. The scheduler's 1 ms tick adds up to 1 ms to a request, to every target alike.
 */
export async function runPaced(t: LoadTarget, seconds: number, connections: number, rate: number): Promise<RunResult> {
  const url = new URL(t.url);
  const path = `${url.pathname}${url.search}`;
  const clients = Array.from({ length: connections }, () => new Client(url.origin, { pipelining: 1, keepAliveTimeout: 60_000 }));
  const idle = [...clients];
  const waiting: number[] = [];
  const latencies: number[] = [];
  const total = Math.max(1, Math.round(seconds * rate));
  const interval = 1000 / rate;
  const pids = t.pid === undefined ? [] : processTree(t.pid);
  const cpu = () => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const cpuBefore = cpu();
  let errors = 0;
  let sent = 0;
  let finished = 0;
  const start = performance.now();
  let end = start;
  await new Promise<void>((resolve) => {
    const fire = (client: Client, scheduled: number): void => {
      client
        .request({ method: 'GET', path, ...(t.headers ? { headers: t.headers } : {}) })
        .then(
          async (res) => {
            await res.body.dump();
            if (res.statusCode === t.expectStatus) latencies.push(performance.now() - scheduled);
            else errors++;
          },
          () => {
            errors++;
          },
        )
        .finally(() => {
          finished++;
          const next = waiting.shift();
          if (next !== undefined) fire(client, next);
          else idle.push(client);
          if (finished === total) {
            end = performance.now();
            resolve();
          }
        });
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      for (; sent < due; sent++) {
        const scheduled = start + sent * interval;
        const client = idle.pop();
        if (client) fire(client, scheduled);
        else waiting.push(scheduled);
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(clients.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  const latency = {} as Record<PercentileKey, number>;
  for (const k of PERCENTILES) {
    const i = Math.min(latencies.length - 1, Math.max(0, Math.ceil(QUANTILES[k] * latencies.length) - 1));
    latency[k] = latencies.length > 0 ? Math.round(latencies[i]! * 100) / 100 : Number.NaN;
  }
  const ok = latencies.length;
  const cpuUs = pids.length > 0 && ok > 0 ? ((cpu() - cpuBefore) * 1e6) / ok : Number.NaN;
  return { rps: ok / ((end - start) / 1000), latency, requests: ok, errors, cpuUs };
}
