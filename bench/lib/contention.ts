// Marks a bench run "contended" when the hypervisor stole more than 2 % of the cores in a run, or a baseline needed far more CPU per request than in a recorded quiet run on the same machine kind.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { STEAL_CONTENDED } from './processes.ts';
import type { BenchReport } from './report-types.ts';

/**
 * A baseline may need this much more CPU per request than in the quiet run before its comparison
 * counts as contended. Same-run quiet figures of one bare server differ by ~10 % between scenarios
 * (16.0 and 17.8 µs); a host busy with other guests showed 1.7–2.8× (the cores themselves slow down,
 * so same-run ratios move by ±15 % between rounds).
 */
export const CONTENDED_FACTOR = 1.3;

/** Saturated baselines of a quiet run on one machine kind: CPU µs and req/s per comparison name. */
export interface QuietReference {
  /** `machineKind()` of the machine the run was on. */
  machine: string;
  /** The run these figures come from (its date), and who said it was quiet. */
  source: string;
  /** Per comparison: its baseline's label, CPU µs and req/s, and the run they come from (when recorded by the bench). */
  baselines: Record<string, { label: string; cpuUs: number; rps: number; run?: string }>;
}

/** The committed file: one reference per machine kind. */
export interface QuietReferenceFile {
  about: string;
  references: QuietReference[];
}

/** How steady one comparison's baseline was against its quiet figure. */
export interface ComparisonSteadiness {
  comparison: string;
  baseline: string;
  quietCpuUs: number;
  /** The baseline's CPU µs per request in each measured round. */
  roundsCpuUs: number[];
  /** Largest round figure ÷ quiet figure. */
  worst: number;
  contended: boolean;
}

/** The steal of one comparison's rounds: the worst run of any of its targets. */
export interface ComparisonSteal {
  comparison: string;
  /** Largest share of the host's CPU time given to other guests during one kept run (NaN: not measured). */
  worst: number;
  /** Rounds measured again because of steal (their runs are not in the figures). */
  remeasured: number;
  contended: boolean;
}

/** A whole run's verdict, written into the report. */
export interface ContentionAssessment {
  machine: string;
  /** Where the quiet figures came from; undefined when none is recorded for this machine kind. */
  source?: string;
  comparisons: ComparisonSteadiness[];
  /** Every comparison's worst steal (judged with or without a quiet reference). */
  steal: ComparisonSteal[];
  contended: boolean;
  /** Why the run is contended, one line per cause (a scenario's own flag, steal, a baseline's CPU); empty when it is not. */
  reasons: string[];
}

/**
 * CPU model, generation and core count: what a quiet reference is recorded for. A virtual machine's
 * model name is often generic (`AMD EPYC`, `Intel(R) Xeon(R) Processor`) and hides the generation,
 * which changes CPU per request by tens of percent, so the family and model numbers of /proc/cpuinfo
 * are part of the kind where the system has them.
 */
export function machineKind(): string {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: the model name alone.
  }
  return machineKindOf(cpus()[0]?.model ?? 'unknown', cpus().length, cpuinfo);
}

/** {@link machineKind} from its parts: `Model (family F, model M) × N`, or `Model × N` without /proc/cpuinfo's numbers. */
export function machineKindOf(model: string, cores: number, cpuinfo: string): string {
  const family = /^cpu family\s*:\s*(\d+)/m.exec(cpuinfo)?.[1];
  const number = /^model\s*:\s*(\d+)/m.exec(cpuinfo)?.[1];
  const generation = family !== undefined && number !== undefined ? ` (family ${family}, model ${number})` : '';
  return `${model.trim()}${generation} × ${cores}`;
}

const ABOUT =
  'Saturated baselines of bench runs taken when the host was quiet, per machine kind (CPU model, family and model number × cores); each the lowest CPU per request recorded. A later run whose baseline needs more than ' +
  `${CONTENDED_FACTOR}× this CPU per request in any round is marked contended. Written by \`npm run bench -- --record-quiet-reference\`; see bench/README.md.`;

/** Reads the reference file; a missing file is no reference, a malformed one an error naming the file. */
export function readQuietReferences(file: string): QuietReferenceFile {
  if (!existsSync(file)) return { about: ABOUT, references: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); fix it or delete it to run without a quiet reference`);
  }
  const refs = (parsed as QuietReferenceFile | null)?.references;
  const valid =
    Array.isArray(refs) &&
    refs.every(
      (r) =>
        typeof r?.machine === 'string' &&
        typeof r.source === 'string' &&
        typeof r.baselines === 'object' &&
        r.baselines !== null &&
        Object.values(r.baselines).every((b) => typeof b?.label === 'string' && b.cpuUs > 0 && b.rps > 0),
    );
  if (!valid) throw new Error(`${file} does not hold { references: [{ machine, source, baselines: { <comparison>: { label, cpuUs > 0, rps > 0 } } }] }; fix it or delete it`);
  return parsed as QuietReferenceFile;
}

/**
 * Judges every comparison: contended when a run of any of its targets had more than STEAL_CONTENDED
 * steal, or (where this machine kind has a quiet figure for it) when its baseline's CPU per request in
 * any round exceeds CONTENDED_FACTOR × the quiet figure. Flags the targets judged from a contended
 * comparison (their `contended` says why); returns the assessment.
 */
export function assessContention(report: BenchReport, refs: QuietReferenceFile, machine: string): ContentionAssessment {
  const ref = refs.references.find((r) => r.machine === machine);
  const out: ContentionAssessment = { machine, comparisons: [], steal: [], contended: false, reasons: [], ...(ref ? { source: ref.source } : {}) };
  // A scenario may have flagged a target itself (a host stall seen in its own baseline or steal).
  for (const s of report.scenarios) {
    for (const t of s.targets) {
      if (t.contended) out.reasons.push(`scenario ${s.id}, ${t.what}: ${t.contended}`);
    }
  }
  if (out.reasons.length > 0) out.contended = true;
  /** Comparisons flagged below (steal, CPU), for their paced siblings. */
  const flagged = new Set<string>();
  const flag: FlagComparison = (s, comparison, why) => {
    out.contended = true;
    flagged.add(comparison);
    for (const t of s.targets) {
      if (t.comparison === comparison) t.contended = t.contended ? `${t.contended}; ${why}` : why;
    }
  };
  for (const s of report.scenarios) {
    for (const c of s.comparisons) {
      const steals = c.targets.flatMap((t) => t.runs.map((r) => r.steal ?? Number.NaN));
      const measured = steals.filter(Number.isFinite);
      const worst = measured.length > 0 ? Math.max(...measured) : Number.NaN;
      const contended = worst > STEAL_CONTENDED;
      const remeasured = Math.max(0, ...c.targets.map((t) => t.stolen?.length ?? 0));
      out.steal.push({ comparison: c.name, worst, remeasured, contended });
      if (contended) {
        flag(s, c.name, `the hypervisor took ${(worst * 100).toFixed(1)} % of the cores' time in a round (steal)`);
        out.reasons.push(`${c.name}: steal ${(worst * 100).toFixed(1)} % in a run (above ${STEAL_CONTENDED * 100} %)`);
      }
    }
  }
  if (ref) assessCpu(report, ref, out, flag);
  flagPacedSiblings(report, out, flagged, flag);
  return out;
}

/** Marks a comparison of a scenario contended, and its targets with why. */
type FlagComparison = (s: BenchReport['scenarios'][number], comparison: string, why: string) => void;

/**
 * A paced comparison has no CPU reference of its own (its CPU per request depends on the rate), so it
 * is judged by the saturated comparisons of its scenario, measured in the minutes around it: when one of
 * them ran on a contended host, the paced one counts as contended too. Seen on the AMD kind: the bare
 * server at 1.43× its quiet CPU in the saturated rounds, then a paced p99 of 5.84 ms for Portcullis
 * while the paced bare server's own 3.39 ms still met the target (its own check could not tell).
 */
function flagPacedSiblings(
  report: BenchReport,
  out: ContentionAssessment,
  flagged: ReadonlySet<string>,
  flag: FlagComparison,
): void {
  for (const s of report.scenarios) {
    const contendedSibling = s.comparisons.find((c) => !c.paced && flagged.has(c.name));
    if (!contendedSibling) continue;
    for (const c of s.comparisons) {
      if (!c.paced || flagged.has(c.name)) continue;
      flag(s, c.name, `measured next to ${contendedSibling.name}, which ran on a contended host`);
      out.reasons.push(`${c.name}: measured next to ${contendedSibling.name}, which was contended (a paced run has no CPU reference of its own)`);
    }
  }
}

/** The CPU-factor check of {@link assessContention}: every saturated baseline against this kind's quiet figure. */
function assessCpu(
  report: BenchReport,
  ref: QuietReference,
  out: ContentionAssessment,
  flag: FlagComparison,
): void {
  for (const s of report.scenarios) {
    for (const c of s.comparisons) {
      const quiet = ref.baselines[c.name];
      const base = c.targets.find((t) => t.label === c.baseline);
      if (!quiet || !base) continue;
      const roundsCpuUs = base.runs.map((r) => r.cpuUs);
      // A round whose CPU was not measured (NaN) cannot vouch for the machine: count it as contended.
      const worst = roundsCpuUs.reduce((w, us) => Math.max(w, Number.isFinite(us) ? us / quiet.cpuUs : Number.POSITIVE_INFINITY), 0);
      const contended = worst > CONTENDED_FACTOR;
      out.comparisons.push({ comparison: c.name, baseline: c.baseline, quietCpuUs: quiet.cpuUs, roundsCpuUs, worst, contended });
      if (contended) {
        flag(s, c.name, `${c.baseline} needed ${worst.toFixed(1)}× its quiet CPU per request`);
        out.reasons.push(`${c.name}: ${c.baseline} needed ${worst.toFixed(2)}× its quiet CPU per request (above ${CONTENDED_FACTOR}×)`);
      }
    }
  }
}

/**
 * Records this run's saturated baselines in the quiet reference of its machine kind (other kinds are
 * kept). Where the kind already has a figure for a comparison, the lower CPU per request stays: the
 * quietest run seen is the reference, and a busier run that still passed the check does not loosen it.
 * Only comparisons without a fixed rate are recorded: a paced baseline's CPU per request depends on the rate.
 */
export function recordQuietReference(report: BenchReport, refs: QuietReferenceFile, machine: string, file: string): QuietReference {
  const previous = refs.references.find((r) => r.machine === machine);
  // A figure entered by hand (no run of its own) is attributed to its entry's source.
  const baselines: QuietReference['baselines'] = {};
  for (const [name, b] of Object.entries(previous?.baselines ?? {})) baselines[name] = { ...b, run: b.run ?? previous!.source };
  const run = `bench run of ${report.date}`;
  for (const s of report.scenarios) {
    for (const c of s.comparisons) {
      if (c.paced) continue;
      const base = c.targets.find((t) => t.label === c.baseline);
      if (!base || !Number.isFinite(base.cpuUs) || base.cpuUs <= 0) continue;
      const kept = baselines[c.name];
      if (kept && kept.cpuUs <= round1(base.cpuUs)) continue;
      baselines[c.name] = { label: base.label, cpuUs: round1(base.cpuUs), rps: Math.round(base.rps), run };
    }
  }
  if (Object.keys(baselines).length === 0) throw new Error('this run measured no saturated baseline with its CPU; nothing to record as the quiet reference');
  const runs = [...new Set(Object.values(baselines).map((b) => b.run ?? run))];
  const ref: QuietReference = {
    machine,
    source: runs.length === 1 && runs[0] === run ? `${run}, recorded with --record-quiet-reference` : `lowest CPU per request of each baseline over: ${runs.join('; ')} (recorded with --record-quiet-reference)`,
    baselines,
  };
  const next: QuietReferenceFile = { about: ABOUT, references: [...refs.references.filter((r) => r.machine !== machine), ref] };
  writeFileSync(file, `${JSON.stringify(next, null, 2)}\n`);
  return ref;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * `--wait-quiet`: a probe must find its baseline within this factor of the quiet figure before a run
 * starts; stricter than CONTENDED_FACTOR, as the run that follows takes ten minutes.
 */
export const QUIET_PROBE_FACTOR = 1.15;

/** What `waitForQuiet` needs: a probe of the baseline's CPU per request, its quiet figure, and a clock. */
export interface QuietWait {
  /** Measures the baseline now: its CPU µs per request, and the steal during the probe (NaN: unknown). */
  probe(): Promise<{ cpuUs: number; steal: number }>;
  quietCpuUs: number;
  /** Gives up after this time (ms since the epoch). */
  until: number;
  /** Between probes. */
  intervalMs: number;
  log(msg: string): void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Probes until the baseline needs at most QUIET_PROBE_FACTOR × its quiet CPU per request with no more
 * than STEAL_CONTENDED steal (true), or until `until` has passed (false). Each probe is logged with its factor.
 */
export async function waitForQuiet(w: QuietWait): Promise<boolean> {
  const now = w.now ?? Date.now;
  const sleep = w.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (;;) {
    const { cpuUs: us, steal } = await w.probe();
    const factor = us / w.quietCpuUs;
    const stalled = steal > STEAL_CONTENDED;
    const quiet = Number.isFinite(factor) && factor <= QUIET_PROBE_FACTOR && !stalled;
    const stealText = Number.isFinite(steal) ? `, steal ${(steal * 100).toFixed(1)} %${stalled ? ` (above ${STEAL_CONTENDED * 100} %)` : ''}` : '';
    w.log(`  probe: the bare server needed ${us.toFixed(1)} µs per request, ${factor.toFixed(2)}× its quiet ${w.quietCpuUs} µs (quiet at ≤ ${QUIET_PROBE_FACTOR}×)${stealText}${quiet ? ': quiet' : ''}`);
    if (quiet) return true;
    if (now() + w.intervalMs > w.until) return false;
    await sleep(w.intervalMs);
  }
}
