// Tests for the contended-host check: judging baselines against the quiet reference, recording one, and what the report writes.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CONTENDED_FACTOR, QUIET_PROBE_FACTOR, type QuietReferenceFile, assessContention, machineKindOf, readQuietReferences, recordQuietReference, waitForQuiet } from './contention.ts';
import { type LoadTarget, PERCENTILES, type PercentileKey, type RunResult, compare, summarize } from './load.ts';
import { renderMarkdown, summaryKeptBecause, verdict, writeReport } from './report.ts';
import type { BenchReport } from './report-types.ts';
import { SATURATED_COMPARISONS, pacedLatencyTarget } from '../scenarios/http-decisions.ts';
import { hostTicks, stealShare } from './processes.ts';

const MACHINE = 'Test CPU × 2';

function run(rps: number, cpuUs: number): RunResult {
  const latency = Object.fromEntries(PERCENTILES.map((k) => [k, 1])) as Record<PercentileKey, number>;
  return { rps, latency, requests: rps * 10, errors: 0, cpuUs };
}

/** A run with scenario 1 (saturated + paced) and scenario 3, the baselines' CPU per round as given. */
function report(fwdBareCpu: number[], noSessionBareCpu: number[]): BenchReport {
  const bare = (cpu: number[]) => summarize('bare node:http', cpu.map((us) => run(50_000, us)));
  const subject = (label: string) => summarize(label, [run(41_000, 20), run(41_000, 20)]);
  return {
    date: '2026-11-28T12:00:00.000Z',
    quick: false,
    machine: { cpu: MACHINE },
    settings: {},
    scenarios: [
      {
        id: 1,
        title: 'Forward-auth decision',
        comparisons: [
          { name: 'fwd, saturated', baseline: 'bare node:http', targets: [bare(fwdBareCpu), subject('portcullis')] },
          { name: 'fwd, paced', baseline: 'bare node:http', targets: [bare([40, 40]), subject('portcullis')], paced: true },
        ],
        figures: [],
        targets: [
          { what: 'throughput vs bare', target: '≥ 0.80', measured: '0.82', met: true, comparison: 'fwd, saturated' },
          { what: 'paced p99', target: '≤ 5 ms', measured: '3 ms', met: true, comparison: 'fwd, paced' },
        ],
        notes: [],
      },
      {
        id: 3,
        title: 'Redirect',
        comparisons: [{ name: 'no session', baseline: 'bare node:http', targets: [bare(noSessionBareCpu), subject('redirect')] }],
        figures: [],
        targets: [{ what: 'redirect vs bare', target: '≥ 0.80', measured: '0.79', met: false, comparison: 'no session' }],
        notes: [],
      },
    ],
    profiles: [],
    failures: [],
  };
}

const refs = (): QuietReferenceFile => ({
  about: 'test',
  references: [
    {
      machine: MACHINE,
      source: 'quiet test run',
      baselines: {
        'fwd, saturated': { label: 'bare node:http', cpuUs: 16, rps: 52_000 },
        'no session': { label: 'bare node:http', cpuUs: 18, rps: 50_000 },
      },
    },
  ],
});

t.test('baselines within the factor of their quiet figure: quiet, no target flagged', async (t) => {
  const r = report([16.5, 16 * CONTENDED_FACTOR], [17, 19]);
  const a = assessContention(r, refs(), MACHINE);
  t.equal(a.contended, false);
  t.strictSame(a.reasons, [], 'quiet: no reason given');
  t.equal(a.source, 'quiet test run');
  t.strictSame(
    a.comparisons.map((c) => [c.comparison, c.contended]),
    [
      ['fwd, saturated', false],
      ['no session', false],
    ],
    'the paced comparison has no reference and is not judged',
  );
  t.equal(a.comparisons[0]!.worst, CONTENDED_FACTOR, 'worst is the slowest round, exactly at the factor (not above it)');
  t.notOk(r.scenarios.some((s) => s.targets.some((x) => x.contended)));
});

t.test('one round above the factor makes that comparison contended and flags only its targets', async (t) => {
  // The mean of the rounds (16 and 24 → 20 µs, 1.25×) is inside the factor; the check is per round.
  const r = report([16, 24], [18, 18]);
  const a = assessContention(r, refs(), MACHINE);
  r.contention = a;
  t.equal(a.contended, true);
  t.strictSame(a.comparisons[0]!.roundsCpuUs, [16, 24]);
  t.equal(a.comparisons[0]!.worst, 1.5);
  t.equal(a.comparisons[1]!.contended, false);
  t.strictSame(
    a.reasons,
    [
      'fwd, saturated: bare node:http needed 1.50× its quiet CPU per request (above 1.3×)',
      'fwd, paced: measured next to fwd, saturated, which was contended (a paced run has no CPU reference of its own)',
    ],
    'the reason names the comparison and the factor; the paced sibling says why it is flagged',
  );
  const [fwd, paced] = r.scenarios[0]!.targets;
  t.match(fwd!.contended, /bare node:http needed 1\.5× its quiet CPU per request/);
  t.equal(paced!.contended, 'measured next to fwd, saturated, which ran on a contended host', "the paced sibling of that scenario is flagged");
  t.equal(r.scenarios[1]!.targets[0]!.contended, undefined, 'a target of another scenario is not');
  const md = renderMarkdown(r, 'x.svg');
  t.match(md, /\*\*This run was contended\*\*/);
  t.match(md, /\| 1 \| throughput vs bare \| ≥ 0\.80 \| 0\.82 \| yes, but \*\*contended\*\* \(bare node:http needed 1\.5×/);
  t.match(md, /\| 3 \| redirect vs bare \| ≥ 0\.80 \| 0\.79 \| \*\*no\*\* \|/);
  t.match(md, /\| fwd, saturated \| bare node:http \| 16\.0 \| 16\.0, 24\.0 \| 1\.50 \| \*\*yes\*\* \|/);
});

t.test("a paced comparison is judged by its scenario's saturated ones: flagged when one was contended, by CPU or by steal, else not", async (t) => {
  const quiet = report([16, 16], [30, 30]);
  const a = assessContention(quiet, refs(), MACHINE);
  t.equal(quiet.scenarios[0]!.targets[1]!.contended, undefined, "quiet saturated rounds: the paced target stands, though another scenario's baseline was contended");
  t.strictSame(a.reasons, ['no session: bare node:http needed 1.67× its quiet CPU per request (above 1.3×)']);
  const stolen = report([16, 16], [18, 18]);
  stolen.scenarios[0]!.comparisons[0]!.targets[1]!.runs[0]!.steal = 0.05;
  const b = assessContention(stolen, { about: 'none', references: [] }, 'Other CPU × 8');
  t.equal(stolen.scenarios[0]!.targets[1]!.contended, 'measured next to fwd, saturated, which ran on a contended host', 'steal in the saturated rounds flags it, with no quiet reference too');
  t.equal(b.reasons.length, 2);
});

t.test('a round whose CPU was not measured cannot vouch for the machine', async (t) => {
  const a = assessContention(report([16, Number.NaN], [18, 18]), refs(), MACHINE);
  t.equal(a.contended, true);
  t.equal(a.comparisons[0]!.worst, Number.POSITIVE_INFINITY);
});

t.test('another machine kind is not judged, and the report says it was not checked', async (t) => {
  const r = report([99, 99], [99, 99]);
  r.contention = assessContention(r, refs(), 'Other CPU × 8');
  t.equal(r.contention.contended, false);
  t.equal(r.contention.source, undefined);
  t.strictSame(r.contention.comparisons, []);
  t.match(renderMarkdown(r, 'x.svg'), /No quiet reference is recorded for this machine kind \(Other CPU × 8\)/);
});

t.test('a contended run or one of some scenarios leaves RESULTS.md alone; a quiet run of all of them replaces it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-contention-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'RESULTS.md'), 'the quiet run\n');
  const contended = report([16, 40], [18, 18]);
  contended.contention = assessContention(contended, refs(), MACHINE);
  const written = writeReport(contended, dir);
  t.equal(readFileSync(join(dir, 'RESULTS.md'), 'utf8'), 'the quiet run\n');
  t.notOk(written.some((f) => f.endsWith('RESULTS.md')));
  t.ok(written.some((f) => f.includes(join(dir, 'results')) && f.endsWith('.md')), 'the contended run is still written to results/');
  const partial = report([16, 17], [18, 18]);
  partial.contention = assessContention(partial, refs(), MACHINE);
  t.equal(summaryKeptBecause(partial), 'not every scenario ran (missing: 2, 4, 5, 6), and the summary is a whole run');
  writeReport(partial, dir);
  t.equal(readFileSync(join(dir, 'RESULTS.md'), 'utf8'), 'the quiet run\n', 'a quiet run of some scenarios (--only) does not replace the whole-run summary');
  const quiet = report([16, 17], [18, 18]);
  for (const id of [2, 4, 5, 6]) quiet.scenarios.push({ id, title: `scenario ${id}`, comparisons: [], figures: [], targets: [], notes: [] });
  quiet.contention = assessContention(quiet, refs(), MACHINE);
  t.equal(summaryKeptBecause(quiet), null);
  writeReport(quiet, dir);
  t.match(readFileSync(join(dir, 'RESULTS.md'), 'utf8'), /Every baseline stayed within 1\.3×/);
  t.equal(summaryKeptBecause({ ...quiet, quick: true }), 'this was a quick run');
  t.equal(summaryKeptBecause(contended), 'this run was contended');
});

t.test('recording keeps other machine kinds, replaces this one, and skips paced baselines', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quiet-ref-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'quiet-reference.json');
  const before = refs();
  before.references.push({ machine: 'Other CPU × 8', source: 'kept', baselines: { x: { label: 'y', cpuUs: 1, rps: 1 } } });
  const ref = recordQuietReference(report([15.04, 15.26], [17, 17]), before, MACHINE, file);
  t.strictSame(Object.keys(ref.baselines), ['fwd, saturated', 'no session']);
  t.strictSame(
    ref.baselines['fwd, saturated'],
    { label: 'bare node:http', cpuUs: 15.2, rps: 50_000, run: 'bench run of 2026-11-28T12:00:00.000Z' },
    'the median of the rounds, to 0.1 µs',
  );
  const back = readQuietReferences(file);
  t.strictSame(
    back.references.map((r) => r.machine),
    ['Other CPU × 8', MACHINE],
  );
  t.equal(back.references[1]!.source, 'bench run of 2026-11-28T12:00:00.000Z, recorded with --record-quiet-reference');
});

t.test('recording again keeps the lower figure of each baseline, and names the runs they come from', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quiet-ref-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'quiet-reference.json');
  // The reference has 16 (fwd) and 18 (no session); this run is faster on one and slower on the other.
  const r = report([14, 14], [20, 20]);
  r.date = '2026-11-29T09:00:00.000Z';
  const ref = recordQuietReference(r, refs(), MACHINE, file);
  t.equal(ref.baselines['fwd, saturated']!.cpuUs, 14, 'the faster new figure replaces the old one');
  t.equal(ref.baselines['fwd, saturated']!.run, 'bench run of 2026-11-29T09:00:00.000Z');
  t.strictSame(ref.baselines['no session'], { label: 'bare node:http', cpuUs: 18, rps: 50_000, run: 'quiet test run' }, 'a slower run does not loosen the reference');
  t.equal(ref.source, 'lowest CPU per request of each baseline over: bench run of 2026-11-29T09:00:00.000Z; quiet test run (recorded with --record-quiet-reference)');
  t.strictSame(readQuietReferences(file).references.map((x) => x.machine), [MACHINE], 'one entry per machine kind');
  // The same run recorded twice changes nothing.
  t.strictSame(recordQuietReference(r, readQuietReferences(file), MACHINE, file), ref);
});

t.test('steal above 2 % in any run of a comparison makes it contended, with or without a quiet reference', async (t) => {
  const r = report([16, 16], [18, 18]);
  // One run of the redirect subject (not the baseline) lost 4 % of the cores to other guests.
  r.scenarios[1]!.comparisons[0]!.targets[1]!.runs[1]!.steal = 0.04;
  r.scenarios[0]!.comparisons[0]!.targets[0]!.runs[0]!.steal = 0.02;
  const cases: Array<[QuietReferenceFile, string]> = [
    [refs(), MACHINE],
    [{ about: 'none', references: [] }, 'Other CPU × 8'],
  ];
  for (const [refsFile, machine] of cases) {
    for (const s of r.scenarios) for (const x of s.targets) delete x.contended;
    const a = assessContention(r, refsFile, machine);
    t.equal(a.contended, true, machine);
    t.strictSame(
      a.steal.map((s) => [s.comparison, s.worst, s.remeasured, s.contended]),
      [
        ['fwd, saturated', 0.02, 0, false],
        ['fwd, paced', Number.NaN, 0, false],
        ['no session', 0.04, 0, true],
      ],
      'exactly 2 % is not above the line; unmeasured steal is NaN',
    );
    t.match(r.scenarios[1]!.targets[0]!.contended, /the hypervisor took 4\.0 % of the cores' time in a round \(steal\)/);
    t.strictSame(a.reasons, ['no session: steal 4.0 % in a run (above 2 %)'], 'the reason is the steal, not the CPU check');
    t.equal(r.scenarios[0]!.targets[0]!.contended, undefined);
    r.contention = a;
    const md = renderMarkdown(r, 'x.svg');
    t.match(md, /\*\*The hypervisor stalled this host\*\*: in a run of no session, more than 2 %/);
    t.match(md, /\| no session \| 4\.0 % \*\*stalled\*\* \| 0 \|/);
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-steal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'RESULTS.md'), 'the quiet run\n');
  writeReport(r, dir);
  t.equal(readFileSync(join(dir, 'RESULTS.md'), 'utf8'), 'the quiet run\n', 'a stalled run does not replace RESULTS.md');
});

t.test('a round with a stolen run is measured again, up to twice per round asked for, and its runs kept apart', async (t) => {
  const targets: LoadTarget[] = [
    { label: 'base', url: 'http://127.0.0.1:1/', expectStatus: 200 },
    { label: 'subject', url: 'http://127.0.0.1:1/', expectStatus: 200 },
  ];
  const settings = { duration: 10, warmup: 1, rounds: 2, connections: 100 };
  const measure = (steals: number[]) => {
    let i = 0;
    const calls: string[] = [];
    return {
      calls,
      fn: async (target: LoadTarget, seconds: number) => {
        // Warm-ups (1 s) are not rounds: no steal.
        if (seconds === 1) return run(1, 1);
        calls.push(target.label);
        return { ...run(1000 + i, 20), steal: steals[i++] ?? 0 };
      },
    };
  };
  const lines: string[] = [];
  // Round 1: clean. Round 2: the subject's run stolen (5 %), then clean.
  const m = measure([0, 0.001, 0.05, 0, 0.002, 0]);
  const [base, subject] = await compare(targets, settings, (l) => lines.push(l), m.fn);
  t.strictSame(m.calls, ['base', 'subject', 'subject', 'base', 'subject', 'base'], 'the stolen round is measured again, in the same order');
  t.strictSame(subject!.runs.map((r) => r.rps), [1001, 1004], 'the figures hold the clean rounds only');
  t.strictSame(subject!.stolen!.map((r) => r.steal), [0.05]);
  t.strictSame(base!.stolen!.map((r) => r.rps), [1003], "the other target's run of that round is set aside too");
  t.match(lines.join('\n'), /the hypervisor took 5\.0 % of the cores' time in that round: measuring it again/);
  // Always stolen: 2 rounds + 4 retries, then the stolen rounds are kept.
  const always = measure(Array(20).fill(0.1));
  const [b2] = await compare(targets, settings, () => {}, always.fn);
  t.equal(always.calls.length, 12, '(2 rounds + 4 retries) × 2 targets');
  t.equal(b2!.runs.length, 2);
  t.equal(b2!.stolen!.length, 4);
  t.equal(b2!.runs[0]!.steal, 0.1, 'past the retries the round is kept, for the contention check to flag');
});

t.test('steal is read from /proc/stat as a share of all CPU time between two readings', async (t) => {
  t.equal(stealShare({ steal: 10, total: 1000 }, { steal: 30, total: 2000 }), 0.02);
  t.ok(Number.isNaN(stealShare(null, { steal: 1, total: 2 })), 'unknown without a reading');
  t.ok(Number.isNaN(stealShare({ steal: 1, total: 2 }, { steal: 1, total: 2 })), 'unknown over no time');
  const now = hostTicks();
  if (process.platform !== 'linux') return t.equal(now, null);
  t.ok(now && now.total > 0 && now.steal >= 0 && now.steal <= now.total, `a reading of this host: ${JSON.stringify(now)}`);
});

t.test('the paced p99 target is flagged as no evidence when the bare server missed it in the same run', async (t) => {
  const paced = (p99s: number[]) =>
    summarize(
      'x',
      p99s.map((p99) => ({ ...run(7_500, 40), latency: { ...run(7_500, 40).latency, p99 } })),
    );
  const quiet = pacedLatencyTarget(paced([3, 3.2]), paced([2.7, 2.8]), 1, 100, 'paced');
  t.equal(quiet.met, true);
  t.equal(quiet.contended, undefined, 'a bare server within the target: judged');
  const slow = pacedLatencyTarget(paced([9, 9]), paced([2.7, 2.8]), 1, 100, 'paced');
  t.equal(slow.met, false);
  t.equal(slow.contended, undefined, 'Portcullis alone missing it is a miss, not a stall');
  const stalled = pacedLatencyTarget(paced([9, 9]), paced([35, 36]), 1, 100, 'paced');
  t.equal(stalled.met, false);
  t.match(stalled.contended, /the bare server's own paced p99 was 35.5 ms in the same run: the host stalled/);
  t.match(verdict(stalled), /^\*\*no\*\*, but \*\*contended\*\* \(the bare server/);
  // A target a scenario flagged itself makes the run contended: RESULTS.md stays as it was.
  const r = report([16, 16], [18, 18]);
  t.equal(assessContention(r, refs(), MACHINE).contended, false);
  r.scenarios[0]!.targets[1] = stalled;
  const a = assessContention(r, refs(), MACHINE);
  t.equal(a.contended, true);
  t.strictSame(
    a.reasons,
    [`scenario 1, ${stalled.what}: the bare server's own paced p99 was 35.5 ms in the same run: the host stalled`],
    'the reason is the scenario\'s own flag (steal and CPU were fine): what the log names',
  );
  t.equal(pacedLatencyTarget(paced([3, 3]), paced([2, 2]), 0.9, 100, 'paced').met, false, 'not keeping up with the offered rate is a miss');
});

t.test('the machine kind names the CPU generation where /proc/cpuinfo gives it', async (t) => {
  const cpuinfo = 'processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R) Processor\n';
  t.equal(machineKindOf('Intel(R) Xeon(R) Processor', 2, cpuinfo), 'Intel(R) Xeon(R) Processor (family 6, model 207) × 2');
  t.equal(machineKindOf('AMD EPYC ', 2, 'cpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n'), 'AMD EPYC (family 25, model 1) × 2');
  t.equal(machineKindOf('Apple M2', 8, ''), 'Apple M2 × 8', 'without /proc/cpuinfo: model and cores only');
});

t.test('the reference file: missing is no reference, malformed is an error naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quiet-ref-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'quiet-reference.json');
  t.strictSame(readQuietReferences(file).references, []);
  t.notOk(existsSync(file), 'reading does not create it');
  writeFileSync(file, '{ not json');
  t.throws(() => readQuietReferences(file), { message: new RegExp(`${file} is not valid JSON .*delete it to run without a quiet reference`) });
  writeFileSync(file, JSON.stringify({ references: [{ machine: MACHINE, source: 's', baselines: { c: { label: 'b', cpuUs: 0, rps: 1 } } }] }));
  t.throws(() => readQuietReferences(file), { message: /does not hold .*cpuUs > 0/ });
});

t.test('the committed reference file is well formed and keys only comparisons the scenarios report', async (t) => {
  const committed = readQuietReferences(join(import.meta.dirname, '..', 'quiet-reference.json'));
  t.ok(committed.references.length > 0);
  for (const r of committed.references) t.strictSame(Object.keys(r.baselines).sort(), [...SATURATED_COMPARISONS].sort(), `${r.machine}: one quiet figure per saturated comparison`);
});

t.test('waiting for a quiet host: probes until the baseline is within the probe factor, or gives up at the deadline', async (t) => {
  const run = async (readings: number[], minutes: number, steals: number[] = []) => {
    let clock = 0;
    const lines: string[] = [];
    let probes = 0;
    const quiet = await waitForQuiet({
      probe: async () => {
        const i = probes++;
        return { cpuUs: readings[i]!, steal: steals[i] ?? Number.NaN };
      },
      quietCpuUs: 20,
      until: minutes * 60_000,
      intervalMs: 60_000,
      log: (m) => lines.push(m),
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    return { quiet, probes, lines, clock };
  };
  const found = await run([40, 30, 20 * QUIET_PROBE_FACTOR, 99], 10);
  t.equal(found.quiet, true);
  t.equal(found.probes, 3, 'stops at the first quiet probe');
  t.equal(found.clock, 120_000, 'two waits between three probes');
  t.match(found.lines[0], /needed 40\.0 µs per request, 2\.00× its quiet 20 µs \(quiet at ≤ 1\.15×\)$/);
  t.match(found.lines[2], /: quiet$/);
  const never = await run([40, 40, 40, 40, 40], 3);
  t.equal(never.quiet, false);
  t.equal(never.probes, 4, 'probes at 0, 1, 2 and 3 min, then the next would pass the deadline');
  const unmeasured = await run([Number.NaN, 20], 5);
  t.equal(unmeasured.probes, 2, 'a probe without a CPU reading is not quiet');
  const stolen = await run([20, 20], 5, [0.05, 0.001]);
  t.equal(stolen.probes, 2, 'a probe during which the hypervisor took more than 2 % is not quiet, however fast');
  t.match(stolen.lines[0], /steal 5\.0 % \(above 2 %\)$/);
  t.match(stolen.lines[1], /steal 0\.1 %: quiet$/);
});
