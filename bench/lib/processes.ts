// Child processes of the bench: Node helper servers that announce readiness on stdout, Portcullis members, and their CPU time.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The repository root (bench/ sits directly under it). */
export const ROOT = join(import.meta.dirname, '..', '..');

/** A child process the bench started; `stop` ends it (SIGTERM, then SIGKILL after a bound). */
export interface BenchChild {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The JSON the child printed after `READY ` (helper servers), or null. */
  ready: unknown;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<ChildProcess>();
let hookInstalled = false;

/** Whatever the bench forgot to stop dies with it (a crashed run must not leave servers behind). */
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/**
 * Spawns `command args` and resolves once `isReady` says so (checked on every output chunk and
 * every 100 ms), rejecting with the output tail if the child exits first or the bound passes.
 */
export async function spawnChild(opts: {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Resolves readiness from the output so far (sync) or by probing (async). */
  isReady: (output: string) => boolean | Promise<boolean>;
  timeoutMs?: number;
}): Promise<BenchChild> {
  installExitHook();
  const child = spawn(opts.command, opts.args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-40_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  const handle: BenchChild = {
    name: opts.name,
    pid: child.pid ?? -1,
    child,
    ready: null,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${opts.name} exited before it was ready:\n${out.slice(-4000)}`);
    if (await Promise.resolve(opts.isReady(out)).catch(() => false)) break;
    if (Date.now() > deadline) {
      await handle.stop('SIGKILL');
      throw new Error(`${opts.name} was not ready within ${opts.timeoutMs ?? 30_000} ms:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = /^READY (.*)$/m.exec(out);
  if (m) handle.ready = JSON.parse(m[1]!);
  return handle;
}

/** Starts a bench helper script (TypeScript through tsx) that prints `READY <json>` once it serves. */
export function startHelper(name: string, script: string, args: string[] = [], nodeArgs: string[] = []): Promise<BenchChild> {
  return spawnChild({
    name,
    command: process.execPath,
    args: [...nodeArgs, '--import', 'tsx', join(ROOT, 'bench', script), ...args],
    isReady: (out) => /^READY /m.test(out),
  });
}

/** The host's CPU time so far, all cores, in clock ticks: steal (given by the hypervisor to other guests) and the total. */
export interface HostTicks {
  steal: number;
  total: number;
}

/** /proc/stat's first line as {@link HostTicks}; null when unreadable (not Linux). */
export function hostTicks(): HostTicks | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 8 || f.some((n) => !Number.isFinite(n))) return null;
    return { steal: f[7]!, total: f.reduce((a, n) => a + n, 0) };
  } catch {
    return null;
  }
}

/**
 * A run during which the hypervisor gave more than this share of the host's CPU time to other guests
 * is not kept as evidence. Steal comes in bursts that pause every process here at once: on the Intel
 * hosts (2026-11-28) paced runs with 7–18 % steal had p99 13–33 ms where runs with 0.3 % had 2.4–3.3 ms,
 * the bare server and Portcullis alike.
 */
export const STEAL_CONTENDED = 0.02;

/** Share of the host's CPU time between two readings that the hypervisor gave to other guests (NaN when unknown). */
export function stealShare(before: HostTicks | null, after: HostTicks | null): number {
  if (!before || !after || after.total <= before.total) return Number.NaN;
  return (after.steal - before.steal) / (after.total - before.total);
}

/** Runs `work` and returns its result with the steal over its duration (NaN when unknown). */
export async function withSteal<T>(work: () => Promise<T>): Promise<{ result: T; steal: number }> {
  const before = hostTicks();
  const result = await work();
  return { result, steal: stealShare(before, hostTicks()) };
}

/** The fields of /proc/PID[/task/TID]/stat after the command name (which may contain spaces), or null when unreadable. */
function statFields(pid: number, tid?: string): string[] | null {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process (or one of its threads) has used so far, from /proc (Linux); NaN when unreadable. */
export function cpuSeconds(pid: number, tid?: string): number {
  const fields = statFields(pid, tid);
  return fields === null ? Number.NaN : (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Minor page faults a process (all its threads) has taken so far, from /proc (Linux); NaN when unreadable. */
export function minorFaults(pid: number): number {
  const fields = statFields(pid);
  return fields === null ? Number.NaN : Number(fields[7]);
}

/** CPU seconds of a process's main thread and of all its other threads together (in Node: V8's GC and compiler helpers, libuv's pool). */
export interface ThreadCpu {
  main: number;
  helpers: number;
}

/** {@link ThreadCpu} of `pid` so far, from /proc/PID/task (Linux); null when unreadable. */
export function threadCpuSeconds(pid: number): ThreadCpu | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const out: ThreadCpu = { main: 0, helpers: 0 };
  for (const tid of tids) {
    // A helper thread that ended meanwhile took its CPU time with it; the rest still count.
    const seconds = cpuSeconds(pid, tid);
    if (!Number.isFinite(seconds)) continue;
    if (tid === String(pid)) out.main = seconds;
    else out.helpers += seconds;
  }
  return out;
}

/** Garbage collection a Node process did so far: pause seconds and collections, all kinds together, and the full (mark-compact) ones among them. */
export interface GcTotals {
  seconds: number;
  count: number;
  /** Collections of the whole heap (prom-client's kinds `major` and `incremental`), as opposed to scavenges of the young generation. */
  fullCount: number;
}

/**
 * {@link GcTotals} of a Portcullis process, read from its metrics listener (prom-client's
 * `nodejs_gc_duration_seconds`); null when it does not answer or has no such metric.
 */
export async function gcTotals(metricsPort: number): Promise<GcTotals | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? parseGcTotals(await res.text()) : null;
  } catch {
    return null;
  }
}

/** {@link GcTotals} from a Prometheus text exposition (exported for its test). */
export function parseGcTotals(text: string): GcTotals | null {
  const out: GcTotals = { seconds: 0, count: 0, fullCount: 0 };
  let seen = false;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$/gm)) {
    seen = true;
    const value = Number(m[3]);
    if (m[1] === 'sum') {
      out.seconds += value;
      continue;
    }
    out.count += value;
    if (/kind="(major|incremental)"/.test(m[2]!)) out.fullCount += value;
  }
  return seen && Object.values(out).every(Number.isFinite) ? out : null;
}

/** `pid` and its descendants (nginx's workers are children of its master), from /proc. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const children = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (children) out.push(...children.split(' ').map(Number));
    } catch {
      // Gone meanwhile: nothing below it.
    }
  }
  return out;
}
