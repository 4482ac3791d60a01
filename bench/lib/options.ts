// Command-line and environment options of `npm run bench` (quick mode, durations, scenario selection, scale size) and of the bench's other tools.
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A tool's option definitions, as `parseArgs` takes them. */
type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;
/** What `parseArgs` returns for a set of options. */
type ParsedResults<T extends { options: ParseArgsOptionsConfig }> = ReturnType<typeof parseArgs<T>>;

/** What one bench run does. */
export interface BenchOptions {
  quick: boolean;
  /** Seconds of one measured run (BENCH_DURATION; default 10, quick 2). */
  duration: number;
  /** Seconds of warm-up per target before its measured runs (default 3, quick 1). */
  warmup: number;
  /** Measured runs per target, alternated with the baseline's (A/B/A/B; BENCH_ROUNDS, default 2). */
  rounds: number;
  /** autocannon connections (BENCH_CONNECTIONS; default 100). */
  connections: number;
  /** Scenario numbers to run (default all: 1–6). */
  only: Set<number>;
  /** Sessions built in Redis by the scale scenario (default 1e6, quick 1e4). */
  sessions: number;
  /** Sessions of the big user signed out in the scale scenario (default 10 000, quick 1 000). */
  bigUserSessions: number;
  /** Sign-outs of the propagation scenario (default 1 000, quick 100). */
  signOuts: number;
  /** Seconds of the login-throughput scenario (default 20, quick 5). */
  loginSeconds: number;
  /** CPU-profile scenarios 1 and 2 once (default on in a full run, off with --quick unless --profile). */
  profile: boolean;
  /** Record this run's saturated baselines as the quiet reference of this machine kind (bench/quiet-reference.json). */
  recordQuietReference: boolean;
  /** Minutes to wait for a quiet host before measuring (0: start at once). */
  waitQuietMinutes: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--only 1,2,...] [--sessions N] [--big-user N] [--sign-outs N] [--profile | --no-profile] [--record-quiet-reference] [--wait-quiet MINUTES]
env: BENCH_DURATION (seconds per measured run), BENCH_CONNECTIONS (default 100), BENCH_ROUNDS (measured rounds per comparison, default 2)`;

/** Parses argv (after `--`) and the BENCH_* variables; throws with the usage on anything unknown. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const quick = argv.includes('--quick');
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    if (i === -1) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value\n${USAGE}`);
    return v;
  };
  const known = new Set(['--quick', '--only', '--sessions', '--big-user', '--sign-outs', '--profile', '--no-profile', '--record-quiet-reference', '--wait-quiet', '--help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    if (!known.has(a)) throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (argv.includes('--help')) throw new Error(USAGE);
  const num = (raw: string | undefined, fallback: number, what: string): number => {
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, got ${JSON.stringify(raw)}`);
    return n;
  };
  const only = value('--only');
  return {
    quick,
    duration: num(env['BENCH_DURATION'], quick ? 2 : 10, 'BENCH_DURATION'),
    warmup: quick ? 1 : 3,
    rounds: Math.round(num(env['BENCH_ROUNDS'], 2, 'BENCH_ROUNDS')),
    connections: Math.round(num(env['BENCH_CONNECTIONS'], 100, 'BENCH_CONNECTIONS')),
    only: new Set(only ? only.split(',').map((s) => Math.round(num(s, 0, '--only item'))) : [1, 2, 3, 4, 5, 6]),
    sessions: Math.round(num(value('--sessions'), quick ? 1e4 : 1e6, '--sessions')),
    bigUserSessions: Math.round(num(value('--big-user'), quick ? 1_000 : 10_000, '--big-user')),
    signOuts: Math.round(num(value('--sign-outs'), quick ? 100 : 1_000, '--sign-outs')),
    loginSeconds: quick ? 5 : 20,
    profile: argv.includes('--profile') || (!quick && !argv.includes('--no-profile')),
    recordQuietReference: argv.includes('--record-quiet-reference'),
    waitQuietMinutes: argv.includes('--wait-quiet') ? num(value('--wait-quiet'), 0, '--wait-quiet') : 0,
  };
}

/**
 * `parseArgs` for the bench's own tools (cpu-per-request, decide-ab, cluster-experiment): `--help` prints
 * `usage` and exits 0; an unknown option, a missing value or a number option that is not a positive
 * number exits 2 naming it, with the usage, instead of a stack trace. `numbers`: the string options
 * that must hold positive numbers.
 */
export function toolArgs<const O extends ParseArgsOptionsConfig>(options: O, usage: string, numbers: ReadonlyArray<keyof O & string> = []): ParsedResults<{ options: O }>['values'] {
  if (process.argv.slice(2).includes('--help')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const fail = (message: string): never => {
    process.stderr.write(`${message}\n${usage}\n`);
    process.exit(2);
  };
  let values: ParsedResults<{ options: O }>['values'];
  try {
    values = parseArgs({ options }).values;
  } catch (err) {
    return fail((err as Error).message);
  }
  for (const name of numbers) {
    const raw = (values as Record<string, unknown>)[name];
    if (raw !== undefined && !(Number(raw) > 0)) fail(`--${name} must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return values;
}
