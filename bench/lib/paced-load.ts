// Open-loop load at a fixed rate over N keep-alive connections, latency counted from each request's scheduled time (autocannon's rate sends each second's quota in one burst).
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type LoadTarget, PERCENTILES, type PercentileKey, type RunResult } from './load.ts';
import { cpuSeconds, processTree } from './processes.ts';

/** The quantile of each percentile key (max is the largest sample). */
const QUANTILES: Record<PercentileKey, number> = { p1: 0.01, p10: 0.1, p25: 0.25, p50: 0.5, p75: 0.75, p90: 0.9, p97_5: 0.975, p99: 0.99, p99_9: 0.999, max: 1 };
const HEAD_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('0\r\n\r\n');

/**
 * One keep-alive connection with at most one request in flight: the request is written from bytes
 * built once, and the answer is framed by its Content-Length (or the end of an empty chunked body) —
 * a client this small costs the shared machine a few µs per request, where undici's cost ~25 µs and
 * its event-loop stalls showed up in the percentiles being measured.
 */
class PacedConnection {
  readonly #socket: Socket;
  readonly #request: Buffer;
  #pending: Buffer = Buffer.alloc(0);
  #scheduled = 0;
  #done: ((status: number) => void) | null = null;

  constructor(socket: Socket, request: Buffer) {
    this.#socket = socket;
    this.#request = request;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => this.#finish(0));
    socket.on('close', () => this.#finish(0));
  }

  get scheduled(): number {
    return this.#scheduled;
  }

  send(scheduled: number, done: (status: number) => void): void {
    this.#scheduled = scheduled;
    this.#done = done;
    this.#socket.write(this.#request);
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const headEnd = this.#pending.indexOf(HEAD_END);
    if (headEnd < 0) return;
    const head = this.#pending.subarray(0, headEnd).toString('latin1');
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const bodyStart = headEnd + HEAD_END.length;
    let end: number;
    if (length) end = bodyStart + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const last = this.#pending.indexOf(CHUNKED_END, bodyStart);
      if (last < 0) return;
      end = last + CHUNKED_END.length;
    } else end = bodyStart;
    if (this.#pending.length < end) return;
    this.#pending = this.#pending.subarray(end);
    this.#finish(status);
  }

  #finish(status: number): void {
    const done = this.#done;
    this.#done = null;
    done?.(status);
  }
}

function openConnection(url: URL, request: Buffer): Promise<PacedConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port || 80), url.hostname, () => resolve(new PacedConnection(socket, request)));
    socket.once('error', reject);
  });
}

/**
 * Sends `rate` GET requests per second to `t` for `seconds`, each at its own scheduled instant
 * (checked every millisecond), over `connections` keep-alive connections with one request in flight
 * each. A request due while every connection is busy waits for the next free one, and that wait counts
 * in its latency: the percentiles are what a client of a server under this offered load would see,
 * queueing included. The scheduler's 1 ms tick adds up to 1 ms to a request, to every target alike.
 */
export async function runPaced(t: LoadTarget, seconds: number, connections: number, rate: number): Promise<RunResult> {
  const url = new URL(t.url);
  const headers = { host: url.host, ...t.headers };
  const request = Buffer.from(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`,
    'latin1',
  );
  const conns = await Promise.all(Array.from({ length: connections }, () => openConnection(url, request)));
  const idle = [...conns];
  const waiting: number[] = [];
  const latencies = new Float64Array(Math.max(1, Math.round(seconds * rate)));
  const total = latencies.length;
  const interval = 1000 / rate;
  const pids = t.pid === undefined ? [] : processTree(t.pid);
  const cpu = () => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const cpuBefore = cpu();
  let ok = 0;
  let errors = 0;
  let sent = 0;
  let finished = 0;
  const start = performance.now();
  let end = start;
  await new Promise<void>((resolve) => {
    const fire = (conn: PacedConnection, scheduled: number): void => {
      conn.send(scheduled, (status) => {
        if (status === t.expectStatus) latencies[ok++] = performance.now() - scheduled;
        else errors++;
        finished++;
        if (finished === total) {
          end = performance.now();
          resolve();
          return;
        }
        if (status === 0) return; // the connection is gone: its share goes to the others
        const next = waiting.shift();
        if (next !== undefined) fire(conn, next);
        else idle.push(conn);
      });
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      for (; sent < due; sent++) {
        const scheduled = start + sent * interval;
        const conn = idle.pop();
        if (conn) fire(conn, scheduled);
        else waiting.push(scheduled);
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
    // Connections that all died would leave requests never answered: the run ends with what it has.
    setTimeout(() => {
      errors += total - finished;
      end = performance.now();
      resolve();
    }, seconds * 3000 + 10_000).unref();
  });
  for (const c of conns) c.close();
  const sorted = latencies.subarray(0, ok).sort();
  const latency = {} as Record<PercentileKey, number>;
  for (const k of PERCENTILES) {
    const i = Math.min(ok - 1, Math.max(0, Math.ceil(QUANTILES[k] * ok) - 1));
    latency[k] = ok > 0 ? Math.round(sorted[i]! * 100) / 100 : Number.NaN;
  }
  const cpuUs = pids.length > 0 && ok > 0 ? ((cpu() - cpuBefore) * 1e6) / ok : Number.NaN;
  return { rps: ok / ((end - start) / 1000), latency, requests: ok, errors, cpuUs };
}
