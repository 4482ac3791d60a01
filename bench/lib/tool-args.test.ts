// The bench tools' command lines: --help, unknown options and workloads, and bad numbers answer with the usage, not a stack trace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { parseOptions } from './options.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const run = (script: string, ...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

t.test('--help prints the usage and exits 0, starting nothing', async (t) => {
  for (const script of ['cpu-per-request.ts', 'decide-ab.ts', 'cluster-experiment.ts']) {
    const r = run(script, '--help');
    t.equal(r.status, 0, script);
    t.match(r.stdout, new RegExp(`^usage: node --import tsx bench/${script.replace('.', '\\.')}`), script);
    t.notMatch(r.stdout, /starting NATS/, `${script} started nothing`);
  }
});

t.test('an unknown option, an unknown workload or a bad number exits 2 naming it, with the usage', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['cpu-per-request.ts', ['--nope'], /Unknown option '--nope'/],
    ['cpu-per-request.ts', ['--only', 'fwd,bogus'], /--only: no workload named bogus/],
    ['cpu-per-request.ts', ['--rounds', 'x'], /--rounds must be a positive number, got "x"/],
    ['decide-ab.ts', ['--per-round', 'many'], /--per-round must be a positive number, got "many"/],
    ['cluster-experiment.ts', ['--workers', '0'], /--workers must be a positive number, got "0"/],
  ];
  for (const [script, args, message] of cases) {
    const r = run(script, ...args);
    t.equal(r.status, 2, `${script} ${args.join(' ')}`);
    t.match(r.stderr, message, `${script} ${args.join(' ')}`);
    t.match(r.stderr, /\nusage: /, `${script} ${args.join(' ')}: the usage follows`);
  }
});

t.test("npm run bench's own options refuse what they do not know", async (t) => {
  t.throws(() => parseOptions(['--nope'], {}), /unknown option --nope/);
  t.throws(() => parseOptions(['--only'], {}), /--only needs a value/);
  t.equal(parseOptions(['--quick', '--only', '2'], {}).quick, true);
});
