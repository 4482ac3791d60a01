// Percentiles of a sample of numbers, with the same keys as the autocannon runs.
import { PERCENTILES } from './load.ts';

const FRACTIONS: Record<string, number> = { p1: 0.01, p10: 0.1, p25: 0.25, p50: 0.5, p75: 0.75, p90: 0.9, p97_5: 0.975, p99: 0.99, p99_9: 0.999, max: 1 };

/** Nearest-rank percentiles (p1 … p99.9, max) of `xs`; NaN for an empty sample. */
export function percentiles(xs: readonly number[]): Record<(typeof PERCENTILES)[number], number> {
  const sorted = [...xs].sort((a, b) => a - b);
  const out = {} as Record<(typeof PERCENTILES)[number], number>;
  for (const k of PERCENTILES) {
    const f = FRACTIONS[k]!;
    out[k] = sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(f * sorted.length) - 1))]!;
  }
  return out;
}
