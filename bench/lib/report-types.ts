// The shape of a bench run's results, shared by the scenarios and the report writers.
import type { TargetResult } from './load.ts';

/** One A/B comparison: a baseline and the subjects measured against it in the same run. */
export interface Comparison {
  name: string;
  baseline: string;
  targets: TargetResult[];
}

/** A target from the issue and whether this run met it. */
export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

/** What one scenario reports. */
export interface ScenarioReport {
  id: number;
  title: string;
  comparisons: Comparison[];
  /** Named figures (latencies in ms, rates per second, bytes), in display order. */
  figures: Array<{ name: string; value: number | string; unit?: string }>;
  targets: TargetCheck[];
  notes: string[];
  /** Latency distributions that are not autocannon runs (e.g. sign-out propagation), in ms, per series. */
  distributions?: Array<{ label: string; percentiles: Record<string, number> }>;
}

/** The whole run. */
export interface BenchReport {
  date: string;
  quick: boolean;
  machine: Record<string, string>;
  settings: Record<string, number | string | boolean>;
  scenarios: ScenarioReport[];
  /** Top self-time functions of the CPU profiles, per profiled load. */
  profiles: Array<{ name: string; samplesMs: number; top: Array<{ fn: string; where: string; selfPct: number }>; byArea: Array<{ area: string; selfPct: number }> }>;
  failures: Array<{ scenario: number; error: string }>;
}
