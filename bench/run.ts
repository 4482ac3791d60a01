// `npm run bench`: starts a Portcullis cluster and its baselines, runs the scenarios, writes results with ratios.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeProfile } from './lib/cpu-profile.ts';
import { type Environment, startEnvironment } from './lib/environment.ts';
import { type LoadSettings, runOnce } from './lib/load.ts';
import { parseOptions } from './lib/options.ts';
import { describeMachine, writeReport } from './lib/report.ts';
import type { BenchReport, ScenarioReport } from './lib/report-types.ts';
import { decisionsScenario, forwardAuthScenario, prepareHttpFixtures, proxyScenario } from './scenarios/http-decisions.ts';
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
  const started = Date.now();
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
  const fx = await prepareHttpFixtures(env);
  const scenario = async (id: number, title: string, fn: () => Promise<ScenarioReport>) => {
    if (!opts.only.has(id)) return;
    log(`scenario ${id}: ${title}`);
    const t0 = Date.now();
    try {
      const r = await fn();
      report.scenarios.push(r);
      for (const t of r.targets) log(`  target ${t.met ? 'met   ' : 'MISSED'} ${t.what}: ${t.measured} (target ${t.target})`);
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
        report.profiles.push(...(await profileGateway(env, fx, settings)));
      } catch (err) {
        log(`  profiling FAILED: ${(err as Error).message}`);
        report.failures.push({ scenario: 0, error: `profile: ${(err as Error).message}` });
      }
    }
  } finally {
    await fx.close();
    await env.close();
  }
  const files = writeReport(report, import.meta.dirname);
  log(`wrote ${files.join(', ')}`);
  const missed = report.scenarios.flatMap((s) => s.targets.filter((t) => !t.met));
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${report.scenarios.length} scenarios ran, ${report.failures.length} failed, ${missed.length} targets missed (reported, not a failure)`);
  return report.failures.length === 0 ? 0 : 1;
}

/** One extra gateway per load, run under --cpu-prof for one measured duration; its profile is written when it exits. */
async function profileGateway(env: Environment, fx: Awaited<ReturnType<typeof prepareHttpFixtures>>, s: LoadSettings): Promise<BenchReport['profiles']> {
  const out: BenchReport['profiles'] = [];
  for (const [name, target] of [
    ['scenario 1: forward auth, valid session', fx.forwardAuth],
    ['scenario 2: proxy mode, small body', fx.proxySmall],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-prof-'));
    const gw = await env.startMember('gateway', { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
    try {
      await runOnce(target(gw.http), Math.max(1, s.warmup), s.connections);
      await runOnce(target(gw.http), s.duration, s.connections);
    } finally {
      await env.stopMember(gw);
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile was written for ${name}`);
    out.push({ name, ...summarizeProfile(join(dir, file)) });
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
