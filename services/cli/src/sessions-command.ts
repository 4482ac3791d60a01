// `portcullis sessions list | revoke | rebuild`: admin commands on a cluster's sessions (exit 0 ok, 1 failed, 2 bad usage or config).
import { parseArgs } from 'node:util';
import type { ClusterConfig, PortcullisConfig } from '@portcullis/config';
import { SingleBar } from 'cli-progress';
import { type AdminAdapters, openAdminAdapters } from './admin-adapters.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';
import { rebuildProjection } from './sessions-rebuild.ts';
import { formatSessionsJson, formatSessionsTable, summarizeSession } from './sessions-list.ts';
import { type RevokeTarget, formatRevokeReport, revokeSessions } from './sessions-revoke.ts';

/** Usage of the `sessions` command (also part of the main USAGE). */
export const SESSIONS_USAGE = `  portcullis sessions list [--config FILE] [--user SUB] [--json]
  portcullis sessions revoke [--config FILE] (--user SUB | --session ID)
  portcullis sessions rebuild [--config FILE]`;

/** Where a command writes: results on stdout, notes, warnings and progress on stderr. */
export interface CommandOutput {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

type ClusterPortcullisConfig = PortcullisConfig & { cluster: ClusterConfig };

const OPTIONS = {
  config: { type: 'string' },
  user: { type: 'string' },
  session: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Which options each sub-command accepts (anything else is a usage error). */
const ALLOWED: Record<string, ReadonlyArray<keyof typeof OPTIONS>> = {
  list: ['config', 'user', 'json'],
  revoke: ['config', 'user', 'session'],
  rebuild: ['config'],
};

/**
 * Session ids are base64url and may start with '-' (as may a user's subject): parseArgs refuses
 * `--session -AbC` as ambiguous, so a value option followed by a word that is not one of our options
 * is passed on as `--session=-AbC`. `--user --json` (a forgotten value) still fails as before.
 */
function attachDashValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : '';
    const takesValue = name in OPTIONS && OPTIONS[name as keyof typeof OPTIONS].type === 'string';
    if (takesValue && next?.startsWith('-') && !isOurOption(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function isOurOption(arg: string): boolean {
  if (!arg.startsWith('--')) return false;
  const name = arg.slice(2).split('=')[0]!;
  return name in OPTIONS;
}

/** Runs `portcullis sessions <args>`; resolves with the exit code. */
export async function runSessionsCommand(args: string[], io: CommandOutput = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const usage = (problem: string): number => {
    io.stderr.write(`${problem}\n\nUsage:\n${SESSIONS_USAGE}\n`);
    return 2;
  };
  const [sub, ...rest] = args;
  if (sub === undefined || !(sub in ALLOWED)) return usage(sub ? `unknown sessions command "${sub}"` : 'sessions: which command?');
  let values: { config?: string; user?: string; session?: string; json?: boolean };
  try {
    ({ values } = parseArgs({ args: attachDashValues(rest), options: OPTIONS, strict: true }));
  } catch (err) {
    return usage((err as Error).message);
  }
  const extra = Object.keys(values).filter((k) => !ALLOWED[sub]!.includes(k as keyof typeof OPTIONS));
  if (extra.length > 0) return usage(`sessions ${sub} does not take ${extra.map((k) => `--${k}`).join(', ')}`);
  let target: RevokeTarget | undefined;
  if (sub === 'revoke') {
    if ((values.user === undefined) === (values.session === undefined)) return usage('sessions revoke needs exactly one of --user SUB or --session ID');
    target = values.user !== undefined ? { user: values.user } : { session: values.session! };
    if (Object.values(target)[0] === '') return usage('sessions revoke: the --user / --session value is empty');
  }

  const config = loadConfigOrReport(values.config);
  if (!config) return 2;
  if (!config.cluster) {
    io.stderr.write(
      `sessions ${sub} needs a cluster: block in the configuration (NATS and Redis). Without it the sessions live in the memory of the running ` +
        'portcullis process, which no other process can reach: restart it to drop every session.\n',
    );
    return 2;
  }
  const clusterConfig = config as ClusterPortcullisConfig;

  let adapters: AdminAdapters;
  try {
    adapters = await openAdminAdapters(clusterConfig, sub, (line) => io.stderr.write(`note: ${line}\n`));
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  try {
    if (sub === 'list') return await list(adapters, values, io);
    if (sub === 'revoke') return await revoke(adapters, target!, clusterConfig.outpost.signout_propagation_timeout_ms, io);
    return await rebuild(adapters, io);
  } catch (err) {
    io.stderr.write(`sessions ${sub} failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await adapters.close();
  }
}

async function list(a: AdminAdapters, values: { user?: string; json?: boolean }, io: CommandOutput): Promise<number> {
  const filter = values.user !== undefined ? { sub: values.user } : {};
  const sessions = (await a.store.listLiveSessions(filter)).map(summarizeSession);
  io.stdout.write(values.json ? formatSessionsJson(sessions) : formatSessionsTable(sessions, filter));
  return 0;
}

async function revoke(a: AdminAdapters, target: RevokeTarget, boundMs: number, io: CommandOutput): Promise<number> {
  const result = await revokeSessions({ log: a.bus.log, rpc: a.bus.rpc, store: a.store, boundMs }, target);
  const report = formatRevokeReport(target, result, boundMs);
  io.stdout.write(report.stdout);
  io.stderr.write(report.stderr);
  return report.exitCode;
}

async function rebuild(a: AdminAdapters, io: CommandOutput): Promise<number> {
  const bar = new SingleBar({
    stream: io.stderr,
    format: 'replaying the log |{bar}| {percentage}% | event {value}/{total}',
    // Not a terminal (CI, kubectl logs): a plain line every few seconds instead of redraws.
    noTTYOutput: true,
    notTTYSchedule: 2_000,
    etaBuffer: 100,
    hideCursor: true,
    barCompleteChar: '#',
    barIncompleteChar: '-',
  });
  const started = performance.now();
  io.stderr.write('rebuilding the Redis projection: gateways refuse sessions they have not cached until it is done\n');
  let barStarted = false;
  let result: Awaited<ReturnType<typeof rebuildProjection>>;
  try {
    result = await rebuildProjection({
      log: a.bus.log,
      store: a.store,
      onProgress: (seq, total) => {
        if (!barStarted) {
          bar.start(Math.max(total, 1), seq);
          barStarted = true;
          return;
        }
        if (total > bar.getTotal()) bar.setTotal(total);
        bar.update(seq);
      },
    });
  } finally {
    if (barStarted) bar.stop();
  }
  const [live, watermarks] = await Promise.all([a.store.listLiveSessions(), a.store.countSignOutWatermarks()]);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  io.stdout.write(
    `rebuilt the projection up to #${result.appliedSeq} in ${seconds} s: ${result.replayed} events replayed, ` +
      `${live.length} live session${live.length === 1 ? '' : 's'}, ${watermarks} user${watermarks === 1 ? '' : 's'} with a sign-out watermark\n`,
  );
  return 0;
}
