// Load generation with autocannon: warm-up, then measured runs of the baseline and the subjects alternated (A/B/A/B) to cancel drift.
import autocannon from 'autocannon';
import { runPaced } from './paced-load.ts';
import { type GcTotals, STEAL_CONTENDED, type ThreadCpu, cpuSeconds, gcTotals, minorFaults, processTree, threadCpuSeconds, withSteal } from './processes.ts';

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
  /** Also record the CPU of `pid`'s main thread apart from its other threads (a Node process: V8's GC and compiler helpers, libuv's pool). */
  threads?: boolean;
  /** Metrics port of a Portcullis process at `pid`: its garbage collection over each run is recorded (prom-client's GC histogram). */
  metricsPort?: number;
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
  /**
   * Share of the host's CPU time during the run that the hypervisor gave to other guests (steal, from
   * /proc/stat; NaN when unknown). Steal comes in bursts that pause every process here at once.
   */
  steal?: number;
  /** With `LoadTarget.threads`: the CPU per answered request of the main thread and of the other threads, µs. */
  threads?: { mainUs: number; helpersUs: number };
  /**
   * Minor page faults of the target's process (with its children) per answered request: memory the
   * kernel had to map (and zero) for it, e.g. a malloc heap given back and grown again.
   */
  faults?: number;
  /** With `LoadTarget.metricsPort`: GC pause time per answered request (µs of the main thread's wall time), collections per 1 000 requests, and how many of those were full (mark-compact). */
  gc?: { us: number; per1k: number; fullPer1k: number };
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
  /** Medians over the runs of each run's CPU split by thread and GC (when every run has them). */
  threads?: RunResult['threads'];
  faults?: number;
  gc?: RunResult['gc'];
  /** Runs of rounds measured again because a run of the round had more than STEAL_CONTENDED steal (kept for the record, not summarized). */
  stolen?: RunResult[];
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

/**
 * One run as the settings say: paced at `s.rate`, or saturated with autocannon; with the steal over
 * it and, where the target asks, where its process spent the CPU (threads, GC). Those readings are
 * taken just outside the run's own CPU window, so scraping the metrics is not counted in its CPU.
 */
async function runLoad(t: LoadTarget, seconds: number, s: LoadSettings): Promise<RunResult> {
  const gcBefore = t.metricsPort === undefined ? null : await gcTotals(t.metricsPort);
  const pids = t.pid === undefined ? [] : processTree(t.pid);
  const faults = () => pids.reduce((a, pid) => a + minorFaults(pid), 0);
  const faultsBefore = faults();
  const threadsBefore = t.threads && t.pid !== undefined ? threadCpuSeconds(t.pid) : null;
  const { result, steal } = await withSteal(() => (s.rate === undefined ? runOnce(t, seconds, s.connections) : runPaced(t, seconds, s.connections, s.rate)));
  const threadsAfter = threadsBefore && t.pid !== undefined ? threadCpuSeconds(t.pid) : null;
  const faultsAfter = faults();
  const gcAfter = gcBefore && t.metricsPort !== undefined ? await gcTotals(t.metricsPort) : null;
  return {
    ...result,
    steal,
    ...(pids.length > 0 && result.requests > 0 && faultsAfter >= faultsBefore ? { faults: (faultsAfter - faultsBefore) / result.requests } : {}),
    ...cpuBreakdown(result.requests, threadsBefore, threadsAfter, gcBefore, gcAfter),
  };
}

/** The `threads` and `gc` fields of a run from readings before and after it (each left out when a reading is missing or went backwards). */
export function cpuBreakdown(requests: number, tb: ThreadCpu | null, ta: ThreadCpu | null, gb: GcTotals | null, ga: GcTotals | null): Pick<RunResult, 'threads' | 'gc'> {
  const out: Pick<RunResult, 'threads' | 'gc'> = {};
  if (requests <= 0) return out;
  const perRequest = (before: number, after: number) => ((after - before) * 1e6) / requests;
  // A helper thread that ended during the run takes its CPU time with it: no split then.
  if (tb && ta && ta.main >= tb.main && ta.helpers >= tb.helpers) out.threads = { mainUs: perRequest(tb.main, ta.main), helpersUs: perRequest(tb.helpers, ta.helpers) };
  if (gb && ga && ga.count >= gb.count) out.gc = { us: perRequest(gb.seconds, ga.seconds), per1k: ((ga.count - gb.count) * 1000) / requests, fullPer1k: ((ga.fullCount - gb.fullCount) * 1000) / requests };
  return out;
}

/** The run's log line: throughput, latency, CPU and what it was made of, steal, errors. */
export function describeRun(label: string, run: RunResult): string {
  const parts = [`${Math.round(run.rps)} req/s`, `p50 ${run.latency.p50} ms`, `p99 ${run.latency.p99} ms`];
  if (Number.isFinite(run.cpuUs)) {
    const split = run.threads ? ` (main thread ${run.threads.mainUs.toFixed(1)}, other threads ${run.threads.helpersUs.toFixed(1)}${run.gc ? `; GC pauses ${run.gc.us.toFixed(1)} µs, ${run.gc.per1k.toFixed(1)} per 1 000 requests, ${run.gc.fullPer1k.toFixed(1)} full` : ''})` : '';
    parts.push(`CPU ${run.cpuUs.toFixed(1)} µs/req${split}`);
  }
  if (run.faults !== undefined) parts.push(`${run.faults.toFixed(2)} page faults/req`);
  if ((run.steal ?? 0) >= 0.001) parts.push(`steal ${(run.steal! * 100).toFixed(1)} %`);
  if (run.errors) parts.push(`${run.errors} errors`);
  return `${label}: ${parts.join(', ')}`;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Rounds of a comparison that may be measured again because the hypervisor stole more than
 * STEAL_CONTENDED of the cores' time during one of their runs, per measured round asked for.
 */
export const STOLEN_RETRIES_PER_ROUND = 2;

/**
 * Warms every target up, then runs `rounds` rounds; each round measures every target once, in an
 * order that alternates (A B C, then C B A, ...) so a drift of the machine hits each side alike.
 * A round during which the hypervisor stole more than STEAL_CONTENDED of the cores' time in any of
 * its runs is measured again (its runs kept as `stolen`), up to STOLEN_RETRIES_PER_ROUND × rounds
 * times; past that the stolen round is kept, and the contention check flags the comparison.
 * `runLoad` is the measurement (replaced in tests).
 */
export async function compare(
  targets: LoadTarget[],
  s: LoadSettings,
  log: (msg: string) => void,
  runLoadFn: (t: LoadTarget, seconds: number, s: LoadSettings) => Promise<RunResult> = runLoad,
): Promise<TargetResult[]> {
  for (const t of targets) {
    const w = await runLoadFn(t, s.warmup, s);
    if (w.requests === 0) throw new Error(`warm-up of ${t.label} (${t.url}) got no ${t.expectStatus} answer (errors: ${w.errors})`);
  }
  const runs = new Map<string, RunResult[]>(targets.map((t) => [t.label, []]));
  const stolen = new Map<string, RunResult[]>(targets.map((t) => [t.label, []]));
  let retries = STOLEN_RETRIES_PER_ROUND * s.rounds;
  for (let r = 0; r < s.rounds; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    const round = new Map<string, RunResult>();
    for (const t of order) {
      const run = await runLoadFn(t, s.duration, s);
      round.set(t.label, run);
      log(`    ${describeRun(t.label, run)}`);
    }
    const worst = Math.max(...[...round.values()].map((x) => (Number.isFinite(x.steal) ? x.steal! : 0)));
    if (worst > STEAL_CONTENDED && retries > 0) {
      retries--;
      log(`    (the hypervisor took ${(worst * 100).toFixed(1)} % of the cores' time in that round: measuring it again)`);
      for (const [label, run] of round) stolen.get(label)!.push(run);
      r--;
      continue;
    }
    for (const [label, run] of round) runs.get(label)!.push(run);
  }
  return targets.map((t) => {
    const result = summarize(t.label, runs.get(t.label)!);
    const lost = stolen.get(t.label)!;
    return lost.length > 0 ? { ...result, stolen: lost } : result;
  });
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
    ...(runs.length > 0 && runs.every((r) => r.threads) ? { threads: { mainUs: median(runs.map((r) => r.threads!.mainUs)), helpersUs: median(runs.map((r) => r.threads!.helpersUs)) } } : {}),
    ...(runs.length > 0 && runs.every((r) => r.faults !== undefined) ? { faults: median(runs.map((r) => r.faults!)) } : {}),
    ...(runs.length > 0 && runs.every((r) => r.gc) ? { gc: { us: median(runs.map((r) => r.gc!.us)), per1k: median(runs.map((r) => r.gc!.per1k)), fullPer1k: median(runs.map((r) => r.gc!.fullPer1k)) } } : {}),
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

/** A throughput ratio's test for a "≥ line" target (for {@link roundsStraddle}). */
export const atLeast = (line: number) => (ratio: number) => ratio >= line;

/**
 * Whether the rounds' own throughput ratios fall on both sides of a target (`holds` says whether one
 * ratio meets it): the verdict of the mean could then have gone either way in another run.
 */
export function roundsStraddle(subject: TargetResult, baseline: TargetResult, holds: (ratio: number) => boolean): boolean {
  const rounds = roundRatios(subject, baseline).filter((r) => Number.isFinite(r));
  return rounds.some(holds) && !rounds.every(holds);
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
