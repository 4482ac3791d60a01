// Load generation with autocannon: warm-up, then measured runs of the baseline and the subjects alternated (A/B/A/B) to cancel drift.
import autocannon from 'autocannon';
import { runPaced } from './paced-load.ts';
import { cpuSeconds, processTree } from './processes.ts';

/** One thing to put load on. */
export interface LoadTarget {
  /** Short label, e.g. "bare node:http" or "portcullis". */
  label: string;
  url: string;
  headers?: Record<string, string>;
  /** Status every answer must have (others are counted as errors of the run). */
  expectStatus: number;
  /**
   * The process serving it (with its children, e.g. nginx's workers): its CPU time per answered
   * request is recorded with each run. On a shared machine it drifts far less than req/s.
   */
  pid?: number;
}

/** Percentiles kept per run (ms), in the order charts draw them. */
export const PERCENTILES = ['p1', 'p10', 'p25', 'p50', 'p75', 'p90', 'p97_5', 'p99', 'p99_9', 'max'] as const;
export type PercentileKey = (typeof PERCENTILES)[number];

/** One measured run. */
export interface RunResult {
  rps: number;
  latency: Record<PercentileKey, number>;
  requests: number;
  /** Answers with another status than expected, plus connection errors and timeouts. */
  errors: number;
  /** Server CPU (user + system) per answered request, µs; NaN when the target names no process. */
  cpuUs: number;
}

/** A target's measured runs and their summary. */
export interface TargetResult {
  label: string;
  runs: RunResult[];
  /** Mean req/s over the runs. */
  rps: number;
  /** Median over the runs of each run's percentile (ms). */
  latency: Record<PercentileKey, number>;
  errors: number;
  /** Median over the runs of the server CPU per answered request, µs (NaN: not measured). */
  cpuUs: number;
}

/** Durations and connections of a comparison. */
export interface LoadSettings {
  duration: number;
  warmup: number;
  rounds: number;
  connections: number;
  /**
   * Offered load in req/s over all connections, sent open-loop at evenly spaced instants (`runPaced`);
   * unset: autocannon, each connection sending its next request as soon as the last is answered.
   */
  rate?: number;
}

/** Runs autocannon once against `t` for `seconds`, every connection sending as soon as it is answered. */
export async function runOnce(t: LoadTarget, seconds: number, connections: number): Promise<RunResult> {
  const pids = t.pid === undefined ? [] : processTree(t.pid);
  const cpu = () => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const cpuBefore = cpu();
  const result = await autocannon({
    url: t.url,
    connections,
    duration: seconds,
    pipelining: 1,
    ...(t.headers ? { headers: t.headers } : {}),
    expectBody: undefined,
  });
  const codes = result.statusCodeStats ?? {};
  const wrong = Object.entries(codes).reduce((n, [code, s]) => (Number(code) === t.expectStatus ? n : n + (s.count ?? 0)), 0);
  const latency = {} as Record<PercentileKey, number>;
  for (const k of PERCENTILES) latency[k] = Number((result.latency as unknown as Record<string, number>)[k] ?? Number.NaN);
  const ok = Object.entries(codes).reduce((n, [code, s]) => (Number(code) === t.expectStatus ? n + (s.count ?? 0) : n), 0);
  const cpuUs = pids.length > 0 && ok > 0 ? ((cpu() - cpuBefore) * 1e6) / ok : Number.NaN;
  return { rps: ok / result.duration, latency, requests: ok, errors: wrong + result.errors + result.timeouts, cpuUs };
}

/** One run as the settings say: paced at `s.rate`, or saturated with autocannon. */
function runLoad(t: LoadTarget, seconds: number, s: LoadSettings): Promise<RunResult> {
  return s.rate === undefined ? runOnce(t, seconds, s.connections) : runPaced(t, seconds, s.connections, s.rate);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Warms every target up, then runs `rounds` rounds; each round measures every target once, in an
 * order that alternates (A B C, then C B A, ...) so a drift of the machine hits each side alike.
 */
export async function compare(targets: LoadTarget[], s: LoadSettings, log: (msg: string) => void): Promise<TargetResult[]> {
  for (const t of targets) {
    const w = await runLoad(t, s.warmup, s);
    if (w.requests === 0) throw new Error(`warm-up of ${t.label} (${t.url}) got no ${t.expectStatus} answer (errors: ${w.errors})`);
  }
  const runs = new Map<string, RunResult[]>(targets.map((t) => [t.label, []]));
  for (let r = 0; r < s.rounds; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const run = await runLoad(t, s.duration, s);
      runs.get(t.label)!.push(run);
      log(`    ${t.label}: ${Math.round(run.rps)} req/s, p50 ${run.latency.p50} ms, p99 ${run.latency.p99} ms${Number.isFinite(run.cpuUs) ? `, CPU ${run.cpuUs.toFixed(1)} µs/req` : ''}${run.errors ? `, ${run.errors} errors` : ''}`);
    }
  }
  return targets.map((t) => summarize(t.label, runs.get(t.label)!));
}

/** Mean throughput and median percentiles of a target's runs. */
export function summarize(label: string, runs: RunResult[]): TargetResult {
  const latency = {} as Record<PercentileKey, number>;
  for (const k of PERCENTILES) latency[k] = Math.round(median(runs.map((r) => r.latency[k])) * 100) / 100;
  return {
    label,
    runs,
    rps: runs.reduce((a, r) => a + r.rps, 0) / runs.length,
    latency,
    errors: runs.reduce((a, r) => a + r.errors, 0),
    cpuUs: median(runs.map((r) => r.cpuUs)),
  };
}

/** `subject / baseline` throughput. */
export function ratio(subject: TargetResult, baseline: TargetResult): number {
  return subject.rps / baseline.rps;
}

/**
 * The throughput ratio of each round (subject and baseline run back to back in it): how far the
 * machine's drift moved the ratio, shown next to the mean so a result on the line reads as such.
 */
export function roundRatios(subject: TargetResult, baseline: TargetResult): number[] {
  return subject.runs.map((run, i) => run.rps / (baseline.runs[i]?.rps ?? Number.NaN));
}

/** `0.77 (rounds 0.74–0.80)`: a throughput ratio and the range of its rounds' ratios. */
export function ratioWithRounds(subject: TargetResult, baseline: TargetResult, format: (n: number) => string): string {
  const rounds = roundRatios(subject, baseline);
  const main = format(ratio(subject, baseline));
  if (rounds.length < 2) return main;
  return `${main} (rounds ${format(Math.min(...rounds))}–${format(Math.max(...rounds))})`;
}

/**
 * `baseline / subject` CPU per request: the throughput ratio the two would have if each had a core
 * of its own (NaN when either was not measured).
 */
export function cpuRatio(subject: TargetResult, baseline: TargetResult): number {
  return baseline.cpuUs / subject.cpuUs;
}
