// Starts server binaries as child processes, waits until they answer, stops them, and kills leftovers when the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestkitError, TestkitErrorCode } from './errors.ts';

const liveChildren = new Set<ChildProcess>();
const createdDirs = new Set<string>();
let exitHookInstalled = false;

function killEverything(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of createdDirs) rmSync(dir, { recursive: true, force: true });
}

/**
 * One 'exit' hook per process: whatever a test forgot to stop dies with it, and its temp dirs go too.
 * A signal ends Node without 'exit', so SIGINT/SIGTERM/SIGHUP clean up as well; when nobody else
 * listens for that signal, it is raised again so the process still dies the way it was asked to.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killEverything);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killEverything();
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** Creates a temp dir under os.tmpdir() that is removed at process exit if nobody removed it before. */
export function createTempDir(prefix: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), `portcullis-${prefix}-`));
  createdDirs.add(dir);
  return dir;
}

/** Removes a dir made by {@link createTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  createdDirs.delete(dir);
}

/** A started child process with its recent output. */
export interface ManagedProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** The last lines it wrote to stdout and stderr. */
  logTail(): string;
  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /** SIGKILL without waiting, to simulate a crash. */
  kill(): void;
}

/** Options of {@link startManagedProcess}. */
export interface StartProcessOptions {
  label: string;
  command: string;
  args: string[];
  /**
   * Resolves once this very process serves (check its pid or name: another process may hold the port);
   * `isAlive` lets a polling check give up as soon as the process died.
   */
  ready: (proc: { pid: number; isAlive: () => boolean }) => Promise<void>;
  /** Default 15 s. */
  startTimeoutMs?: number;
}

const tailLines = 40;

/**
 * Spawns the process and waits for `ready()`. Rejects with PORTCULLIS_TESTKIT_PROCESS_START_FAILED
 * and the end of its log when it exits first, cannot be spawned, or is not ready in time.
 */
export async function startManagedProcess(opts: StartProcessOptions): Promise<ManagedProcess> {
  installExitHook();
  const child = spawn(opts.command, opts.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > tailLines) lines.splice(0, lines.length - tailLines);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const logTail = () => lines.join('\n');

  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    const done = (info: string) => {
      exitInfo ??= info;
      liveChildren.delete(child);
      resolve();
    };
    child.once('exit', (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
    child.once('error', (err) => done(`spawn error: ${err.message}`));
  });

  const managed: ManagedProcess = {
    child,
    pid: child.pid ?? -1,
    exited,
    logTail,
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (exitInfo !== undefined) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
    kill() {
      if (exitInfo === undefined) child.kill('SIGKILL');
    },
  };

  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  const ownErrors = new WeakSet<Error>();
  const fail = (why: string, cause?: unknown) => {
    const err = new TestkitError(
      TestkitErrorCode.ProcessStartFailed,
      `${opts.label} (${opts.command} ${opts.args.join(' ')}) ${why}${lines.length ? `\n--- log tail ---\n${logTail()}` : ''}`,
      { cause },
    );
    ownErrors.add(err);
    return err;
  };

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      opts.ready({ pid: managed.pid, isAlive: () => exitInfo === undefined }),
      exited.then(() => {
        throw fail(`exited before it was ready (${exitInfo})`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(fail(`was not ready within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    const diedFirst = exitInfo !== undefined;
    managed.kill();
    await exited;
    if (err instanceof Error && ownErrors.has(err)) throw err;
    throw diedFirst
      ? fail(`exited before it was ready (${exitInfo})`, err)
      : fail(`failed its readiness check: ${err instanceof Error ? err.message : String(err)}`, err);
  } finally {
    clearTimeout(timer);
  }
  return managed;
}

/**
 * Retries until a TCP server on 127.0.0.1:port answers `greeting` (sent first when given) with data
 * that satisfies `accept`. Keeps trying on refused connections and wrong answers until `deadline`,
 * or until `isAlive` says the process died.
 */
export async function waitForTcpAnswer(
  port: number,
  accept: (text: string) => boolean,
  opts: { greeting?: string; deadline?: number; isAlive?: () => boolean } = {},
): Promise<void> {
  const deadline = opts.deadline ?? Date.now() + 15_000;
  for (;;) {
    if (await tryTcpAnswer(port, accept, opts.greeting)) return;
    if (Date.now() > deadline || (opts.isAlive && !opts.isAlive())) {
      throw new TestkitError(TestkitErrorCode.ProcessStartFailed, `nothing answered on 127.0.0.1:${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tryTcpAnswer(port: number, accept: (text: string) => boolean, greeting?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => {
      if (greeting) socket.write(greeting);
    });
    // Keep reading until the answer is accepted; a wrong or partial answer ends with the timeout or the peer's close.
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (accept(received)) finish(true);
    });
    socket.once('end', () => finish(accept(received)));
  });
}
