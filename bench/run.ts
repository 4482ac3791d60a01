// `npm run bench`: starts a Portcullis cluster and its baselines, runs the scenarios, writes results with ratios.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ContentionAssessment,
  type QuietReferenceFile,
  assessContention,
  machineKind,
  readQuietReferences,
  recordQuietReference,
  waitForQuiet,
} from './lib/contention.ts';
import { type ProfileWindow, readProfile, summarizeProfile } from './lib/cpu-profile.ts';
import { buildFlameTree, renderFlameGraph } from './lib/flame-graph.ts';
import { type Environment, startEnvironment } from './lib/environment.ts';
import { type LoadSettings, runOnce } from './lib/load.ts';
import { STEAL_CONTENDED, withSteal } from './lib/processes.ts';
import { parseOptions } from './lib/options.ts';
import { describeMachine, summaryKeptBecause, writeReport } from './lib/report.ts';
import type { BenchReport, ScenarioReport } from './lib/report-types.ts';
import { NO_SESSION, decisionsScenario, forwardAuthScenario, noSessionBaseline, prepareHttpFixtures, proxyScenario } from './scenarios/http-decisions.ts';
import { loginScenario } from './scenarios/login.ts';
import { scaleScenario } from './scenarios/scale.ts';
import { signOutScenario } from './scenarios/sign-out.ts';

const log = (msg: string) => process.stdout.write(`${msg}\n`);

async function main(): Promise<number> {
  let opts: ReturnType<typeof parseOptions>;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (opts.recordQuietReference && (opts.quick || ![1, 2, 3].every((id) => opts.only.has(id)))) {
    process.stderr.write('--record-quiet-reference needs a full run of scenarios 1–3 (not --quick): the reference holds a quiet figure for each of their baselines\n');
    return 2;
  }
  let quietRefs: QuietReferenceFile;
  try {
    quietRefs = readQuietReferences(QUIET_REFERENCE_FILE);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const waitFor = opts.waitQuietMinutes > 0 ? quietRefs.references.find((r) => r.machine === machineKind())?.baselines[NO_SESSION] : undefined;
  if (opts.waitQuietMinutes > 0 && !waitFor) {
    process.stderr.write(
      `--wait-quiet: ${QUIET_REFERENCE_FILE} has no quiet figure for "${NO_SESSION}" on ${machineKind()}, so there is nothing to wait for: record one first with \`npm run bench -- --record-quiet-reference\` (without --wait-quiet, on a host you know is quiet), then wait with it\n`,
    );
    return 2;
  }
  let started = Date.now();
  const settings: LoadSettings = { duration: opts.duration, warmup: opts.warmup, rounds: opts.rounds, connections: opts.connections };
  const report: BenchReport = {
    date: new Date().toISOString(),
    quick: opts.quick,
    machine: describeMachine(),
    settings: { ...settings, sessions: opts.sessions, bigUserSessions: opts.bigUserSessions, signOuts: opts.signOuts, loginSeconds: opts.loginSeconds },
    scenarios: [],
    profiles: [],
    failures: [],
  };
  log(`bench: ${opts.quick ? 'quick' : 'full'} run, scenarios ${[...opts.only].join(',')}, ${settings.duration} s × ${settings.rounds} rounds per target at ${settings.connections} connections`);
  log('starting NATS (3 nodes), Redis, IdP, upstream, session + auth + 3 gateway processes ...');
  const env = await startEnvironment({ gateways: 3 });
  log(`  ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // The scenarios' sessions last an hour past any wait for a quiet host (a full run takes ~10 min).
  const fx = await prepareHttpFixtures(env, opts.waitQuietMinutes * 60_000 + 3_600_000);
  let flames = new Map<string, string>();
  if (waitFor) {
    log(`waiting up to ${opts.waitQuietMinutes} min for a quiet host (scenario 3's bare server, ${PROBE_SECONDS} s probes every ${PROBE_INTERVAL_S} s)`);
    const target = await noSessionBaseline(env, fx);
    const quiet = await waitForQuiet({
      probe: async () => {
        const { result, steal } = await withSteal(() => runOnce(target, PROBE_SECONDS, settings.connections));
        return { cpuUs: result.cpuUs, steal };
      },
      quietCpuUs: waitFor.cpuUs,
      until: Date.now() + opts.waitQuietMinutes * 60_000,
      intervalMs: PROBE_INTERVAL_S * 1000,
      log,
    });
    if (!quiet) {
      log(`the host was not quiet within ${opts.waitQuietMinutes} min: nothing was measured`);
      await fx.close();
      await env.close();
      return 3;
    }
    report.date = new Date().toISOString();
    report.machine = describeMachine();
    started = Date.now();
  }
  const scenario = async (id: number, title: string, fn: () => Promise<ScenarioReport>) => {
    if (!opts.only.has(id)) return;
    log(`scenario ${id}: ${title}`);
    const t0 = Date.now();
    try {
      const r = await fn();
      report.scenarios.push(r);
      for (const t of r.targets) log(`  target ${t.met ? 'met   ' : 'MISSED'} ${t.what}: ${t.measured} (target ${t.target})${t.onTheLine ? ', on the line: its rounds fell on both sides' : ''}${t.contended ? `, no evidence: ${t.contended}` : ''}`);
      for (const f of r.figures) log(`  ${f.name}: ${f.value}${f.unit ? ` ${f.unit}` : ''}`);
    } catch (err) {
      log(`  FAILED: ${(err as Error).stack ?? String(err)}`);
      report.failures.push({ scenario: id, error: (err as Error).message ?? String(err) });
    }
    log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  };
  try {
    await scenario(1, 'forward-auth decision', () => forwardAuthScenario(env, fx, settings, log));
    await scenario(2, 'proxy mode', () => proxyScenario(env, fx, settings, log));
    await scenario(3, 'redirect and allow-listed decisions', () => decisionsScenario(env, fx, settings, log));
    await scenario(4, 'sign-out propagation', () => signOutScenario(env, opts.signOuts, log));
    await scenario(5, 'login throughput', () => loginScenario(env, opts.loginSeconds, opts.quick ? 4 : 8, log));
    await scenario(6, 'scale', () => scaleScenario(env, { sessions: opts.sessions, bigUser: opts.bigUserSessions }, log));
    if (opts.profile && (opts.only.has(1) || opts.only.has(2))) {
      log('profiling scenarios 1 and 2 (an extra gateway started with --cpu-prof)');
      try {
        const profiled = await profileGateway(env, fx, settings);
        report.profiles.push(...profiled.profiles);
        flames = profiled.flames;
      } catch (err) {
        log(`  profiling FAILED: ${(err as Error).message}`);
        report.failures.push({ scenario: 0, error: `profile: ${(err as Error).message}` });
      }
    }
  } finally {
    await fx.close();
    await env.close();
  }
  const machine = machineKind();
  report.contention = assessContention(report, quietRefs, machine);
  logContention(report.contention, log);
  let recordFailed = false;
  if (opts.recordQuietReference) {
    if (report.contention.contended) {
      const cpu = report.contention.comparisons.some((c) => c.contended);
      log(`not recording a quiet reference: this run was contended (${report.contention.reasons.join('; ')})${cpu ? `; if the entry recorded for ${machine} is the wrong one, delete it from ${QUIET_REFERENCE_FILE} and record again` : ''}`);
      recordFailed = true;
    } else if (report.failures.length > 0) {
      log('not recording a quiet reference: a scenario failed, so its baselines were not all measured');
      recordFailed = true;
    } else {
      const ref = recordQuietReference(report, quietRefs, machine, QUIET_REFERENCE_FILE);
      log(`recorded the quiet reference for ${machine} in ${QUIET_REFERENCE_FILE}: ${Object.entries(ref.baselines).map(([c, b]) => `${c} ${b.cpuUs} µs`).join('; ')}`);
    }
  }
  const files = writeReport(report, import.meta.dirname, flames);
  log(`wrote ${files.join(', ')}`);
  const kept = summaryKeptBecause(report);
  if (kept) log(`bench/RESULTS.md and RESULTS.svg were left as they were: ${kept} (this run's report is in results/)`);
  const missed = report.scenarios.flatMap((s) => s.targets.filter((t) => !t.met));
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${report.scenarios.length} scenarios ran, ${report.failures.length} failed, ${missed.length} targets missed (reported, not a failure)${report.contention.contended ? '; the host was contended, so the ratio verdicts are no evidence either way' : ''}`);
  return report.failures.length === 0 && !recordFailed ? 0 : 1;
}

/** `--wait-quiet`: seconds of one probe, and between probes. */
const PROBE_SECONDS = 3;
const PROBE_INTERVAL_S = 60;

/** Where the quiet references are kept (committed: they describe machine kinds, not one run). */
const QUIET_REFERENCE_FILE = join(import.meta.dirname, 'quiet-reference.json');

/** One line per judged comparison, then the run's verdict. */
function logContention(c: ContentionAssessment, log: (msg: string) => void): void {
  for (const s of c.steal) if (s.contended) log(`  ${s.comparison}: steal ${(s.worst * 100).toFixed(1)} % in a run (above ${STEAL_CONTENDED * 100} %) CONTENDED`);
  if (!c.source) {
    log(`machine steadiness: no quiet reference for ${c.machine} in ${QUIET_REFERENCE_FILE}; CPU per request not checked (record one on a quiet host with --record-quiet-reference)`);
    if (c.contended) log(`machine steadiness: CONTENDED (${c.reasons.join('; ')}); the targets flagged are no evidence either way`);
    return;
  }
  for (const s of c.comparisons) log(`  ${s.comparison}: ${s.baseline} ${s.roundsCpuUs.map((us) => us.toFixed(1)).join(', ')} µs/req, quiet ${s.quietCpuUs} → ${s.worst.toFixed(2)}×${s.contended ? ' CONTENDED' : ''}`);
  log(c.contended ? `machine steadiness: CONTENDED (${c.reasons.join('; ')}); the targets flagged are no evidence either way` : 'machine steadiness: quiet');
}

/**
 * One extra gateway per load, run under --cpu-prof for one measured duration; its profile is written
 * when it exits. Summarized and drawn as a flame graph over the measured window only (start-up and
 * warm-up left out); the flame graphs are returned by slug for the report writer.
 */
async function profileGateway(
  env: Environment,
  fx: Awaited<ReturnType<typeof prepareHttpFixtures>>,
  s: LoadSettings,
): Promise<{ profiles: BenchReport['profiles']; flames: Map<string, string> }> {
  const profiles: BenchReport['profiles'] = [];
  const flames = new Map<string, string>();
  for (const [name, slug, target] of [
    ['scenario 1: forward auth, valid session', 'forward-auth', fx.forwardAuth],
    ['scenario 2: proxy mode, small body', 'proxy-small', fx.proxySmall],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-prof-'));
    const gw = await env.startMember('gateway', { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
    let window: ProfileWindow;
    try {
      await runOnce(target(gw.http), Math.max(1, s.warmup), s.connections);
      const from = process.hrtime.bigint();
      await runOnce(target(gw.http), s.duration, s.connections);
      window = { from, to: process.hrtime.bigint() };
    } finally {
      await env.stopMember(gw);
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile was written for ${name}`);
    profiles.push({ name, flame: slug, ...summarizeProfile(join(dir, file), 12, window) });
    flames.set(slug, renderFlameGraph(buildFlameTree(readProfile(join(dir, file)), window), `Gateway CPU profile — ${name}`, `${s.duration} s at ${s.connections} connections, --cpu-prof`));
    rmSync(dir, { recursive: true, force: true });
  }
  return { profiles, flames };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
