// The shape of a bench run's results, shared by the scenarios and the report writers.
import type { ContentionAssessment } from './contention.ts';
import type { TargetResult } from './load.ts';

/** One A/B comparison: a baseline and the subjects measured against it in the same run. */
export interface Comparison {
  name: string;
  baseline: string;
  targets: TargetResult[];
  /** Measured at a fixed offered rate (its CPU per request depends on the rate: no quiet reference). */
  paced?: boolean;
}

/** A target from the issue and whether this run met it. */
export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  met: boolean;
  /** Name of the comparison this target is judged from, so a contended baseline can flag it. */
  comparison?: string;
  /** Set when that comparison's baseline ran on a contended machine: the target's verdict is no evidence either way. */
  contended?: string;
  /** Set when the rounds' own ratios fall on both sides of the target: met or not, it is on the line. */
  onTheLine?: boolean;
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
  profiles: Array<{
    name: string;
    /** Slug of its flame graph file (`<report>-flame-<slug>.svg` next to the report), when one was drawn. */
    flame?: string;
    samplesMs: number;
    top: Array<{ fn: string; where: string; selfPct: number }>;
    byArea: Array<{ area: string; selfPct: number }>;
  }>;
  failures: Array<{ scenario: number; error: string }>;
  /** Each comparison's baseline against the quiet reference of this machine kind (bench/quiet-reference.json). */
  contention?: ContentionAssessment;
}
